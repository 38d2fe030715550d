"""Where this host sits in a multi-host TPU slice, from the environment GKE injects.

GKE's TPU webhook sets, in every pod of an Indexed Job that requests ``google.com/tpu``:

- ``TPU_WORKER_ID``: this host's index in the slice (0 .. hosts-1);
- ``TPU_WORKER_HOSTNAMES``: comma-separated host names of all workers, in worker-id order.

A single-host slice (v3-8) gets ``TPU_WORKER_ID=0`` and ``TPU_WORKER_HOSTNAMES=localhost`` (or nothing).
torch-xla's PJRT runtime reads the same variables to form the slice; this module derives the same rank /
world / coordinator so that the trainer can decide who writes (global process 0 only) and can fail early,
with a message that names the variable, when the pod was started without them.

Pure Python: importable (and tested) without torch or torch-xla.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gemma_api.accelerators import profile

WORKER_ID_VAR = "TPU_WORKER_ID"
HOSTNAMES_VAR = "TPU_WORKER_HOSTNAMES"
# Port of torch-xla's PJRT coordinator on TPU slices (process 0 serves it); overridable for local runs.
COORDINATOR_PORT_VAR = "GEMMAFT_XLA_COORDINATOR_PORT"
DEFAULT_COORDINATOR_PORT = 8476

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class MultiHostError(ValueError):
    """The TPU worker environment is missing or inconsistent (a configuration error: exit code 2)."""


@dataclass(frozen=True)
class HostInfo:
    """This process's place in the slice: one process per host under SPMD."""

    rank: int  # global process index == TPU_WORKER_ID
    world_size: int  # number of hosts (processes)
    hostnames: tuple[str, ...]
    coordinator_port: int = DEFAULT_COORDINATOR_PORT

    @property
    def is_writer(self) -> bool:
        """Only global process 0 writes checkpoints, progress and results."""
        return self.rank == 0

    @property
    def multi_host(self) -> bool:
        return self.world_size > 1

    @property
    def coordinator(self) -> str:
        """``host:port`` of worker 0, where the PJRT coordinator listens."""
        return f"{self.hostnames[0]}:{self.coordinator_port}"

    def env(self) -> dict[str, str]:
        """The variables a rank is started with (what GKE injects), e.g. to start ranks as local processes."""
        return {
            WORKER_ID_VAR: str(self.rank),
            HOSTNAMES_VAR: ",".join(self.hostnames),
            COORDINATOR_PORT_VAR: str(self.coordinator_port),
        }


def from_env(env: Mapping[str, str] | None = None, expected_hosts: int | None = None) -> HostInfo:
    """The HostInfo of this process from ``TPU_WORKER_ID`` / ``TPU_WORKER_HOSTNAMES``.

    ``expected_hosts`` (from the spec's topology, see :func:`expected_hosts`) is checked against the host list.
    Without the variables, a single-host run is assumed (rank 0 of 1) unless more hosts are expected.
    Raises :class:`MultiHostError` with the variable name and the value seen.
    """
    env = os.environ if env is None else env
    raw_id = (env.get(WORKER_ID_VAR) or "").strip()
    raw_hosts = (env.get(HOSTNAMES_VAR) or "").strip()
    port = _port(env)

    if not raw_id and not raw_hosts:
        if expected_hosts and expected_hosts > 1:
            raise MultiHostError(
                f"{WORKER_ID_VAR} and {HOSTNAMES_VAR} are not set, but the topology needs {expected_hosts} hosts: "
                "run the trainer in an Indexed Job that requests google.com/tpu on a multi-host TPU slice node pool "
                "(GKE injects both variables)")
        return HostInfo(0, 1, ("localhost",), port)
    if not raw_hosts:
        raise MultiHostError(f"{WORKER_ID_VAR}={raw_id!r} is set but {HOSTNAMES_VAR} is not: both are needed")

    hosts = tuple(h.strip() for h in raw_hosts.split(","))
    for i, host in enumerate(hosts):
        if not host:
            raise MultiHostError(f"{HOSTNAMES_VAR}={raw_hosts!r}: entry {i} is empty")
        if not _HOSTNAME.match(host):
            raise MultiHostError(f"{HOSTNAMES_VAR}={raw_hosts!r}: entry {i} ({host!r}) is not a host name")
    dupes = sorted({h for h in hosts if hosts.count(h) > 1})
    if dupes:
        raise MultiHostError(f"{HOSTNAMES_VAR}={raw_hosts!r}: duplicate host(s) {', '.join(dupes)}")

    if not raw_id:
        if len(hosts) > 1:
            raise MultiHostError(f"{HOSTNAMES_VAR} lists {len(hosts)} hosts but {WORKER_ID_VAR} is not set")
        rank = 0
    else:
        try:
            rank = int(raw_id)
        except ValueError:
            raise MultiHostError(f"{WORKER_ID_VAR}={raw_id!r} is not an integer") from None
    if not 0 <= rank < len(hosts):
        raise MultiHostError(
            f"{WORKER_ID_VAR}={rank} is outside 0..{len(hosts) - 1} ({HOSTNAMES_VAR} lists {len(hosts)} hosts)")
    if expected_hosts is not None and len(hosts) != expected_hosts:
        raise MultiHostError(
            f"{HOSTNAMES_VAR} lists {len(hosts)} host(s) but the topology has {expected_hosts}: "
            "the Job's parallelism/completions must equal the number of hosts of the slice")
    return HostInfo(rank, len(hosts), hosts, port)


def _port(env: Mapping[str, str]) -> int:
    raw = (env.get(COORDINATOR_PORT_VAR) or "").strip()
    if not raw:
        return DEFAULT_COORDINATOR_PORT
    try:
        port = int(raw)
    except ValueError:
        raise MultiHostError(f"{COORDINATOR_PORT_VAR}={raw!r} is not an integer") from None
    if not 0 < port < 65536:
        raise MultiHostError(f"{COORDINATOR_PORT_VAR}={port} is not a TCP port")
    return port


def expected_hosts(spec) -> int:
    """Hosts of the spec's slice (1 for anything that is not a TPU type)."""
    return profile(spec.accelerator.type).hosts(spec.topology)


def all_ranks(hostnames: list[str] | tuple[str, ...], port: int = DEFAULT_COORDINATOR_PORT) -> list[HostInfo]:
    """The HostInfo of every worker of a slice with these hosts (what each pod of the Indexed Job sees)."""
    return [HostInfo(i, len(hostnames), tuple(hostnames), port) for i in range(len(hostnames))]


# ---------------------------------------------------------------- each host's rows of every global batch


def host_shard(order: Sequence[int], global_batch: int, per_host: int, host: int) -> list[int]:
    """The rows host ``host`` reads: its ``per_host`` rows of every whole global batch of ``order``.

    Global batch ``g`` is ``order[g * global_batch:(g + 1) * global_batch]``; host ``h`` takes the slice
    ``[h * per_host, (h + 1) * per_host)`` of it, so the hosts' rows of one micro-step are disjoint and together
    are the global batch (what SPMD's ``minibatch`` input sharding assembles). A short last batch is dropped.
    """
    if per_host < 1 or global_batch % per_host:
        raise ValueError(f"host_shard: per-host batch {per_host} does not divide the global batch {global_batch}")
    hosts = global_batch // per_host
    if not 0 <= host < hosts:
        raise ValueError(f"host_shard: host {host} is outside 0..{hosts - 1}")
    rows: list[int] = []
    for start in range(0, len(order) - global_batch + 1, global_batch):
        first = start + host * per_host
        rows.extend(order[first:first + per_host])
    return rows


class HostShardSampler:
    """A sampler that yields this host's rows (:func:`host_shard`) of the order another sampler gives.

    Every host builds the same ``base`` order (it depends only on the seed and the epoch), so the shards of one
    epoch never overlap. ``set_epoch`` is passed on, so resumed runs see the same batches.
    """

    def __init__(self, base, global_batch: int, per_host: int, host: int):
        self.base, self.global_batch, self.per_host, self.host = base, global_batch, per_host, host
        host_shard([], global_batch, per_host, host)  # validates the arguments once

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self):
        return iter(host_shard(list(self.base), self.global_batch, self.per_host, self.host))

    def __len__(self) -> int:
        return (len(self.base) // self.global_batch) * self.per_host

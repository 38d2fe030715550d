"""The rank / world / coordinator each TPU host derives from what GKE injects.

Why not real multi-process ranks: torch-xla's PJRT CPU client is single-process (CPU_NUM_DEVICES devices in
one process; there is no CPU coordinator / distributed runtime to join two processes into one SPMD slice), so
two local processes cannot form one mesh here. Instead each rank of a 4-host slice is started as its own
process with exactly the environment an Indexed-Job pod gets, and we assert what it derives.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gemma_api import parse_spec
from gemma_trainer import multihost
from gemma_trainer.multihost import HOSTNAMES_VAR, WORKER_ID_VAR, MultiHostError

HOSTS = [f"demo-{i}.demo-workers.default.svc" for i in range(4)]


def tpu_spec(topology: str):
    return parse_spec({
        "model": "gemma-2-9b", "dataset": {"trainUri": "gs://data-bkt/train.jsonl"},
        "accelerator": {"type": "tpu-v3", "topology": topology}, "output": {"uri": "gs://out-bkt/runs"},
    })


def test_single_host_defaults():
    info = multihost.from_env({}, expected_hosts=1)
    assert (info.rank, info.world_size, info.is_writer, info.multi_host) == (0, 1, True, False)
    info = multihost.from_env({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "localhost"})
    assert (info.rank, info.world_size, info.coordinator) == (0, 1, "localhost:8476")


def test_expected_hosts_from_topology():
    assert multihost.expected_hosts(tpu_spec("2x2")) == 1
    assert multihost.expected_hosts(tpu_spec("4x4")) == 4
    assert multihost.expected_hosts(tpu_spec("8x8")) == 16


@pytest.mark.parametrize("env, expected, message", [
    ({}, 4, "not set, but the topology needs 4 hosts"),
    ({WORKER_ID_VAR: "1"}, None, "TPU_WORKER_HOSTNAMES is not"),
    ({WORKER_ID_VAR: "x", HOSTNAMES_VAR: "a,b"}, None, "'x' is not an integer"),
    ({WORKER_ID_VAR: "2", HOSTNAMES_VAR: "a,b"}, None, "outside 0..1"),
    ({WORKER_ID_VAR: "-1", HOSTNAMES_VAR: "a,b"}, None, "outside 0..1"),
    ({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "a,,b"}, None, "entry 1 is empty"),
    ({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "a,a"}, None, "duplicate host(s) a"),
    ({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "a,b c"}, None, "is not a host name"),
    ({HOSTNAMES_VAR: "a,b"}, None, "TPU_WORKER_ID is not set"),
    ({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "a,b"}, 4, "lists 2 host(s) but the topology has 4"),
    ({WORKER_ID_VAR: "0", HOSTNAMES_VAR: "a", "GEMMAFT_XLA_COORDINATOR_PORT": "99999"}, None, "not a TCP port"),
])
def test_bad_environment_is_refused_with_the_variable_named(env, expected, message):
    with pytest.raises(MultiHostError) as err:
        multihost.from_env(env, expected_hosts=expected)
    assert message in str(err.value)


def test_every_rank_started_as_a_process_derives_its_place():
    """Start the 4 ranks of a v3-32 (4x4) as local processes with the pod environment; each reports what it
    derives. Exactly one writer, ranks 0..3, one shared coordinator (worker 0)."""
    expected = multihost.expected_hosts(tpu_spec("4x4"))
    code = (
        f"import json; from gemma_trainer import multihost; i = multihost.from_env(expected_hosts={expected}); "
        "print(json.dumps([i.rank, i.world_size, i.is_writer, i.coordinator]))"
    )
    procs = []
    for rank in multihost.all_ranks(HOSTS):
        env = {"PATH": "/usr/bin:/bin", **rank.env()}
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True))
    seen = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        seen.append(json.loads(out))
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert {s[1] for s in seen} == {4}
    assert [s[2] for s in seen] == [True, False, False, False]
    assert {s[3] for s in seen} == {f"{HOSTS[0]}:8476"}

"""Host coordination under SPMD: a host barrier, and saves in which every host takes part in the gather.

What the pytorch/xla 2.9 SPMD docs prescribe, and why:

* **Barrier.** Under SPMD each host runs one process that sees the whole slice as one device, so
  ``xm.rendezvous`` (an XLA all-gather over replicas) is not a barrier between hosts. The SPMD checkpointing docs
  create a CPU process group instead: ``dist.init_process_group('gloo', init_method='xla://')`` (the ``xla://``
  handler registered by ``torch_xla.distributed.xla_backend`` takes rank = ``xr.process_index()`` and world =
  ``xr.process_count()``); ``dist.barrier()`` on it waits for every host. :func:`host_barrier` does that.
  ``MASTER_ADDR`` defaults to worker 0 of ``TPU_WORKER_HOSTNAMES`` (GKE pods cannot rely on TPU metadata).
* **Saves.** A tensor that GSPMD sharded over the slice lives partly on other hosts' devices; moving it to the CPU
  is a collective. If only the writer (host 0) does it, host 0 waits for hosts that never join: the slice hangs.
  :func:`gather_to_cpu` is therefore called by EVERY host, in the same order, and only then does the writer write
  (:func:`save_state`). The same graphs run on every host, writer or not (tests/xla check exactly that).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import multihost

log = logging.getLogger("gemma_trainer.xla")

GLOO_INIT_METHOD = "xla://"


def host_count() -> int:
    import torch_xla.runtime as xr

    return xr.process_count()


def process_group(always: bool = False):
    """The gloo process group of all hosts (created once, as the SPMD docs do); None with one host unless
    ``always``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.group.WORLD
    if host_count() <= 1 and not always:
        return None
    import torch_xla.distributed.xla_backend  # noqa: F401 - registers the xla:// init method

    info = multihost.from_env()
    os.environ.setdefault("MASTER_ADDR", info.hostnames[0])
    dist.init_process_group("gloo", init_method=GLOO_INIT_METHOD)
    log.info("xla: gloo process group of %d hosts (rank %d)", dist.get_world_size(), dist.get_rank())
    return dist.group.WORLD


def host_barrier(tag: str) -> None:
    """Wait for every host of the slice (a no-op with one host)."""
    import torch.distributed as dist

    if process_group() is not None:
        log.debug("xla: host barrier %s", tag)
        dist.barrier()


def replicate(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Fully replicated copies of XLA tensors, computed by one graph that every host must run."""
    import torch_xla
    import torch_xla.distributed.spmd as xs

    mesh = xs.get_global_mesh()
    out = {}
    for name, tensor in tensors.items():
        copy = tensor.detach() + 0  # a new value: a clone would keep the source's sharding annotation
        if mesh is not None and copy.dim() > 0:
            xs.mark_sharding(copy, mesh, (None,) * copy.dim())  # replicated: GSPMD inserts the all-gather
        out[name] = copy
    torch_xla.sync()
    return out


def gather_to_cpu(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """CPU copies of (possibly sharded) XLA tensors. EVERY host must call this, in the same order."""
    return {name: t.to("cpu") for name, t in replicate(tensors).items()}


def _nested_tensors(obj, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix: obj} if obj.device.type == "xla" else {}
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {}
    found: dict[str, Any] = {}
    for key, value in items:
        found.update(_nested_tensors(value, f"{prefix}/{key}"))
    return found


def _replace(obj, cpu: Mapping[str, Any], prefix: str = ""):
    if prefix in cpu:
        return cpu[prefix]
    if isinstance(obj, Mapping):
        return {k: _replace(v, cpu, f"{prefix}/{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace(v, cpu, f"{prefix}/{i}") for i, v in enumerate(obj))
    return obj


def state_to_cpu(state):
    """A nested state (an optimizer state_dict) with every XLA tensor gathered to the CPU, on every host."""
    tensors = _nested_tensors(state)
    return _replace(state, gather_to_cpu(tensors)) if tensors else state


def save_state(state, path: str | Path, is_writer: bool) -> None:
    """``torch.save`` of ``state`` by the writer; every host gathers first (see the module docstring)."""
    import torch

    cpu = state_to_cpu(state)
    if is_writer:
        torch.save(cpu, str(path))


def trainable_to_cpu(model) -> dict[str, Any]:
    """The trainable weights (the adapter) gathered to the CPU; every host calls it."""
    return gather_to_cpu({n: p for n, p in model.named_parameters() if p.requires_grad})


def replicate_trainable_in_place(model) -> int:
    """Make every trainable weight fully replicated (one graph that every host runs), so that the writer alone
    can read them afterwards (``save_result``) without a collective. Returns the weights replaced."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad and p.device.type == "xla"}
    copies = replicate(trainable)
    for name, param in trainable.items():
        param.data = copies[name]
    return len(copies)

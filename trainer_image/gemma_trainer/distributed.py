"""The barrier across the processes of a run: torch.distributed on GPUs (torchrun), or the hosts' gloo group
under SPMD on TPU hosts (:mod:`gemma_trainer.xla_hosts`); a no-op with one process."""

from __future__ import annotations

import sys

from .xla_hosts import host_barrier


def initialized_process_group():
    """``torch.distributed`` when a process group is up (torchrun), else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def barrier(tag: str = "gemmaft") -> None:
    """Wait for every rank: torch.distributed (GPUs), or the hosts' gloo group under SPMD (TPU hosts)."""
    dist = initialized_process_group()
    if dist is not None:
        dist.barrier()
    elif "torch_xla" in sys.modules:
        host_barrier(tag)

"""Measure the tensor memory a piece of training code really allocates, on any device (CPU included).

:class:`PeakTensorMemory` is a ``TorchDispatchMode``: every tensor storage an operator creates inside the block
(forward, backward and optimizer, autograd's saved tensors included) is counted from its creation until Python
frees it; ``peak`` is the largest sum alive at once. It is what ``torch.cuda.max_memory_allocated`` measures on a
GPU, minus the allocator's rounding and cache, and it works on the CPU, where the memory model
(gemma_api.memory) is checked against it on scaled-down shapes.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class PeakTensorMemory(TorchDispatchMode):
    """Within the block: ``current`` and ``peak`` bytes of storages created there and still alive."""

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._live or key in inputs:
            return  # empty, already counted, or a view / in-place result of an input (maybe older than the block)
        self._live[key] = storage.nbytes()
        self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and not leaf.is_meta:
                self._track(leaf, inputs)
        return out

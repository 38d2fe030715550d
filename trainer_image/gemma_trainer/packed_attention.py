"""Padding-free attention for eager-attention models (Gemma 2 and 3 on T4 and CPU): each packed row attends
only to itself, computed row by row.

transformers can train a packed batch (rows concatenated, ``position_ids`` restarting at 0, no attention mask)
with eager attention: it detects the restarts and builds a block-diagonal ``[total, total]`` mask (sliding window
and soft-cap included; tests/trainer/test_packing.py checks that the loss equals the rows run one by one). But
eager attention then computes scores for every pair of packed tokens, ``total**2`` per head, of which only the
diagonal blocks are used: for 4 rows of 1024 tokens, 4x the score memory and FLOPs of padded rows. Without
FlashAttention (Gemma 2's soft-cap needs eager; T4 has no FlashAttention-2), this module's attention function
runs the model's OWN eager attention once per row on that row's slice, with transformers' own causal /
sliding-window mask of the row's length: the same numbers, no cross-row scores, no padding.

Rows are given by ``row_bounds`` (a list ``[0, end_1, end_2, ..., total]`` that :class:`~gemma_trainer.batches.
PackedCollator` puts in the batch; the model forwards it to the attention function). Without it (a padded batch),
each batch row is one row: right padding needs no mask beyond causal, because real tokens never attend to the pads
after them and pads carry no loss.

Not for XLA: a per-row loop gives a different graph per length mix; the TPU path keeps eager attention on padded,
bucketed batches.
"""

from __future__ import annotations

import functools
import itertools
import sys

import torch

PACKED_EAGER = "gemma_packed_eager"


@functools.lru_cache(maxsize=16)
def _row_mask(length: int, sliding_window: int | None, dtype: torch.dtype, device) -> torch.Tensor:
    """transformers' eager causal (or sliding-window causal) mask of one row: ``[1, 1, length, length]`` (cached:
    every layer of a forward asks for the same few). Call it through :func:`_row_mask_for`."""
    from transformers.masking_utils import (
        causal_mask_function,
        eager_mask,
        sliding_window_causal_mask_function,
    )

    function = sliding_window_causal_mask_function(sliding_window) if sliding_window else causal_mask_function
    return eager_mask(batch_size=1, q_length=length, kv_length=length, mask_function=function, dtype=dtype,
                      device=device)


def _row_mask_for(length: int, sliding_window: int | None, dtype: torch.dtype, device) -> torch.Tensor:
    """:func:`_row_mask`, with a window at least as long as the row dropped: that mask is the plain causal one, so
    sliding and global layers share one cache entry per row length instead of filling the cache twice."""
    window = sliding_window if sliding_window and sliding_window < length else None
    return _row_mask(length, window, dtype, device)


def packed_eager_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           softcap=None, sliding_window=None, row_bounds=None, **kwargs):
    """An ``AttentionInterface`` function: the model's own ``eager_attention_forward`` per packed row."""
    eager = sys.modules[type(module).__module__].eager_attention_forward
    bounds = list(row_bounds) if row_bounds is not None else [0, query.shape[2]]
    outputs = []
    for start, end in itertools.pairwise(bounds):
        mask = _row_mask_for(end - start, sliding_window, query.dtype, query.device)
        out, _ = eager(module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                       mask, dropout=dropout, scaling=scaling, softcap=softcap, **kwargs)
        outputs.append(out)
    return torch.cat(outputs, dim=1), None


def use_packed_attention(model) -> None:
    """Switch an eager-attention model (before or after PEFT wrapping) to :func:`packed_eager_attention`."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_EAGER, packed_eager_attention)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(PACKED_EAGER)

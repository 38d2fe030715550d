"""Batches: XLA pad buckets and the two collators (length lists for length-grouped sampling:
:func:`gemma_trainer.dataset.lengths_of`).

* :class:`PackedCollator` (padding-free, CPU and CUDA): the rows of a batch concatenated into ONE sequence with
  ``position_ids`` restarting at 0 for each row, ``row_bounds`` and no ``attention_mask``; the trainer's attention
  (:mod:`gemma_trainer.packed_attention`) then attends row by row, so attention never crosses rows (sliding window
  and soft-cap as in the model; tests/trainer/test_packing.py checks the loss against the rows one by one).
* :class:`PadCollator` (XLA, and where packing is off): rows padded to the batch's longest, or to a fixed bucket
  (static shapes for XLA); the sampler groups rows of similar length.

Both add ``shift_labels``: each position's next-token label within its own row (-100 at a row's last token), which
the loss head and the Trainer's token count use as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # label of a position that carries no loss


def default_buckets(max_seq_length: int, smallest: int = 64) -> tuple[int, ...]:
    """Powers of two from ``smallest`` below ``max_seq_length``, then ``max_seq_length`` itself.

    Padding each batch to one of these (static shapes) makes XLA compile at most ``len(buckets)`` graphs."""
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be positive, got {max_seq_length}")
    if smallest < 1:
        raise ValueError(f"the smallest bucket must be positive, got {smallest}")
    out = []
    size = smallest
    while size < max_seq_length:
        out.append(size)
        size *= 2
    out.append(max_seq_length)
    return tuple(out)


def pad_length(longest: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds a batch whose longest row has ``longest`` tokens."""
    for size in sorted(buckets):
        if size >= longest:
            return size
    raise ValueError(f"a sequence of {longest} tokens is longer than the largest bucket {max(buckets)}; "
                     "keep max_seq_length <= max(buckets)")


def shift_labels(labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``labels`` moved one position left (position t's target is token t+1's label), ``-100`` at the end of each
    row. With ``position_ids`` (a packed batch: several rows in one sequence, positions restarting at 0), the last
    token of each packed row gets ``-100`` too, so no row learns to predict the next row's first token."""
    import torch

    out = torch.full_like(labels, IGNORE_INDEX)
    out[..., :-1] = labels[..., 1:]
    if position_ids is not None:
        row_starts_next = torch.zeros_like(labels, dtype=torch.bool)
        row_starts_next[..., :-1] = position_ids[..., 1:] == 0
        out = out.masked_fill(row_starts_next, IGNORE_INDEX)
    return out


class PadCollator:
    """Pads a list of features to one batch of tensors: ``input_ids`` with the pad id, ``labels`` with -100,
    ``attention_mask`` 1 on tokens. Pads to the longest sequence, or with ``buckets`` to the smallest bucket that
    holds it (a longer sequence is an error: keep ``max_seq_length <= max(buckets)``). ``pad_to_multiple_of``
    rounds the longest up when no buckets are given."""

    def __init__(self, pad_token_id: int = 0, buckets: tuple[int, ...] | None = None,
                 pad_to_multiple_of: int | None = None, label_pad_id: int = IGNORE_INDEX):
        self.pad_token_id = pad_token_id
        self.buckets = tuple(sorted(buckets)) if buckets else None
        self.pad_to_multiple_of = pad_to_multiple_of
        self.label_pad_id = label_pad_id

    def target_length(self, longest: int) -> int:
        if self.buckets:
            return pad_length(longest, self.buckets)
        if self.pad_to_multiple_of:
            return int(math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        return longest

    def __call__(self, features: Sequence[dict]) -> dict:
        import torch

        if not features:
            raise ValueError("empty batch")
        size = self.target_length(max(len(f["input_ids"]) for f in features))
        n = len(features)
        input_ids = torch.full((n, size), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, size), self.label_pad_id, dtype=torch.long)
        attention_mask = torch.zeros((n, size), dtype=torch.long)
        for i, f in enumerate(features):
            ids = list(f["input_ids"])
            lab = list(f.get("labels", ids))
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            labels[i, : len(lab)] = torch.as_tensor(lab, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
                "shift_labels": shift_labels(labels)}


class PackedCollator:
    """Concatenates a list of features into one ``[1, total]`` sequence: ``input_ids``, ``labels``,
    ``position_ids`` (0, 1, ... restarting at each row) and ``shift_labels`` (shifted within each row, so no row
    predicts the next row's first token), and ``row_bounds`` (``[0, end of row 1, ..., total]``, for
    :mod:`gemma_trainer.packed_attention`). No padding and no ``attention_mask``: with plain eager attention the
    model builds the block-diagonal mask from the restarting positions."""

    def __call__(self, features: Sequence[dict]) -> dict:
        import torch

        if not features:
            raise ValueError("empty batch")
        ids, labels, positions = [], [], []
        for f in features:
            row_ids = torch.as_tensor(list(f["input_ids"]), dtype=torch.long)
            row_labels = torch.as_tensor(list(f.get("labels", f["input_ids"])), dtype=torch.long)
            ids.append(row_ids)
            labels.append(row_labels)
            positions.append(torch.arange(len(row_ids), dtype=torch.long))
        labels, positions = torch.cat(labels)[None], torch.cat(positions)[None]
        bounds = [0]
        for row in ids:
            bounds.append(bounds[-1] + len(row))
        return {"input_ids": torch.cat(ids)[None], "labels": labels, "position_ids": positions,
                "shift_labels": shift_labels(labels, positions), "row_bounds": bounds}

"""Padding-free batches on Gemma 2's eager attention (sliding window smaller than a row, both soft-caps): the
packed loss equals the loss of the rows run one by one.

Finding (transformers 5.23): its own packed-sequence masks (restarting position_ids, no attention mask) are
right for eager attention only when the forward creates no KV cache (``use_cache=False``); with the config's
default ``use_cache=True`` a cache object is made, packing is not detected, and rows attend across each other.
The trainer's packed attention (gemma_trainer.packed_attention) does not depend on that detection.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gemma_trainer.batches import PackedCollator
from gemma_trainer.loss_head import IGNORE_INDEX
from gemma_trainer.packed_attention import use_packed_attention
from gemma_trainer.tiny import build_tiny_gemma2

LENGTHS = (23, 40, 17, 31)


def _model(sliding_window: int, use_cache: bool = False):
    model = build_tiny_gemma2(300, sliding_window=sliding_window, attn_logit_softcapping=50.0,
                              final_logit_softcapping=30.0).float()
    model.config.use_cache = use_cache
    return model


def _rows():
    g = torch.Generator().manual_seed(0)
    rows = []
    for length in LENGTHS:
        ids = torch.randint(3, 300, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * 5 + ids[5:]})
    return rows


def _row_by_row_loss(model, rows) -> torch.Tensor:
    total, count = 0.0, 0
    for row in rows:
        logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1]
        targets = torch.tensor(row["labels"][1:])
        total = total + F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
        count += int((targets != IGNORE_INDEX).sum())
    return total / count


def _packed_loss(model, batch, row_bounds: bool) -> torch.Tensor:
    kwargs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if row_bounds:
        kwargs["row_bounds"] = batch["row_bounds"]
    logits = model(**kwargs).logits[0]
    return F.cross_entropy(logits, batch["shift_labels"][0], ignore_index=IGNORE_INDEX)


def test_the_sliding_window_is_smaller_than_the_rows_and_matters():
    rows = _rows()
    assert min(LENGTHS) > 8
    assert not torch.allclose(_row_by_row_loss(_model(8), rows), _row_by_row_loss(_model(512), rows))


@pytest.mark.parametrize("use_cache", [False, True])
def test_packed_attention_equals_rows_one_by_one(use_cache):
    rows, model = _rows(), _model(8, use_cache)
    expected = _row_by_row_loss(model, rows)
    use_packed_attention(model)
    torch.testing.assert_close(_packed_loss(model, PackedCollator()(rows), row_bounds=True), expected)


def test_transformers_packed_masks_are_right_only_without_a_cache():
    rows, batch = _rows(), PackedCollator()(_rows())
    without_cache = _model(8, use_cache=False)
    torch.testing.assert_close(_packed_loss(without_cache, batch, row_bounds=False),
                               _row_by_row_loss(without_cache, rows))
    with_cache = _model(8, use_cache=True)
    assert not torch.allclose(_packed_loss(with_cache, batch, row_bounds=False),
                              _row_by_row_loss(with_cache, rows), rtol=1e-5, atol=1e-6)

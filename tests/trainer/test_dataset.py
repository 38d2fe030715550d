"""Tokenized rows as a memory-mapped Arrow ``datasets.Dataset``, built once per run."""

from __future__ import annotations

import pytest
from gemma_trainer import tiny
from gemma_trainer.batches import PackedCollator
from gemma_trainer.data import format_and_tokenize
from gemma_trainer.dataset import lengths_of, tokenized_dataset
from gemma_trainer.rows import DataError


def test_rows_are_tokenized_once_into_memory_mapped_arrow(tmp_path):
    tok = tiny.build_tiny_tokenizer()
    rows = tiny.make_dataset_rows("prompt-completion", 12, seed=3)
    expected = format_and_tokenize(rows, "prompt-completion", tok, 64)
    calls = []

    def tokenize():
        calls.append(1)
        return format_and_tokenize(rows, "prompt-completion", tok, 64)

    ds = tokenized_dataset(tmp_path / "data" / "train", tokenize, is_builder=True)
    again = tokenized_dataset(tmp_path / "data" / "train", tokenize, is_builder=True)
    other_rank = tokenized_dataset(tmp_path / "data" / "train", tokenize, is_builder=False)
    assert len(calls) == 1
    for d in (ds, again, other_rank):
        assert d.cache_files and all(str(tmp_path) in f["filename"] for f in d.cache_files)  # memory-mapped files
        assert [list(r["input_ids"]) for r in d] == [f["input_ids"] for f in expected]
        assert [list(r["labels"]) for r in d] == [f["labels"] for f in expected]
    assert lengths_of(ds) == [len(f["input_ids"]) for f in expected]
    batch = PackedCollator()([ds[0], ds[1]])  # the collator takes Arrow rows as they come
    assert batch["input_ids"].shape == (1, lengths_of(ds)[0] + lengths_of(ds)[1])


def test_a_data_error_leaves_no_dataset_behind(tmp_path):
    def tokenize():
        raise DataError("gs://b/t.jsonl", 3, "field 'text' is empty")

    with pytest.raises(DataError, match=r"gs://b/t.jsonl:3: field 'text' is empty"):
        tokenized_dataset(tmp_path / "train", tokenize, is_builder=True)
    assert not (tmp_path / "train").exists()

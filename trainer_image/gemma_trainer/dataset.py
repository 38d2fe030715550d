"""Tokenized training data as a ``datasets.Dataset``: tokenized once per run into Arrow files, memory-mapped.

The rows are read and validated by :func:`gemma_trainer.rows.load_rows` and tokenized by
:func:`gemma_trainer.data.format_and_tokenize` (same checks, same messages). One process per host (local rank 0)
does it and writes ``<run scratch>/data/<name>/`` (Arrow files, ``save_to_disk``); every process then opens that
folder memory-mapped (``load_from_disk``): the token ids live in the page cache, not once per rank in Python lists.
A restarted process on the same host reuses the folder (written to a temporary name, renamed when complete).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS = ("input_ids", "labels", "length")


def _features():
    from datasets import Features, Sequence, Value

    return Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                     "length": Value("int32")})


def write_arrow(features: list[dict], folder: Path) -> None:
    """Write tokenized ``features`` (``input_ids``, ``labels``) to ``folder`` as a saved ``datasets.Dataset``."""
    from datasets import Dataset

    def rows():
        for f in features:
            yield {"input_ids": f["input_ids"], "labels": f["labels"], "length": len(f["input_ids"])}

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    Dataset.from_list(list(rows()), features=_features()).save_to_disk(str(partial))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def tokenized_dataset(folder: Path, tokenize: Callable[[], list[dict]], is_builder: bool,
                      barrier: Callable[[], None] = lambda: None):
    """The memory-mapped dataset in ``folder``, built by ``tokenize()`` (on the builder process only) when the
    folder is not complete yet; every process waits at ``barrier`` before opening it."""
    from datasets import load_from_disk

    if is_builder and not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        features = tokenize()
        write_arrow(features, folder)
        log.info("tokenized %d rows into %s", len(features), folder)
    barrier()
    while not folder.is_dir():  # before torch.distributed is up the barrier is a no-op: wait for the rename
        time.sleep(0.5)  # (a builder that fails exits, and torchrun then stops this worker)
    return load_from_disk(str(folder), keep_in_memory=False)


def lengths_of(dataset) -> list[int]:
    """Token count of each row (the ``length`` column), for length-grouped batching."""
    return list(dataset["length"])

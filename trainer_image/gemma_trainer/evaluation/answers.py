"""The stage's answers, committed in chunks so a preempted evaluation continues where it stopped.

``<run>/evaluation/answers/<answersKey>/base/`` holds the base model's answers (they do not depend on the
adapter), ``.../tuned-<adapter digest>/`` the adapter's. Each chunk is one generation batch,
``chunk-<first row>.json`` = ``{"start": i, "answers": [...]}``; ``loss.json`` the model's held-out loss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

from gemma_api.run import EVALUATION_DIR

from ..object_store import ObjectStore

LOSS_FILE = "loss.json"


def answers_folder(answers_key: str, adapter_uri: str | None) -> str:
    """Folder of one model's answers, relative to the run folder (``adapter_uri`` None: the base model)."""
    side = "base" if adapter_uri is None else f"tuned-{hashlib.sha256(adapter_uri.encode()).hexdigest()[:10]}"
    return f"{EVALUATION_DIR}/answers/{answers_key}/{side}"


def _chunk_name(start: int) -> str:
    return f"chunk-{start:08d}.json"


class AnswerChunks:
    """One model's committed answers in a store folder."""

    def __init__(self, store: ObjectStore):
        self.store = store

    def committed(self) -> dict[int, str]:
        """Row index -> answer, from every committed chunk."""
        found: dict[int, str] = {}
        for name in self.store.list():
            if name.startswith("chunk-"):
                chunk = json.loads(self.store.read_text(name))
                found.update({chunk["start"] + i: a for i, a in enumerate(chunk["answers"])})
        return found

    def commit(self, start: int, answers: list[str]) -> None:
        self.store.write_text(_chunk_name(start), json.dumps({"start": start, "answers": answers}))

    def loss(self) -> float | None | bool:
        """The committed held-out loss (None: the model had none), or False when not committed yet."""
        if not self.store.exists(LOSS_FILE):
            return False
        return json.loads(self.store.read_text(LOSS_FILE))["loss"]

    def commit_loss(self, loss: float | None) -> None:
        self.store.write_text(LOSS_FILE, json.dumps({"loss": loss}))


def pending_batches(total: int, done: dict[int, str], batch_size: int) -> Iterator[list[int]]:
    """The rows without an answer, in consecutive batches of at most ``batch_size`` (a batch never spans a
    committed row, so each becomes one chunk named by its first row)."""
    batch: list[int] = []
    for i in range(total):
        if i in done:
            if batch:
                yield batch
                batch = []
            continue
        batch.append(i)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def complete(chunks: AnswerChunks, total: int, batch_size: int, answer: Callable[[list[int]], list[str]],
             stop: Callable[[], bool]) -> list[str] | None:
    """Every row's answer: the committed ones, and the rest generated (``answer``) and committed batch by batch;
    None when ``stop()`` says so before a batch (a preemption: what was committed stays)."""
    done = chunks.committed()
    for batch in pending_batches(total, done, batch_size):
        if stop():
            return None
        answers = answer(batch)
        chunks.commit(batch[0], answers)
        done.update(zip(batch, answers, strict=True))
    return [done[i] for i in range(total)]

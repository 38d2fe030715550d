"""The teacher's stored outputs: ``<teacher>/<split>/shard-NNNNNNNN/targets.safetensors`` plus ``COMMITTED``.

One shard holds the teacher's targets for ``rows_per_shard`` consecutive rows of one split (``train`` or
``eval``), in row order and, within a row, in position order (the positions whose next token is labelled):

* ``input_ids`` int32 [tokens]: the rows' token ids, concatenated (the student checks its own tokenisation
  against them);
* ``row_lengths`` int32 [rows], ``target_counts`` int32 [rows]: tokens and labelled positions per row;
* ``topk_ids`` int32 [positions, k], ``topk_logprobs`` float32 [positions, k], ``rest_logmass`` float32
  [positions]: see ``heads.py``.

A shard is written locally, uploaded and committed like a checkpoint (``CheckpointManager`` with its own root).
When every shard of both splits is committed, ``<teacher>/COMMITTED`` (JSON: rows and shards per split, topK,
temperature) marks the stage done; the student stage reads nothing from a teacher folder without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from gemma_api.run import COMMIT_MARKER

from ..checkpoints import CheckpointManager
from ..errors import ModelError

SPLITS = ("train", "eval")
TARGETS_FILE = "targets.safetensors"
TARGET_KEYS = ("teacher_ids", "teacher_logprobs", "teacher_rest")


class TeacherOutputError(ModelError):
    """The teacher folder is incomplete or does not match the student's rows (exit code 2)."""


def shard_manager(store, split: str) -> CheckpointManager:
    return CheckpointManager(store, root=split, name="shard")


def shard_count(rows: int, rows_per_shard: int) -> int:
    return -(-rows // rows_per_shard)


def write_shard(path: Path, rows: list[dict], ids: torch.Tensor, logprobs: torch.Tensor,
                rest: torch.Tensor, counts: list[int]) -> Path:
    """Write one shard's tensors (``rows``: the features in order) to ``path/targets.safetensors``."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        "input_ids": torch.tensor([t for r in rows for t in r["input_ids"]], dtype=torch.int32),
        "row_lengths": torch.tensor([len(r["input_ids"]) for r in rows], dtype=torch.int32),
        "target_counts": torch.tensor(counts, dtype=torch.int32),
        "topk_ids": ids.to(torch.int32).contiguous(),
        "topk_logprobs": logprobs.float().contiguous(),
        "rest_logmass": rest.float().contiguous(),
    }
    save_file(tensors, str(path / TARGETS_FILE))
    return path


class StoredTargets:
    """The committed teacher outputs of one split, downloaded once and read lazily (memory-mapped)."""

    def __init__(self, store, split: str, local_dir: Path):
        from safetensors import safe_open

        manager = shard_manager(store, split)
        self.files = []
        self.index: list[tuple[int, int, int, int, int]] = []  # shard, token offset, length, target offset, count
        for info in manager.committed():
            local = manager.download(info, local_dir / info.rel)
            handle = safe_open(str(local / TARGETS_FILE), framework="pt")
            lengths = handle.get_tensor("row_lengths").tolist()
            counts = handle.get_tensor("target_counts").tolist()
            token, target = 0, 0
            for length, count in zip(lengths, counts, strict=True):
                self.index.append((len(self.files), token, length, target, count))
                token, target = token + length, target + count
            self.files.append(handle)

    def __len__(self) -> int:
        return len(self.index)

    def input_ids(self, row: int) -> list[int]:
        shard, token, length, _, _ = self.index[row]
        return self.files[shard].get_slice("input_ids")[token:token + length].tolist()

    def targets(self, rows: list[int]) -> dict[str, torch.Tensor]:
        """The teacher tensors of ``rows``, concatenated in that order (``TARGET_KEYS``)."""
        parts = {key: [] for key in TARGET_KEYS}
        for row in rows:
            shard, _, _, target, count = self.index[row]
            handle = self.files[shard]
            parts["teacher_ids"].append(handle.get_slice("topk_ids")[target:target + count].long())
            parts["teacher_logprobs"].append(handle.get_slice("topk_logprobs")[target:target + count])
            parts["teacher_rest"].append(handle.get_slice("rest_logmass")[target:target + count])
        return {key: torch.cat(value) for key, value in parts.items()}


def read_stage_marker(store) -> dict | None:
    """The teacher stage's completion record, or None while the stage is not done."""
    if not store.exists(COMMIT_MARKER):
        return None
    return json.loads(store.read_text(COMMIT_MARKER))

"""Distillation test helpers: a trained tiny teacher, student bases, held-out KL measured with full softmaxes."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
import torch
from gemma_trainer.tiny import build_tiny_gemma2, make_dataset_rows

from tests.operator.conftest import cluster, kubeconfig, operator, operator_factory
from tests.trainer.conftest import make_manifest, run_folder, tiny_model_dir, train_in_process, write_jsonl

__all__ = ["cluster", "kubeconfig", "operator", "operator_factory", "tiny_model_dir"]  # fixtures used here


COLOURS = ["red", "green", "blue", "black", "white"]
NUMBERS = ["one", "two", "three", "four", "five"]


def task_rows(n: int, seed: int) -> list[dict]:
    """Prompt-completion rows of a task with a deterministic half (capitals, reversals, opposites) and a
    stochastic half ("pick a colour", "say a number": answers drawn at random), where a teacher's distribution
    carries what one sampled label cannot."""
    rng = random.Random(seed)
    rows = make_dataset_rows("prompt-completion", n, seed=seed)
    for i in range(0, n, 2):
        colour = rng.randrange(2) == 0
        rows[i] = {"prompt": "pick a colour" if colour else "say a number",
                   "completion": rng.choice(COLOURS if colour else NUMBERS)}
    return rows


@pytest.fixture(scope="session")
def task(tmp_path_factory) -> dict:
    """The teacher learns from 192 rows; students get the first 48 of them; 24 other rows are held out."""
    root = tmp_path_factory.mktemp("distill-task")
    rows = task_rows(192, seed=11)
    return {
        "root": root,
        "teacher_train": write_jsonl(root / "teacher-train.jsonl", rows),
        "train": write_jsonl(root / "train.jsonl", rows[:48]),
        "eval": write_jsonl(root / "eval.jsonl", task_rows(16, seed=12)),
        "heldout": task_rows(24, seed=13),
    }


@pytest.fixture(scope="session")
def student_base(tmp_path_factory, tiny_model_dir) -> Path:
    """Another tiny Gemma 2 (other seed, same tokenizer): the student's starting point."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("student-base")
    build_tiny_gemma2(len(AutoTokenizer.from_pretrained(tiny_model_dir)), seed=5).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory, tiny_model_dir, task) -> Path:
    """A teacher fine-tuned on the task (method full: its adapter folder is the whole model)."""
    root = tmp_path_factory.mktemp("teacher")
    manifest = make_manifest(root / "teacher.yaml", model_dir=tiny_model_dir, train_uri=task["teacher_train"],
                             output_uri=root / "out", method="full", name="teacher",
                             training={"maxSteps": 40, "learningRate": 3e-3, "batchSize": 8, "seed": 1},
                             output={"checkpointEverySteps": 40, "keepCheckpoints": 1})
    with one_torch_thread():
        assert train_in_process(manifest, root) == 0
    return Path(run_folder(manifest)) / "adapter"


def heldout_kl(teacher, student, tokenizer, rows) -> float:
    """Mean KL(teacher || student) per labelled held-out position, from full softmaxes at temperature 1."""
    from gemma_trainer.batches import PadCollator
    from gemma_trainer.data import format_and_tokenize

    batch = PadCollator(tokenizer.pad_token_id)(format_and_tokenize(rows, "prompt-completion", tokenizer, 64))
    mask = batch["labels"][:, 1:] != -100
    with torch.no_grad():
        logp = torch.log_softmax(teacher(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double(), -1)
        logq = torch.log_softmax(student(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double(), -1)
    kl = (logp.exp() * (logp - logq)).sum(-1)[:, :-1][mask]
    return float(kl.mean())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def one_torch_thread():
    """Tiny models train several times faster on one thread than on two that a loaded machine shares."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread_per_test():
    with one_torch_thread():
        yield

"""Trainer test helpers: a tiny Gemma 2 on disk, data files, manifests, and running ``gemmaft train``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gemma_trainer.tiny import DATASET_KINDS, dataset_texts, make_dataset_rows, save_tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Gemma 2 + tokenizer saved with save_pretrained (trained on the texts of every data set kind)."""
    texts = [t for kind in DATASET_KINDS for t in dataset_texts(make_dataset_rows(kind, 64, seed=0))]
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"), texts=texts)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_manifest(path: Path, *, model_dir, train_uri, output_uri, name: str = "tiny", method: str = "lora",
                  fmt: str = "auto", training: dict | None = None, output: dict | None = None,
                  accelerator: dict | None = None, eval_uri: str | None = None, **spec_extra) -> Path:
    """Write a GemmaFineTune manifest for the tiny model and return its path."""
    train = {"maxSteps": 6, "batchSize": 4, "gradientAccumulationSteps": 1, "learningRate": 1e-2,
             "maxSeqLength": 64, "warmupRatio": 0.0, "loggingSteps": 1, "lrScheduler": "constant", "seed": 7}
    train.update(training or {})
    out = {"uri": str(output_uri), "checkpointEverySteps": 3, "keepCheckpoints": 2}
    out.update(output or {})
    dataset = {"trainUri": str(train_uri), "format": fmt}
    if eval_uri:
        dataset["evalUri"] = str(eval_uri)
    spec = {
        "model": "gemma-2-2b", "modelUri": str(model_dir), "method": method, "dataset": dataset,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.05},
        "freeze": {"trainableLayers": 1},
        "training": train, "accelerator": accelerator or {"type": "cpu"}, "output": out,
    }
    spec.update(spec_extra)
    doc = {"apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cli_cmd(manifest: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gemmaft.cli", "train", "-f", str(manifest), *extra]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GEMMAFT_WORK_DIR": str(tmp_path / "work"), "GEMMAFT_CACHE_DIR": str(tmp_path / "cache"),
                "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    env.update(extra)
    return env


def run_cli(manifest: Path, tmp_path: Path, *extra: str, timeout: float = 180, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd(manifest, *extra), env=cli_env(tmp_path, **env), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def train_in_process(manifest: Path, tmp_path: Path, output_uri: str | None = None,
                     max_steps: int | None = None, monkeypatch=None) -> int:
    """``gemmaft train`` in this process (faster than a subprocess)."""
    import argparse

    from gemma_trainer.cli import train_main

    if monkeypatch is not None:
        monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
        monkeypatch.setenv("GEMMAFT_CACHE_DIR", str(tmp_path / "cache"))
    return train_main(argparse.Namespace(file=str(manifest), output_uri=output_uri, max_steps=max_steps))


def run_folder(manifest: Path) -> str:
    """The run URI the trainer writes to for this manifest."""
    from gemma_api import RunConfig, parse_finetune

    return RunConfig.for_finetune(parse_finetune(yaml.safe_load(manifest.read_text()), local_run=True)).run_uri


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]

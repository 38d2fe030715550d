"""The evaluation stage on a tiny Gemma trained here: the gate and its exit code, results.json and the report,
a preempted stage that resumes to the same results, gemmaft evaluate, and the TensorBoard event files."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from gemma_api.run import EXIT_BELOW_THRESHOLD, EXIT_INVALID_INPUT, EXIT_OK, EXIT_PREEMPTED
from gemma_trainer.tiny import make_dataset_rows

from tests.trainer.conftest import make_manifest, read_metrics, run_folder, train_in_process, write_jsonl

pytestmark = pytest.mark.slow

PASSING = {"maxNewTokens": 6, "batchSize": 3, "checks": [{"type": "regex", "pattern": ".", "minScore": 0.0},
                                                        {"type": "jsonValid", "minScore": 0.0}]}
FAILING = {**PASSING, "checks": [*PASSING["checks"], {"type": "exactMatch", "minScore": 1.0}]}


def spec_file(tmp_path: Path, model_dir, evaluation: dict, name: str = "ev") -> Path:
    rows = make_dataset_rows("prompt-completion", 32, seed=1)
    train = write_jsonl(tmp_path / "data" / "train.jsonl", rows[:24])
    held = write_jsonl(tmp_path / "data" / "eval.jsonl", rows[24:])
    return make_manifest(tmp_path / f"{name}.yaml", model_dir=model_dir, train_uri=train, output_uri=tmp_path / "out",
                         eval_uri=held, name=name, training={"maxSteps": 4, "evalEverySteps": 2},
                         output={"checkpointEverySteps": 2}, evaluation=evaluation)


def results_of(manifest: Path) -> dict:
    return json.loads((Path(run_folder(manifest)) / "evaluation" / "results.json").read_text())


def test_train_runs_the_gate_and_a_failed_gate_exits_4(tmp_path, tiny_model_dir, monkeypatch):
    good = spec_file(tmp_path, tiny_model_dir, PASSING)
    assert train_in_process(good, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    results = results_of(good)
    assert results["passed"] and results["rows"] == 8 and len(results["answers"]) == 8
    assert [c["type"] for c in results["checks"]] == ["regex", "jsonValid"]
    assert all({"minScore", "score", "baseScore", "passed"} <= set(c) for c in results["checks"])
    assert results["evalLoss"] is not None and results["baseEvalLoss"] is not None
    assert results["evalLoss"] < results["baseEvalLoss"], "four steps of training lower the held-out loss"
    report = (Path(run_folder(good)) / "evaluation" / "report.md").read_text()
    assert "**Gate PASSED**" in report

    strict = spec_file(tmp_path, tiny_model_dir, FAILING)  # only the evaluation differs: same run, no training
    assert run_folder(strict) == run_folder(good)
    assert train_in_process(strict, tmp_path, monkeypatch=monkeypatch) == EXIT_BELOW_THRESHOLD
    failed = results_of(strict)
    assert not failed["passed"] and failed["reason"] == "BelowThreshold"
    assert failed["message"].startswith("checks[2] exactMatch scored ")
    assert failed["message"].endswith("below its minScore 1.000")
    assert [a["tuned"] for a in failed["answers"]] == [a["tuned"] for a in results["answers"]], \
        "a change of checks rescores the committed answers"

    first = spec_file(tmp_path, tiny_model_dir, {**PASSING, "maxRows": 5})  # the same adapter, five rows only
    assert train_in_process(first, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    five = results_of(first)
    assert five["rows"] == 5 and five["answers"] == results["answers"][:5]


def test_a_preempted_evaluation_resumes_to_the_uninterrupted_results(tmp_path, tiny_model_dir, monkeypatch):
    import shutil

    from gemma_trainer.backends import device_setup
    from gemma_trainer.callbacks import PreemptionCallback
    from gemma_trainer.config import load_run_config
    from gemma_trainer.evaluation.stage import run_evaluation

    path = spec_file(tmp_path, tiny_model_dir, PASSING)
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    whole = results_of(path)
    shutil.rmtree(Path(run_folder(path)) / "evaluation")

    cfg = load_run_config(str(path), local_run=True)
    setup = device_setup(cfg.spec)
    generated = []

    def preempt_after_first_chunk():
        generated.append(1)
        if len(generated) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    preemption = PreemptionCallback()
    preemption.install()
    try:
        assert run_evaluation(cfg, setup, preemption=preemption, on_chunk=preempt_after_first_chunk) == EXIT_PREEMPTED
    finally:
        preemption.uninstall()
    assert len(generated) == 1
    assert run_evaluation(cfg, setup, on_chunk=preempt_after_first_chunk) == EXIT_OK
    assert len(generated) == 6, "8 rows in chunks of 3 for each model: the committed chunk is not generated again"
    assert results_of(path) == whole


def test_evaluate_alone_and_a_bad_schema_uri(tmp_path, tiny_model_dir, monkeypatch, capsys):
    import argparse

    from gemma_trainer.cli import evaluate_main

    path = spec_file(tmp_path, tiny_model_dir, PASSING)
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    adapter = Path(run_folder(path)) / "adapter"
    assert evaluate_main(argparse.Namespace(file=str(path), adapter=str(adapter))) == EXIT_OK
    assert results_of(path)["adapterUri"] == str(adapter)
    broken = {**PASSING, "checks": [{"type": "jsonSchema", "schemaUri": str(tmp_path / "none.json"), "minScore": 0.5}]}
    bad = spec_file(tmp_path, tiny_model_dir, broken, name="bad")
    assert evaluate_main(argparse.Namespace(file=str(bad), adapter=str(adapter))) == EXIT_INVALID_INPUT
    assert "spec.evaluation.checks[0].schemaUri: cannot read the schema" in capsys.readouterr().err


def test_tensorboard_holds_every_logged_loss_of_metrics_jsonl(tmp_path, tiny_model_dir, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = spec_file(tmp_path, tiny_model_dir, PASSING)
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    run = Path(run_folder(path))
    board = EventAccumulator(str(run / "tensorboard"))
    board.Reload()
    tags = set(board.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second", "eval/loss",
            "evaluation/0-regex/score", "evaluation/eval_loss"} <= tags, tags
    losses = {e.step: e.value for e in board.Scalars("train/loss")}
    logged = {m["step"]: m["loss"] for m in read_metrics(run) if m.get("loss") is not None}
    assert sorted(losses) == sorted(logged) == [1, 2, 3, 4]
    assert all(losses[s] == pytest.approx(logged[s], rel=1e-6) for s in logged)

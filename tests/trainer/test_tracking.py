"""spec.tracking through transformers' own integrations, with the real clients the trainer images install.

MLflow: its file store (the client's own backend, reached through the same calls a tracking server gets; MLflow
3 asks for MLFLOW_ALLOW_FILE_STORE to use it) receives every logged loss, equal to metrics.jsonl, in the
experiment the spec names. W&B: offline mode (no server here) writes the run under the id the operator gives
every attempt of a run (WANDB_RUN_ID), so a resumed attempt continues it. The environment stands in for what the
Secret's keys and the Job's env give a trainer pod (tests/render checks those)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gemma_api import parse_finetune
from gemma_api.run import EXIT_OK
from gemma_trainer.errors import ConfigError
from gemma_trainer.tiny import make_dataset_rows
from gemma_trainer.tracking import check_trackers

from tests.conftest import manifest

from .conftest import make_manifest, read_metrics, run_folder, train_in_process, write_jsonl

pytestmark = pytest.mark.slow


def _spec(tmp_path: Path, tiny_model_dir, tracking: dict) -> Path:
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 16, seed=3))
    return make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                         output_uri=tmp_path / "out", training={"maxSteps": 3}, tracking=tracking)


def _pod_env(monkeypatch, spec_file: Path, **secret: str) -> None:
    """What the Job gives the trainer: the spec's tracking variables, and the Secret's keys (envFrom)."""
    import yaml
    from gemma_api import run_id

    ft = parse_finetune(yaml.safe_load(spec_file.read_text()))
    for name, value in {**ft.spec.tracking.environment(run_id(ft.spec)), **secret}.items():
        monkeypatch.setenv(name, value)


def test_mlflow_receives_every_logged_loss_in_the_named_experiment(tmp_path, tiny_model_dir, monkeypatch):
    import mlflow

    path = _spec(tmp_path, tiny_model_dir, {"reportTo": ["mlflow"], "experiment": "records",
                                            "secretRef": {"name": "mlflow"}})
    store = f"file://{tmp_path / 'mlruns'}"
    _pod_env(monkeypatch, path, MLFLOW_TRACKING_URI=store, MLFLOW_ALLOW_FILE_STORE="true",
             MLFLOW_DISABLE_TELEMETRY="true", XDG_CONFIG_HOME=str(tmp_path / "config"))  # nothing in HOME
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("records")
    (run,) = client.search_runs([experiment.experiment_id])
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    written = {m["step"]: m["loss"] for m in read_metrics(Path(run_folder(path))) if "loss" in m}
    assert logged.keys() == written.keys() and len(written) == 3
    assert all(logged[step] == pytest.approx(written[step], rel=1e-6) for step in written)
    assert run.info.run_name.startswith("tiny-")


def test_wandb_offline_run_carries_the_operators_run_id(tmp_path, tiny_model_dir, monkeypatch):
    path = _spec(tmp_path, tiny_model_dir, {"reportTo": ["wandb"], "experiment": "records"})
    _pod_env(monkeypatch, path, WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb"), WANDB_SILENT="true",
             WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
             WANDB_DATA_DIR=str(tmp_path / "wandb-data"))  # nothing in HOME
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    rid = run_folder(path).rsplit("/", 1)[1]
    runs = list((tmp_path / "wandb").rglob(f"offline-run-*-{rid}"))
    assert runs and any(f.suffix == ".wandb" for f in runs[0].iterdir()), runs


def test_a_missing_client_package_is_refused_before_training_with_the_field():
    spec = parse_finetune(manifest(tracking={"reportTo": ["mlflow", "wandb"]})).spec
    with pytest.raises(ConfigError) as info:
        check_trackers(spec, installed=lambda package: None if package == "wandb" else object())
    assert info.value.source == "spec.tracking.reportTo" and len(info.value.lines) == 1
    assert info.value.lines[0].startswith("wandb: its client package wandb is not installed")
    check_trackers(spec)  # the lane installs both, as the trainer images do

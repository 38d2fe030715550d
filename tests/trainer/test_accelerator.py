"""A T4 or TPU spec whose accelerator is not visible never trains on the CPU: AcceleratorUnavailable, exit 1, which
the Job retries (its podFailurePolicy fails the Job only on exit 2 and ignores 143)."""

from __future__ import annotations

import pytest
from gemma_api.run import EXIT_FAILED
from gemma_trainer.backends import device_setup
from gemma_trainer.errors import AcceleratorUnavailable

from .conftest import make_manifest, train_in_process, write_jsonl


def _spec(accelerator: dict):
    from gemma_api import parse_spec

    return parse_spec({"model": "gemma-2-2b", "dataset": {"trainUri": "gs://data/t.jsonl"},
                       "accelerator": accelerator, "output": {"uri": "gs://out/runs"}})


def test_t4_spec_without_a_gpu_is_refused():
    with pytest.raises(AcceleratorUnavailable, match="nvidia-tesla-t4 but no CUDA GPU"):
        device_setup(_spec({"type": "nvidia-tesla-t4"}), capability=None)


def test_tpu_spec_without_a_tpu_is_refused():
    with pytest.raises(AcceleratorUnavailable, match="tpu-v3 but no TPU"):
        device_setup(_spec({"type": "tpu-v3"}), tpu=False)
    # Detected here: this lane has no torch_xla (and no TPU), so detection must refuse too.
    with pytest.raises(AcceleratorUnavailable):
        device_setup(_spec({"type": "tpu-v3"}))


def test_gemmaft_train_of_a_t4_spec_on_this_cpu_machine_exits_1_without_training(tmp_path, tiny_model_dir, bucket,
                                                                                   monkeypatch, capsys):
    from gemma_trainer.tiny import make_dataset_rows

    data = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("prompt-completion", 8))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=data,
                             output_uri=f"gs://{bucket.name}/runs", accelerator={"type": "nvidia-tesla-t4"},
                             training={"maxSteps": 2})
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "no CUDA GPU is visible" in err and "Traceback" not in err
    assert not list(bucket.list_blobs(prefix="runs/")), "it started a run anyway"


def test_exit_1_is_retried_by_the_job():
    from gemma_api import parse_finetune
    from gemma_operator.render import RenderSettings, render_run

    from tests.conftest import manifest

    ft = parse_finetune(manifest(accelerator={"type": "nvidia-tesla-t4"}))
    objs = {o["kind"]: o for o in render_run(ft, RenderSettings(), "default")}
    job = objs["Job"]["spec"]
    codes = [v for rule in job["podFailurePolicy"]["rules"] for v in rule.get("onExitCodes", {}).get("values", [])]
    assert EXIT_FAILED not in codes and job["backoffLimit"] >= 1

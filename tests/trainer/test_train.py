"""Training on CPU with the tiny Gemma 2: loss, methods, formats, outputs, fake GCS, error exit codes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch
from gemma_api.run import COMMIT_MARKER, EXIT_FAILED, EXIT_INVALID_INPUT, EXIT_OK
from gemma_trainer.tiny import make_dataset_rows

from .conftest import make_manifest, read_metrics, run_cli, run_folder, train_in_process, write_jsonl

pytestmark = pytest.mark.slow


def _logits(model, tokenizer, text="What is the capital of france?"):
    batch = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_lora_loss_falls_and_writes_every_output(tmp_path, tiny_model_dir, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 48, seed=1))
    evals = write_jsonl(tmp_path / "eval.jsonl", make_dataset_rows("text", 8, seed=2))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train, eval_uri=evals,
                             output_uri=tmp_path / "out",
                             training={"maxSteps": 30, "learningRate": 3e-2, "evalEverySteps": 10},
                             lora={"r": 8, "alpha": 16, "dropout": 0.0}, output={"checkpointEverySteps": 10,
                                                                                "keepCheckpoints": 2,
                                                                                "mergeAdapter": True})
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    run = Path(run_folder(manifest))

    metrics = read_metrics(run)
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    assert len(losses) == 30
    # A random tiny model starts near ln(vocab) = 5.95; 30 LoRA steps bring the mean down clearly.
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.15, losses
    assert [m["step"] for m in metrics if "eval_loss" in m] == [10, 20, 30]
    assert all(m["learning_rate"] > 0 and m["grad_norm"] is not None for m in metrics if "loss" in m)

    progress = json.loads((run / "progress.json").read_text())
    assert progress["state"] == "completed" and progress["step"] == 30 and progress["totalSteps"] == 30
    assert progress["adapterUri"] == str(run / "adapter")
    assert progress["mergedModelUri"] == str(run / "merged")
    assert progress["lastCheckpoint"].endswith("checkpoints/step-00000030")
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"

    # keepCheckpoints 2: steps 20 and 30 stay, each committed.
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000020", "step-00000030"]
    assert all((run / "checkpoints" / k / COMMIT_MARKER).is_file() for k in kept)

    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager").eval()
    base_logits = _logits(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, run / "adapter").eval()
    tuned_logits = _logits(tuned, tokenizer)
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3)
    merged = AutoModelForCausalLM.from_pretrained(run / "merged", attn_implementation="eager").eval()
    assert torch.allclose(_logits(merged, tokenizer), tuned_logits, atol=1e-4)


@pytest.mark.parametrize("method,fmt", [("lora", "messages"), ("freeze", "text"), ("full", "prompt-completion")])
def test_each_method_and_format_trains(tmp_path, tiny_model_dir, monkeypatch, method, fmt):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows(fmt, 16, seed=3))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train, fmt=fmt,
                             output_uri=tmp_path / "out", method=method, training={"maxSteps": 4})
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    run = Path(run_folder(manifest))
    assert json.loads((run / "progress.json").read_text())["state"] == "completed"
    assert len([m for m in read_metrics(run) if "loss" in m]) == 4
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    base_state = base.state_dict()
    if method == "lora":
        assert (run / "adapter" / "adapter_config.json").is_file()
    elif method == "freeze":
        tensors = load_file(run / "adapter" / "trainable.safetensors")
        # Only the last decoder layer (trainableLayers 1) and the final norm were trained.
        assert tensors and all(k.startswith(("model.layers.1.", "model.norm.")) for k in tensors), sorted(tensors)
        assert any(not torch.equal(t, base_state[k]) for k, t in tensors.items())
    else:
        full = AutoModelForCausalLM.from_pretrained(run / "adapter", attn_implementation="eager").state_dict()
        assert not torch.equal(full["model.layers.0.self_attn.q_proj.weight"],
                               base_state["model.layers.0.self_attn.q_proj.weight"])


def test_gs_output_checkpoints_round_trip_through_fake_gcs(tmp_path, tiny_model_dir, bucket, monkeypatch):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 16, seed=4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=f"gs://{bucket.name}/runs", training={"maxSteps": 4},
                             output={"checkpointEverySteps": 2, "keepCheckpoints": 1})
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    rid = run_folder(manifest).rsplit("/", 1)[1]
    names = {b.name for b in bucket.list_blobs(prefix=f"runs/{rid}/")}
    assert f"runs/{rid}/checkpoints/step-00000004/{COMMIT_MARKER}" in names
    assert not any("step-00000002" in n for n in names)  # pruned after step 4 committed
    assert f"runs/{rid}/adapter/adapter_model.safetensors" in names
    progress = json.loads(bucket.blob(f"runs/{rid}/progress.json").download_as_text())
    assert progress["adapterUri"] == f"gs://{bucket.name}/runs/{rid}/adapter"

    # A second run of the same config resumes from the committed step 4 downloaded from the bucket.
    manifest8 = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                              output_uri=f"gs://{bucket.name}/runs", training={"maxSteps": 4},
                              output={"checkpointEverySteps": 2, "keepCheckpoints": 1})
    assert train_in_process(manifest8, tmp_path, max_steps=None, monkeypatch=monkeypatch) == EXIT_OK
    metrics = [json.loads(x) for x in bucket.blob(f"runs/{rid}/metrics.jsonl").download_as_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]  # nothing retrained, no step twice


def test_corrupt_dataset_exits_2_naming_file_and_line(tmp_path, tiny_model_dir, monkeypatch, capsys):
    train = tmp_path / "train.jsonl"
    rows = make_dataset_rows("text", 5)
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"text": "broken\n' + json.dumps(rows[4]))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out")
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_INVALID_INPUT
    err = capsys.readouterr().err
    assert f"{train}:4" in err
    assert "Traceback" not in err


def test_missing_model_dir_exits_2(tmp_path, monkeypatch, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tmp_path / "no-such-model", train_uri=train,
                             output_uri=tmp_path / "out")
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_INVALID_INPUT
    err = capsys.readouterr().err
    assert "no-such-model" in err and "does not exist" in err
    assert "Traceback" not in err


def test_unreachable_bucket_is_a_clear_transient_failure(tmp_path, tiny_model_dir, gcs, monkeypatch, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 4))
    missing = f"nobucket-{uuid.uuid4().hex[:10]}"
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=f"gs://{missing}/runs")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"gs://{missing}" in err and "does not exist" in err
    assert "Traceback" not in err


def test_invalid_manifest_exits_2_with_field_messages(tmp_path, tiny_model_dir):
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=tmp_path / "t.jsonl",
                             output_uri=tmp_path / "out", training={"learningRate": -1, "batchSizes": 2})
    result = run_cli(manifest, tmp_path)
    assert result.returncode == EXIT_INVALID_INPUT
    assert "spec.training.learningRate" in result.stderr and "spec.training.batchSizes" in result.stderr
    assert "Traceback" not in result.stderr


def _spec(**overrides):
    from gemma_api import parse_spec

    spec = {"model": "gemma-2-2b", "dataset": {"trainUri": "gs://data/t.jsonl"},
            "accelerator": {"type": "nvidia-tesla-t4"}, "output": {"uri": "gs://out/runs"}}
    spec.update(overrides)
    return parse_spec(spec)


@pytest.mark.parametrize("capability,precision,args", [
    ((7, 5), "fp16", {"fp16": True}),  # T4: no bf16, fp16 autocast
    ((8, 0), "bf16", {"bf16": True}),
])
def test_precision_follows_compute_capability(capability, precision, args):
    from gemma_trainer.backends import device_setup

    plan = device_setup(_spec(accelerator={"type": "nvidia-tesla-t4", "count": 2}), capability=capability)
    assert plan.precision == precision and plan.device == "cuda"
    assert {k: v for k, v in plan.training_args.items() if k in ("fp16", "bf16")} == args
    assert plan.nproc == 2
    cpu = device_setup(_spec(accelerator={"type": "cpu"}, output={"uri": "/tmp/o"}))
    assert (cpu.precision, cpu.device, cpu.nproc) == ("fp32", "cpu", 1)
    tpu = device_setup(_spec(accelerator={"type": "tpu-v3"}, method="lora"), tpu=True)
    assert tpu.precision == "bf16" and tpu.training_args.get("dataloader_drop_last") is True


def test_qlora_without_cuda_is_a_clear_error(tiny_model_dir):
    from gemma_trainer.backends import device_setup
    from gemma_trainer.errors import ModelError
    from gemma_trainer.model import load_model

    spec = _spec(method="qlora")
    plan = device_setup(_spec(accelerator={"type": "cpu"}, output={"uri": "/tmp/o"}))  # no GPU
    with pytest.raises(ModelError, match="qlora needs a CUDA GPU"):
        load_model(tiny_model_dir, spec, plan)

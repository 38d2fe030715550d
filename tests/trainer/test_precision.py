"""The precision policy on the tiny Gemma 2: where each tensor lives, the fp16 emulation against real fp16
kernels, loss scaling on the CPU, and the guard that stops a run whose loss is not finite."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gemma_api.families import precision_policy
from gemma_api.precision import BF16, FP16_PROJECTIONS, FP32
from gemma_api.run import EXIT_NON_FINITE, EXIT_OK
from gemma_trainer.guard import MAX_SKIPPED_STEPS, NonFiniteGuard, NonFiniteLoss, check_grad_norm
from gemma_trainer.precision import HalfProjection, apply_precision
from gemma_trainer.tiny import build_tiny_gemma2, make_dataset_rows

from .conftest import make_manifest, read_metrics, run_folder, write_jsonl

T4 = {"type": "nvidia-tesla-t4"}


def test_every_gemma_family_on_fp16_gets_the_safe_policy():
    for family in ("gemma2", "gemma3", "a-family-nobody-measured"):
        assert precision_policy(family, "float16") is FP16_PROJECTIONS
    assert precision_policy("gemma3", "bfloat16").stream == "bfloat16"
    assert precision_policy("gemma2", "float32").projections == "float32"


def test_plan_names_the_policy_the_trainer_applies():
    import subprocess
    import sys

    from .conftest import REPO

    out = subprocess.run([sys.executable, "-m", "gemmaft.cli", "plan", "-f", "examples/t4-2b-lora.yaml"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    precision = json.loads(out)["precision"]
    assert (precision["policy"], precision["stream"], precision["weights"]) == ("fp16-projections", "float32",
                                                                                 "float16")


def test_t4_policy_places_each_tensor():
    model = apply_precision(build_tiny_gemma2(64, seed=3).half(), FP16_PROJECTIONS, emulated=True)
    layer = model.model.layers[0]
    assert type(layer.self_attn.q_proj) is HalfProjection and layer.self_attn.q_proj.weight.dtype == torch.float16
    assert type(layer.mlp.down_proj) is HalfProjection and layer.mlp.down_proj.layer_index == 0
    assert layer.input_layernorm.weight.dtype == torch.float32 and model.model.norm.weight.dtype == torch.float32
    assert model.model.embed_tokens.weight.dtype == torch.float16  # tied to the LM head: not doubled
    assert model.lm_head.weight is model.model.embed_tokens.weight
    ids = torch.tensor([[2, 5, 9, 11]])
    assert model.model.embed_tokens(ids).dtype == torch.float32  # the stream starts in fp32
    assert model(input_ids=ids).logits.dtype == torch.float32


def test_emulated_projection_equals_the_native_fp16_kernel():
    """Forward and backward of the emulation against torch's own fp16 matmuls (on the CPU here; a tensor core
    rounds the same way): equal up to one fp16 rounding step."""
    torch.manual_seed(0)
    native, emulated = (HalfProjection(48, 40, bias=False).half() for _ in range(2))
    emulated.load_state_dict(native.state_dict())
    emulated.emulated = True
    x = (torch.randn(3, 7, 48) * 30).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out_native, out_emulated = native(x), emulated(x2)
    assert out_native.dtype == out_emulated.dtype == torch.float32
    torch.testing.assert_close(out_emulated, out_native, rtol=2e-3, atol=1e-2)
    grad = torch.randn_like(out_native) * 1e-3
    out_native.backward(grad)
    out_emulated.backward(grad)
    torch.testing.assert_close(x2.grad, x.grad, rtol=2e-3, atol=1e-6)
    # fp16 is really there: an input beyond 65,504 overflows in both, and the fp32 reference does not.
    big = torch.full((1, 48), 7e4)
    assert not torch.isfinite(emulated(big)).any() and not torch.isfinite(native(big)).any()
    assert torch.isfinite(torch.nn.functional.linear(big, native.weight.float())).all()


def _train(tmp_path, monkeypatch, model_dir, emulate: bool, rows=None,
           checkpoint_every: int = 2, method: str = "lora", model: str = "gemma-2-2b") -> tuple[int, Path]:
    from gemma_trainer.cli import train_main

    rows = write_jsonl(tmp_path / "train.jsonl", rows or make_dataset_rows("text", 32, seed=4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=model_dir, train_uri=rows, output_uri=tmp_path / "out",
                             accelerator=T4 if emulate else None, output={"checkpointEverySteps": checkpoint_every},
                             training={"maxSteps": 6}, method=method, model=model)
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    code = train_main(argparse.Namespace(file=str(manifest), output_uri=None, max_steps=None,
                                         emulate_accelerator=emulate))
    return code, Path(run_folder(manifest))


@pytest.mark.slow
@pytest.mark.parametrize("method,model", [("lora", "gemma-2-2b"), ("freeze", "gemma-2-2b"),
                                          ("full", "gemma-3-270m")])  # full 2B does not fit a T4: refused
def test_emulated_t4_run_trains_with_a_loss_scaler(tmp_path, tiny_model_dir, monkeypatch, method, model):
    code, run = _train(tmp_path, monkeypatch, tiny_model_dir, emulate=True, method=method, model=model)
    assert code == EXIT_OK
    losses = [m["loss"] for m in read_metrics(run) if "loss" in m]
    assert len(losses) == 6 and all(loss is not None for loss in losses)
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    newest = max((run / "checkpoints").iterdir())
    scaler = torch.load(newest / "scaler.pt", weights_only=True)  # the GradScaler ran, and resumes with the run
    assert 1 <= scaler["scale"] <= FP16_PROJECTIONS.initial_loss_scale  # the policy's first scale, not 2**16


def _poisoned_model(tmp_path, tiny_model_dir, token: str) -> Path:
    """The tiny model with ``token``'s embedding at 3e38: times Gemma's sqrt(hidden) it is inf in fp32, and the
    first RMSNorm makes it NaN. A loss that turns NaN on the first batch holding the token, as an overflow does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.embed_tokens.weight[tokenizer.convert_tokens_to_ids(token)] = 3e38
    model.save_pretrained(tmp_path / "poisoned")
    tokenizer.save_pretrained(tmp_path / "poisoned")
    return tmp_path / "poisoned"


@pytest.mark.slow
def test_a_loss_that_turns_non_finite_fails_the_run_and_is_never_shown_as_zero(tmp_path, tiny_model_dir,
                                                                               monkeypatch):
    """Before the guard, such a run logged loss 0.0 (transformers' logging_nan_inf_filter), ended "completed"
    and uploaded the adapter."""
    model_dir = _poisoned_model(tmp_path, tiny_model_dir, "<start_of_turn>")
    rows = make_dataset_rows("text", 32, seed=4)
    for i in (20, 25, 30):  # the seeded order reaches one of these at step 2
        rows[i]["text"] += " <start_of_turn>"
    code, run = _train(tmp_path, monkeypatch, model_dir, emulate=False, rows=rows, checkpoint_every=1)
    assert code == EXIT_NON_FINITE
    progress = json.loads((run / "progress.json").read_text())
    assert progress["state"] == "failed" and progress["step"] == 2 and "adapterUri" not in progress
    assert progress["message"].startswith("step 2: the training loss is nan; stopped without committing")
    assert "Likely cause" in progress["message"] and progress.get("loss") is None
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == [1] and metrics[0]["loss"] > 0  # nothing logged for step 2, no 0.0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]  # not the broken step
    assert not (run / "adapter").exists()


def test_guard_stops_after_too_many_skipped_steps_in_a_row():
    guard = NonFiniteGuard(FP16_PROJECTIONS)
    state, skipped, applied = SimpleNamespace(global_step=0), SimpleNamespace(step_was_skipped=True), \
        SimpleNamespace(step_was_skipped=False)
    for _ in range(MAX_SKIPPED_STEPS):  # a healthy fp16 start skips a few steps while the scale settles
        guard.on_step_end(None, state, None, optimizer=skipped)
    guard.on_step_end(None, state, None, optimizer=applied)
    for _ in range(MAX_SKIPPED_STEPS):
        guard.on_step_end(None, state, None, optimizer=skipped)
    with pytest.raises(NonFiniteLoss, match="steps in a row"):
        guard.on_step_end(None, state, None, optimizer=skipped)


@pytest.mark.parametrize("policy", [FP32, BF16], ids=lambda p: p.name)
def test_a_non_finite_gradient_norm_stops_a_run_no_scaler_protects(policy):
    check_grad_norm(3.5, 4, policy)
    with pytest.raises(NonFiniteLoss, match="step 4: the gradient norm is inf"):
        check_grad_norm(float("inf"), 4, policy)
    check_grad_norm(float("nan"), 4, FP16_PROJECTIONS)  # the GradScaler skips that step; the guard counts skips

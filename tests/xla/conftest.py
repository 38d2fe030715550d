"""The XLA lane: runs only in .venv-xla (torch 2.9 + torch-xla 2.9) on XLA's CPU backend with 4 devices.

``make test-xla`` runs ``PJRT_DEVICE=CPU CPU_NUM_DEVICES=4 .venv-xla/bin/python -m pytest tests/xla``. In the main
venv (no torch_xla) every test here is skipped at collection.
"""

from __future__ import annotations

import os

import pytest

try:
    import torch_xla  # noqa: F401
except ImportError:
    # The main venv has no torch-xla: nothing here is collected (make test-xla runs this lane).
    collect_ignore_glob = ["test_*.py"]
else:
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    os.environ.setdefault("CPU_NUM_DEVICES", "4")
    from gemma_trainer import xla as _xla

    # SPMD must be on before anything (TrainingArguments included) starts the XLA runtime.
    _xla.ensure_spmd()

N_DEVICES = 4
SEQ_BUCKETS = (16, 32, 64)  # bucket_lengths(64, min_bucket=16)


@pytest.fixture(scope="session")
def spmd():
    """SPMD on, the global 1-D ('fsdp',) mesh over the 4 CPU devices."""
    import torch_xla.runtime as xr
    from gemma_trainer import xla

    xla.ensure_spmd()
    if xr.global_runtime_device_count() != N_DEVICES:
        pytest.fail(f"expected {N_DEVICES} XLA CPU devices (CPU_NUM_DEVICES=4), got "
                    f"{xr.global_runtime_device_count()}")
    return xla.spmd_mesh()


@pytest.fixture(scope="session")
def tokenizer():
    from gemma_trainer.tiny import build_tiny_tokenizer, dataset_texts, make_dataset_rows

    return build_tiny_tokenizer(dataset_texts(make_dataset_rows("text", 64, seed=0)))


@pytest.fixture(scope="session")
def features(tokenizer):
    """128 tokenized rows of a learnable data set (variable lengths, at most 64 tokens)."""
    from gemma_trainer.tiny import make_dataset_rows

    out = []
    for row in make_dataset_rows("text", 128, seed=1):
        ids = tokenizer(row["text"] + tokenizer.eos_token)["input_ids"][:64]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def lora_model(vocab_size: int, seed: int = 0):
    """The tiny Gemma 2 with a LoRA adapter on all projections (dropout 0: runs are deterministic)."""
    import torch
    from gemma_trainer.tiny import build_tiny_gemma2
    from peft import LoraConfig, get_peft_model

    model = build_tiny_gemma2(vocab_size, seed=seed)
    model.config.use_cache = False
    torch.manual_seed(seed)
    return get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))

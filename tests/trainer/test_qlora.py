"""QLoRA preparation keeps the frozen non-quantised weights in 16 bits (peft's prepare_model_for_kbit_training
casts them all to fp32: +1.8 GB for Gemma 2 9B's embedding); only the adapter is fp32."""

from __future__ import annotations

import torch
from gemma_trainer.device import DeviceSetup
from gemma_trainer.model import apply_method
from gemma_trainer.tiny import build_tiny_gemma2


def _qlora_spec():
    from gemma_api import parse_spec

    return parse_spec({"model": "gemma-2-9b", "method": "qlora", "dataset": {"trainUri": "gs://data/t.jsonl"},
                       "accelerator": {"type": "nvidia-tesla-t4"}, "output": {"uri": "gs://out/runs"}})


def test_qlora_keeps_frozen_weights_16bit_and_adapters_fp32():
    # The non-4-bit weights of a bitsandbytes model (embedding, norms) are plain fp16 tensors: the tiny model in
    # fp16 stands for them (bitsandbytes itself needs CUDA).
    model = build_tiny_gemma2(300).to(torch.float16)
    frozen_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    plan = DeviceSetup("nvidia-tesla-t4", "cuda", "fp16", "float16")
    model = apply_method(model, _qlora_spec(), plan)
    frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32}
    upcast = sorted(n for n, dtype in frozen.items() if dtype != torch.float16)
    assert not upcast, f"frozen weights upcast to fp32: {upcast[:5]}"
    assert sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad) == frozen_bytes

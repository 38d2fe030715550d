"""The memory model (gemma_api.memory) against the trainer's real allocations, measured on the CPU.

Two optimizer steps of the real GemmaTrainer (LoRA all-linear, activation checkpointing, packed rows, the chunked
loss head, AdamW) on scaled-down Gemma 2 shapes run under PeakTensorMemory, which counts every tensor storage
created until it is freed; the base weights, allocated before, are added. The prediction for the same
architecture and micro-batch must be within 15% of the measurement, on a shape where a decoder layer's
recomputation is the peak and on one where the loss head's blocks are, in fp32 and under the T4's precision
policy (fp16 frozen weights, fp32 stream) emulated on the CPU with the trainer's own loading code.
"""

from __future__ import annotations

import pytest
import torch
from gemma_api.facts import ModelArch
from gemma_api.memory import StepShape, training_memory
from gemma_api.precision import FP16_PROJECTIONS, FP32
from gemma_trainer.batches import PackedCollator
from gemma_trainer.memprobe import PeakTensorMemory
from gemma_trainer.packed_attention import use_packed_attention
from gemma_trainer.tiny import build_tiny_gemma2

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, head dim, vocab, rows, tokens per row
    "layer-bound": (128, 512, 2, 4, 2, 32, 1024, 2, 256),
    "loss-head-bound": (64, 128, 2, 2, 1, 32, 20000, 2, 300),
}


def _measure(policy, hidden, intermediate, layers, heads, kv, head_dim, vocab, rows, length, tmp_path):
    from gemma_api.memory import DTYPE_BYTES
    from gemma_trainer.precision import apply_precision, torch_dtype
    from gemma_trainer.train import _make_trainer_class
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments

    model = build_tiny_gemma2(vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                              num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                              query_pre_attn_scalar=head_dim, sliding_window=length // 2,
                              attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                              max_position_embeddings=2048).to(torch_dtype(policy.weights))
    model = apply_precision(model, policy, emulated=True)
    model.config.use_cache = False
    arch = ModelArch(sum(p.numel() for p in model.parameters()), hidden, intermediate, layers, heads, kv, head_dim,
                     vocab)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0))
    use_packed_attention(model)
    g = torch.Generator().manual_seed(0)
    rows_data = [{"input_ids": (ids := torch.randint(3, vocab, (length,), generator=g).tolist()), "labels": ids}
                 for _ in range(2 * rows)]
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=2,
                             per_device_train_batch_size=rows, activation_checkpointing=True,
                             activation_checkpointing_kwargs={"use_reentrant": False}, save_strategy="no",
                             disable_tqdm=True, remove_unused_columns=False, prediction_loss_only=True)
    trainer = _make_trainer_class()(model=model, args=args, train_dataset=rows_data, data_collator=PackedCollator())
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with PeakTensorMemory() as memory:
        trainer.train()
    # The trainable weights existed before the block: the model counts them (4 of their 16 bytes) as state.
    measured = weights + trainable * 4 + memory.peak
    shape = StepShape(rows, length, DTYPE_BYTES[policy.stream], DTYPE_BYTES[policy.weights])
    predicted = training_memory(arch, "lora", trainable, shape).per_device
    return measured, predicted


@pytest.mark.parametrize("policy", [FP32, FP16_PROJECTIONS], ids=lambda p: p.name)
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_memory_model_matches_the_measured_peak(shape, policy, tmp_path):
    measured, predicted = _measure(policy, *SHAPES[shape], tmp_path)
    assert abs(predicted - measured) <= 0.15 * measured, \
        f"predicted {predicted / 2**20:.1f} MiB, measured {measured / 2**20:.1f} MiB"

"""Inference memory per GPU of a served fine-tune (next to ``memory.py``'s training estimate).

What one GPU of a vLLM replica holds, at the serving dtype (``serving_engine.serving_dtype``):

* weights: every base parameter (a lora/qlora run serves the 16-bit or fp32 base, not NF4), split over the
  replica's GPUs by tensor parallelism;
* LoRA buffers: vLLM preallocates one adapter slot of ``--max-lora-rank`` on every projection;
* KV cache: keys and values of ``concurrentSequences`` sequences of ``maxModelLength`` tokens on every decoder
  layer (an upper bound: vLLM's hybrid allocator may keep only the window on sliding-window layers); key/value
  heads split over the GPUs, each GPU keeping at least one;
* activations: one forward step of ``BATCHED_TOKENS`` tokens (hidden states, q/k/v, the MLP's intermediates);
* runtime: the CUDA context and allocator slack, as in training.

The capacity is the GPU's usable memory times ``gpuMemoryUtilization`` (what vLLM allows itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accelerators import profile as accelerator_profile
from .facts import GB, MODELS, ModelArch
from .memory import DTYPE_BYTES, RUNTIME_OVERHEAD_BYTES
from .methods import lora_params, training_method
from .serving_engine import BATCHED_TOKENS, EngineFamily, engine_lora_rank, serving_dtype
from .spec import GemmaFineTuneSpec

KV_TENSORS = 2  # a key and a value per head and position
ACTIVATION_WIDTHS_HIDDEN, ACTIVATION_WIDTHS_MLP = 4, 3  # residual, norm out, q, attention out; gate, up, product


@dataclass(frozen=True)
class InferenceEstimate:
    dtype: str
    weights: int
    lora: int
    kv_cache: int
    activations: int
    overhead: int
    capacity: int | None

    @property
    def per_gpu(self) -> int:
        return self.weights + self.lora + self.kv_cache + self.activations + self.overhead

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.per_gpu <= self.capacity

    def describe(self) -> str:
        return (f"needs about {self.per_gpu / GB:.1f} GB per GPU in {self.dtype} (weights {self.weights / GB:.1f} GB"
                f" + LoRA buffers {self.lora / GB:.2f} GB + KV cache {self.kv_cache / GB:.1f} GB + activations "
                f"{self.activations / GB:.1f} GB + runtime {self.overhead / GB:.1f} GB), vLLM may use "
                f"{(self.capacity or 0) / GB:.1f} GB")


def kv_bytes_per_token(arch: ModelArch, dtype_bytes: int, gpus: int) -> int:
    """KV cache of one token on one GPU: every layer's keys and values (heads split, at least one per GPU)."""
    heads_per_gpu = max(1, math.ceil(arch.kv_heads / gpus))
    return KV_TENSORS * arch.layers * heads_per_gpu * arch.head_dim * dtype_bytes


def max_model_length(spec: GemmaFineTuneSpec) -> int:
    """``serving.maxModelLength``, default the length the adapter was trained at."""
    return spec.serving.max_model_length or spec.training.max_seq_length


def served_lora_rank(spec: GemmaFineTuneSpec) -> int | None:
    """vLLM's ``--max-lora-rank`` for the spec's adapter; None for methods that serve whole weights."""
    if not training_method(spec.method).peft_adapter:
        return None
    return spec.serving.max_lora_rank or engine_lora_rank(spec.lora.r)


def inference_estimate(spec: GemmaFineTuneSpec, row: EngineFamily) -> InferenceEstimate:
    serving = spec.serving
    arch = MODELS[spec.model]
    acc = accelerator_profile(serving.accelerator.type)
    gpus = acc.gpus(serving.accelerator.count)
    dtype = serving_dtype(row, acc.compute_dtype)
    width = DTYPE_BYTES[dtype]
    rank = served_lora_rank(spec) or 0
    tokens = serving.concurrent_sequences * max_model_length(spec)
    capacity = None if acc.device_memory_bytes is None else int(acc.device_memory_bytes * serving.gpu_memory_utilization)
    return InferenceEstimate(
        dtype=dtype,
        weights=arch.params * width // gpus,
        lora=lora_params(arch, rank, ["all-linear"]) * width // gpus,
        kv_cache=tokens * kv_bytes_per_token(arch, width, gpus),
        activations=BATCHED_TOKENS * (ACTIVATION_WIDTHS_HIDDEN * arch.hidden
                                      + ACTIVATION_WIDTHS_MLP * arch.intermediate // gpus) * width,
        overhead=RUNTIME_OVERHEAD_BYTES,
        capacity=capacity,
    )

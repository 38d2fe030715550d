"""One memory estimate per device: does a spec fit its accelerator?

It counts what the trainer (gemma_trainer) really allocates at its peak, by parts a message can show:

* precision: the dtypes of the accelerator's precision policy (``gemma_api/precision.py``): frozen weights in
  ``policy.weights`` and activations in ``policy.stream`` (on a T4, fp16 weights around an fp32 stream:
  activations cost twice fp16's);
* weights: frozen base weights of the language model (an image-text checkpoint's towers are never loaded) at the
  method's precision (qlora: 4-bit NF4 linear layers, 16-bit embedding, per-layer embeddings, expert weights and
  norms, plus one linear layer dequantized to 16 bits at a time); a mixture of experts keeps every expert
  resident;
* trainable: fp32 master weight, gradient and two AdamW moments (16 bytes) per trainable parameter;
* activations, with activation checkpointing on every decoder layer: each layer's input is kept; one layer at a
  time (the widest) is recomputed with what autograd saves for its backward (projections, the MLP's four intermediates, fp32
  copies in the RMSNorms when the stream is 16-bit) plus its gradient buffers and each row's eager attention
  scores (rows are attended one by one: padding-free batches never score across rows); or, when larger, the loss
  head's peak: two ``[block tokens, vocab]`` fp32 blocks (``LOSS_BLOCK_ELEMENTS`` each at most) and the
  labelled hidden states with their fp32 gradient. Experts count by active parameters (each token's top-k); Gemma
  4's per-layer inputs (``[tokens, layers x width]``) are kept for the whole pass. The ``[tokens, vocab]`` logits are never materialised (gemma_trainer.loss_head).

It is checked against a measurement of the real trainer on scaled-down shapes on the CPU, in fp32 and under the
T4's policy emulated (tests/trainer/test_memory_model.py) and, on a GPU, by bench/gpu.py (predicted vs measured peak).

On TPU, FSDP shards weights and trainable state over every TensorCore of the slice; T4 data parallelism
replicates the model, so each GPU holds a whole copy. Activations are those of ``training.batchSize``, the
sequences of one device (``gemma_api/plan.py`` defines the batch), so they are never divided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accelerators import profile as accelerator_profile
from .facts import GB, MODELS, ModelArch
from .families import precision_policy
from .methods import training_method
from .spec import GemmaFineTuneSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
TRAINABLE_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + two fp32 AdamW moments
RUNTIME_OVERHEAD_BYTES = int(0.6 * GB)  # CUDA context / XLA runtime and allocator slack
FP32_BYTES = 4
# The loss head's block, [tokens, vocab] fp32 logits (gemma_trainer.loss_head uses these): 64 MB on the CPU,
# 256 MB on a GPU or TPU.
LOSS_BLOCK_ELEMENTS = 1 << 24
LOSS_BLOCK_ELEMENTS_ACCELERATOR = 1 << 26
# What autograd keeps for one Gemma decoder layer's backward, per token, in units of the layer's widths: the
# outputs of the norms before the projections and the residual sums (hidden), q after rotary and the attention
# output plus k and v repeated to every head (heads x head_dim), gate, up, gelu(gate) and their product
# (intermediate); and the gradient buffers alive while the MLP is back-propagated.
SAVED_HIDDEN, SAVED_HEADS, SAVED_MLP, GRAD_MLP = 5, 4, 4, 2
NORMS_PER_LAYER = 4


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    trainable: int
    activations: int
    overhead: int
    devices: int  # devices the state is sharded over (1 unless FSDP on TPU)
    capacity: int | None  # usable bytes of one device; None when unchecked

    @property
    def per_device(self) -> int:
        return (self.weights + self.trainable) // self.devices + self.activations + self.overhead

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.per_device <= self.capacity

    def describe(self) -> str:
        cap = "memory not checked" if self.capacity is None else f"{self.capacity / GB:.1f} GB"
        state = f"weights {self.weights / GB:.1f} GB + trainable state {self.trainable / GB:.1f} GB"
        if self.devices > 1:
            state = f"({state}) / {self.devices} devices"
        return (
            f"needs about {self.per_device / GB:.1f} GB per device ({state} + activations "
            f"{self.activations / GB:.1f} GB + runtime {self.overhead / GB:.1f} GB), device has {cap}"
        )


def trainable_params(spec: GemmaFineTuneSpec, arch: ModelArch) -> int:
    """Parameters with fp32 master weight, gradient and AdamW state under ``spec.method``."""
    return training_method(spec.method).trainable_params(spec, arch)


def weight_bytes(method_name: str, arch: ModelArch, dtype_bytes: int) -> int:
    """Frozen base weights under method ``method_name`` at ``dtype_bytes`` per weight."""
    return training_method(method_name).frozen_weight_bytes(arch, dtype_bytes)


@dataclass(frozen=True)
class StepShape:
    """The tensors of one micro-batch on one device."""

    rows: int  # sequences per micro-batch
    row_tokens: int  # tokens per sequence (worst case: maxSeqLength)
    dtype_bytes: int  # activations: the residual stream's dtype (api/precision.py)
    frozen_dtype_bytes: int | None = None  # frozen base weights, when stored narrower (the T4's fp16); default
    labelled_fraction: float = 1.0  # share of positions with a target (worst case: all)
    accelerator: bool = False  # the loss head takes larger blocks on a GPU or TPU


def layer_bytes(arch: ModelArch, shape: StepShape) -> int:
    """One decoder layer (the widest) recomputed and back-propagated: saved tensors, gradient buffers, attention
    scores. A mixture of experts computes by active parameters: each token saves the intermediates of its dense
    MLP and of its top-k experts (``ModelArch.active_intermediate``)."""
    tokens, a = shape.rows * shape.row_tokens, shape.dtype_bytes
    q, mlp = arch.peak_layer.q_width, arch.active_intermediate
    saved = tokens * (SAVED_HIDDEN * arch.hidden + SAVED_HEADS * q + SAVED_MLP * mlp) * a
    if a < FP32_BYTES:  # Gemma's RMSNorm computes in fp32: a copy of its input per norm
        saved += tokens * NORMS_PER_LAYER * arch.hidden * FP32_BYTES
    grads = tokens * (GRAD_MLP * mlp + arch.hidden) * a
    # Saved per row: the soft-capped scores (tanh), the fp32 softmax and, in 16-bit, its cast for the matmul.
    scores = shape.rows * arch.heads * shape.row_tokens ** 2 * (a + FP32_BYTES + (a if a < FP32_BYTES else 0))
    return saved + grads + scores


def loss_head_bytes(arch: ModelArch, shape: StepShape) -> int:
    """The chunked loss head: two fp32 ``[block tokens, vocab]`` blocks, the labelled hidden states and their
    fp32 gradient."""
    labelled = math.ceil(shape.rows * shape.row_tokens * shape.labelled_fraction)
    budget = LOSS_BLOCK_ELEMENTS_ACCELERATOR if shape.accelerator else LOSS_BLOCK_ELEMENTS
    blocks = 2 * min(labelled, max(1, budget // arch.vocab)) * arch.vocab * FP32_BYTES
    return blocks + labelled * arch.hidden * (shape.dtype_bytes + FP32_BYTES)


def activation_bytes(arch: ModelArch, shape: StepShape) -> int:
    tokens = shape.rows * shape.row_tokens
    kept = arch.layers * tokens * arch.hidden * shape.dtype_bytes
    if arch.per_layer is not None:  # Gemma 4's per-layer inputs: [tokens, layers x width], alive the whole pass
        kept += tokens * arch.layers * arch.per_layer.width * shape.dtype_bytes
    return kept + max(layer_bytes(arch, shape), loss_head_bytes(arch, shape))


def training_memory(arch: ModelArch, method_name: str, trainable: int, shape: StepShape, devices: int = 1,
                    capacity: int | None = None, overhead: int = 0) -> MemoryEstimate:
    """The estimate for any architecture and micro-batch (the measurement test calls it on scaled shapes)."""
    return MemoryEstimate(
        weights=weight_bytes(method_name, arch, shape.frozen_dtype_bytes or shape.dtype_bytes),
        trainable=trainable * TRAINABLE_BYTES_PER_PARAM,
        activations=activation_bytes(arch, shape),
        overhead=overhead,
        devices=devices,
        capacity=capacity,
    )


def estimate(spec: GemmaFineTuneSpec) -> MemoryEstimate:
    arch = MODELS[spec.model]
    profile = accelerator_profile(spec.accelerator.type)
    policy = precision_policy(arch.family, profile.compute_dtype)
    devices = profile.shard_devices(spec.topology)
    shape = StepShape(spec.training.batch_size, spec.training.max_seq_length, DTYPE_BYTES[policy.stream],
                      DTYPE_BYTES[policy.weights], accelerator=profile.device_memory_bytes is not None)
    return training_memory(arch, spec.method, trainable_params(spec, arch), shape, devices,
                           profile.device_memory_bytes,
                           RUNTIME_OVERHEAD_BYTES if profile.device_memory_bytes else 0)

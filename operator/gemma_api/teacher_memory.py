"""Forward-only memory of a distillation's teacher stage, per device (next to ``memory.py``'s training estimate).

The teacher never trains: no trainable state, no gradients, no kept activations. What one device holds:

* weights: the teacher's base weights at the accelerator's precision, or NF4 with 16-bit embeddings;
* activations: one decoder layer's working set for a batch (eager attention scores included), the hidden states
  of the batch, and one ``TEACHER_POSITION_CHUNK x TEACHER_VOCAB_CHUNK`` block of the LM head in fp32 (logits,
  their exponentials and the running top-k merge: three such blocks). The full ``[tokens, vocab]`` logits are
  never built.

On TPU the weights are sharded over every TensorCore of the slice and each TensorCore takes training.batchSize
rows, as in training.
"""

from __future__ import annotations

from .accelerators import profile as accelerator_profile
from .distillation import TEACHER_POSITION_CHUNK, TEACHER_VOCAB_CHUNK, teacher_accelerator
from .facts import MODELS, ModelArch
from .memory import DTYPE_BYTES, RUNTIME_OVERHEAD_BYTES, MemoryEstimate
from .methods import nf4_weight_bytes

LOGIT_BLOCKS_ALIVE = 3  # logits, exp / masked copy, top-k merge buffer


def forward_weight_bytes(arch: ModelArch, quantization: str, dtype_bytes: int) -> int:
    if quantization == "nf4":
        return nf4_weight_bytes(arch)
    return arch.params * dtype_bytes


def forward_activation_bytes(arch: ModelArch, batch: int, seq: int, dtype_bytes: int) -> int:
    tokens = batch * seq
    hidden_states = 2 * tokens * arch.hidden * dtype_bytes
    scores = batch * arch.heads * seq**2 * 4
    one_layer = tokens * (4 * arch.hidden + 3 * arch.active_intermediate) * dtype_bytes + scores
    head_block = LOGIT_BLOCKS_ALIVE * min(TEACHER_POSITION_CHUNK, tokens) * min(TEACHER_VOCAB_CHUNK, arch.vocab) * 4
    return hidden_states + one_layer + head_block


def teacher_estimate(spec) -> MemoryEstimate:
    """Per-device memory of the teacher pass of ``spec.distillation`` on its accelerator."""
    teacher = spec.distillation.teacher
    accelerator = teacher_accelerator(spec)
    arch = MODELS[teacher.model]
    profile = accelerator_profile(accelerator.type)
    dtype_bytes = DTYPE_BYTES[profile.compute_dtype]
    devices = profile.shard_devices(accelerator.topology)
    return MemoryEstimate(
        weights=forward_weight_bytes(arch, teacher.quantization, dtype_bytes),
        trainable=0,
        activations=forward_activation_bytes(arch, spec.training.batch_size, spec.training.max_seq_length,
                                             dtype_bytes),
        overhead=RUNTIME_OVERHEAD_BYTES if profile.device_memory_bytes else 0,
        devices=devices,
        capacity=profile.device_memory_bytes,
    )

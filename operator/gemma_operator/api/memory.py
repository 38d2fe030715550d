"""One memory estimate per device: does a spec fit its accelerator?

The estimate is deliberately simple and a little pessimistic; its parts are named so a message can show them:

* weights: frozen base weights at the method's precision (4-bit NF4 for qlora, with 16-bit embeddings);
* trainable: fp32 master weight, gradient and two AdamW moments (16 bytes) per trainable parameter;
* activations: with gradient checkpointing, one hidden state per layer is kept, one layer is recomputed at a
  time (eager attention scores included) and the logits over the 256k vocabulary are held in fp32 twice
  (logits and their gradient).

On TPU, FSDP shards weights and trainable state over every TensorCore of the slice; T4 data parallelism
replicates the model, so each GPU holds a whole copy. Activations are those of ``training.batchSize``, the
sequences of one device (``api/plan.py`` defines the batch), so they are never divided.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import ACCELERATORS, GB, MODELS, TPU_V3_CORES_PER_CHIP, TPU_V3_TOPOLOGIES, ModelArch
from .spec import GemmaFineTuneSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
NF4_BYTES_PER_PARAM = 0.5 + 0.0625  # 4-bit values plus block-wise quantisation constants
TRAINABLE_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + two fp32 AdamW moments
RUNTIME_OVERHEAD_BYTES = int(0.6 * GB)  # CUDA context / XLA runtime and allocator slack


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


def lora_params(arch: ModelArch, r: int, targets: list[str]) -> int:
    shapes = arch.linear_shapes()
    names = shapes if "all-linear" in targets else targets
    return arch.layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in names)


def trainable_params(spec: GemmaFineTuneSpec, arch: ModelArch) -> int:
    if spec.method in ("lora", "qlora"):
        return lora_params(arch, spec.lora.r, list(spec.lora.target_modules))
    if spec.method == "freeze":
        per_layer = (arch.params - arch.embedding_params) / arch.layers
        return int(per_layer * min(spec.freeze.trainable_layers, arch.layers))
    return arch.params


def weight_bytes(spec: GemmaFineTuneSpec, arch: ModelArch, dtype_bytes: int) -> int:
    if spec.method == "full":
        return 0  # every weight is trainable state
    if spec.method == "qlora":
        return int((arch.params - arch.embedding_params) * NF4_BYTES_PER_PARAM) + arch.embedding_params * 2
    return arch.params * dtype_bytes


def activation_bytes(spec: GemmaFineTuneSpec, arch: ModelArch, dtype_bytes: int) -> int:
    tokens = spec.training.batch_size * spec.training.max_seq_length
    kept = arch.layers * tokens * arch.hidden * dtype_bytes
    scores = spec.training.batch_size * arch.heads * spec.training.max_seq_length**2 * 4 * 2
    one_layer = tokens * (4 * arch.hidden + 3 * arch.intermediate) * dtype_bytes + scores
    logits = tokens * arch.vocab * 4 * 2
    return kept + one_layer + logits


def estimate(spec: GemmaFineTuneSpec) -> MemoryEstimate:
    arch = MODELS[spec.model]
    profile = ACCELERATORS[spec.accelerator.type]
    dtype_bytes = DTYPE_BYTES[profile.compute_dtype]
    devices = 1
    if spec.accelerator.type == "tpu-v3":
        devices = TPU_V3_TOPOLOGIES[spec.topology].chips * TPU_V3_CORES_PER_CHIP
    return MemoryEstimate(
        weights=weight_bytes(spec, arch, dtype_bytes),
        trainable=trainable_params(spec, arch) * TRAINABLE_BYTES_PER_PARAM,
        activations=activation_bytes(spec, arch, dtype_bytes),
        overhead=RUNTIME_OVERHEAD_BYTES if profile.device_memory_bytes else 0,
        devices=devices,
        capacity=profile.device_memory_bytes,
    )

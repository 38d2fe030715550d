"""The training methods (``spec.method``), one record each, the way peft registers a tuner: what a method trains,
what its base weights are, where it runs, its terms in the memory model (``memory.py``) and its own checks.

The contract side only: the trainer registers how each method is applied to a model, saved and merged
(``gemma_trainer.methods``, one entry per record here). Adding a method is one record here and one there; no
code outside the two registries compares ``spec.method`` with a method name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .facts import ModelArch

NF4_BYTES_PER_PARAM = 0.5 + 0.0625  # 4-bit values plus block-wise quantisation constants


def lora_params(arch: ModelArch, r: int, targets: list[str]) -> int:
    """Trainable parameters of LoRA adapters of rank ``r`` on ``targets`` of every decoder layer."""
    shapes = arch.linear_shapes()
    names = shapes if "all-linear" in targets else targets
    return arch.layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in names)


def _adapter_params(spec, arch: ModelArch) -> int:
    return lora_params(arch, spec.lora.r, list(spec.lora.target_modules))


def _last_layers_params(spec, arch: ModelArch) -> int:
    per_layer = (arch.params - arch.embedding_params) / arch.layers
    return int(per_layer * min(spec.freeze.trainable_layers, arch.layers))


def _all_params(spec, arch: ModelArch) -> int:
    return arch.params


def _frozen_bytes(arch: ModelArch, dtype_bytes: int) -> int:
    return arch.params * dtype_bytes


def _nf4_frozen_bytes(arch: ModelArch, dtype_bytes: int) -> int:
    """4-bit NF4 linear layers, 16-bit embedding and norms, plus one linear layer dequantized to 16 bits at a
    time."""
    largest = max(i * o for i, o in arch.linear_shapes().values())
    return int((arch.params - arch.embedding_params) * NF4_BYTES_PER_PARAM) + arch.embedding_params * 2 + largest * 2


def _no_frozen_bytes(arch: ModelArch, dtype_bytes: int) -> int:
    return 0  # every weight is trainable state


def _no_problems(spec, arch: ModelArch) -> list[tuple[str, str]]:
    return []


def _layers_exist(spec, arch: ModelArch) -> list[tuple[str, str]]:
    if spec.freeze.trainable_layers <= arch.layers:
        return []
    return [("spec.freeze.trainableLayers",
             f"{spec.model} has {arch.layers} decoder layers: set trainableLayers to at most {arch.layers}")]


@dataclass(frozen=True)
class TrainingMethod:
    """One value of ``spec.method``."""

    name: str
    settings: str | None  # the spec's block this method reads (``lora``, ``freeze``), None: none
    peft_adapter: bool  # the result in <run>/adapter is a peft adapter (else the trained weights or whole model)
    trains_base_weights: bool  # base weights themselves train (fp32 master copies where the policy asks)
    base_quantization: str | None  # "nf4": 4-bit base weights (bitsandbytes); None: the policy's dtype
    needs_cuda: bool  # only on a CUDA GPU (bitsandbytes' kernels): refused elsewhere, never emulated on the CPU
    trainable_params: Callable[[object, ModelArch], int]  # memory term: parameters with fp32 state
    frozen_weight_bytes: Callable[[ModelArch, int], int]  # memory term: frozen weights (arch, bytes per weight)
    problems: Callable[[object, ModelArch], list[tuple[str, str]]] = _no_problems  # (field, message) of a spec


METHODS: dict[str, TrainingMethod] = {m.name: m for m in (
    TrainingMethod("lora", "lora", peft_adapter=True, trains_base_weights=False,
                   base_quantization=None, needs_cuda=False, trainable_params=_adapter_params,
                   frozen_weight_bytes=_frozen_bytes),
    TrainingMethod("qlora", "lora", peft_adapter=True, trains_base_weights=False,
                   base_quantization="nf4", needs_cuda=True, trainable_params=_adapter_params,
                   frozen_weight_bytes=_nf4_frozen_bytes),
    TrainingMethod("freeze", "freeze", peft_adapter=False,
                   trains_base_weights=True, base_quantization=None, needs_cuda=False,
                   trainable_params=_last_layers_params, frozen_weight_bytes=_frozen_bytes, problems=_layers_exist),
    TrainingMethod("full", None, peft_adapter=False, trains_base_weights=True, base_quantization=None,
                   needs_cuda=False, trainable_params=_all_params, frozen_weight_bytes=_no_frozen_bytes),
)}


def training_method(name: str) -> TrainingMethod:
    """The record of ``spec.method`` NAME."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown training method {name!r}: one of {', '.join(METHODS)}") from None


def cuda_only_methods() -> list[str]:
    """The methods that run on CUDA GPUs only."""
    return [m.name for m in METHODS.values() if m.needs_cuda]


def smallest_weights_method() -> TrainingMethod:
    """The method whose frozen base weights are smallest (what a message suggests when a model does not fit)."""
    return next(m for m in METHODS.values() if m.base_quantization is not None)


def adapter_method_for(quantization: str) -> TrainingMethod:
    """The peft-adapter method that loads a base quantized as a teacher's ``quantization`` (``none``, ``nf4``)."""
    base = None if quantization == "none" else quantization
    return next(m for m in METHODS.values() if m.peft_adapter and m.base_quantization == base)

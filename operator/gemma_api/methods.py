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


def lora_targets(arch: ModelArch, targets: list[str]) -> dict[str, tuple[int, int]]:
    """The adapted projections of each decoder layer, by ``module name`` per layer, as peft resolves them:
    ``all-linear`` is every ``nn.Linear`` but the LM head (on Gemma 4 also the per-layer input gate and
    projection and the router; never the experts, whose weights are 3-D parameters)."""
    return {f"{i}.{name}": shape for i, layer in enumerate(arch.layer_shapes()) for name, shape in layer.linear.items()
            if "all-linear" in targets or name in targets}


def lora_params(arch: ModelArch, r: int, targets: list[str]) -> int:
    """LoRA's A and B matrices: r x (in + out) per adapted projection (a layer without the module skips it)."""
    shapes = list(lora_targets(arch, targets).values())
    if "all-linear" in targets:
        shapes += list(arch.model_linear_shapes().values())
    return sum(r * (i + o) for i, o in shapes)


def nf4_weight_bytes(arch: ModelArch) -> int:
    """Weights loaded in 4-bit: NF4 nn.Linear layers, 16-bit lookup tables and expert weights (3-D parameters,
    which bitsandbytes does not quantize)."""
    unquantized = arch.lookup_params + arch.expert_params
    return int((arch.params - unquantized) * NF4_BYTES_PER_PARAM) + unquantized * 2


def _adapter_params(spec, arch: ModelArch) -> int:
    return lora_params(arch, spec.lora.r, list(spec.lora.target_modules))


def _last_layers_params(spec, arch: ModelArch) -> int:
    per_layer = (arch.params - arch.lookup_params) / arch.layers
    return int(per_layer * min(spec.freeze.trainable_layers, arch.layers))


def _all_params(spec, arch: ModelArch) -> int:
    return arch.params


def _frozen_bytes(arch: ModelArch, dtype_bytes: int) -> int:
    """All frozen weights resident, every expert's included (the router picks per token, so no expert can be left
    out)."""
    return arch.params * dtype_bytes


def _nf4_frozen_bytes(arch: ModelArch, dtype_bytes: int) -> int:
    """qlora quantizes nn.Linear layers only (``nf4_weight_bytes``), plus one linear layer dequantized to 16 bits
    at a time."""
    largest = max(i * o for i, o in arch.linear_shapes().values())
    return nf4_weight_bytes(arch) + largest * 2


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
    served_from_merged: bool = False  # a server cannot load its adapter/ folder: it serves merged/ (mergeAdapter)


METHODS: dict[str, TrainingMethod] = {m.name: m for m in (
    TrainingMethod("lora", "lora", peft_adapter=True, trains_base_weights=False,
                   base_quantization=None, needs_cuda=False, trainable_params=_adapter_params,
                   frozen_weight_bytes=_frozen_bytes),
    TrainingMethod("qlora", "lora", peft_adapter=True, trains_base_weights=False,
                   base_quantization="nf4", needs_cuda=True, trainable_params=_adapter_params,
                   frozen_weight_bytes=_nf4_frozen_bytes),
    TrainingMethod("freeze", "freeze", peft_adapter=False,
                   trains_base_weights=True, base_quantization=None, needs_cuda=False,
                   trainable_params=_last_layers_params, frozen_weight_bytes=_frozen_bytes, problems=_layers_exist,
                   served_from_merged=True),
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

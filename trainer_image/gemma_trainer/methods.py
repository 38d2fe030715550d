"""The torch side of the training methods, one record per ``spec.method`` (the contract side, with the memory
terms and the rules, is ``gemma_api.methods``): the load options of the base model, how the method is
applied to it (what trains), how the result is saved into ``<run>/adapter`` and how it is merged into a whole
model (``output.mergeAdapter``). ``gemma_trainer.model`` calls them; nothing else switches on the method.

Results in the run folder:
  * lora / qlora: ``adapter/`` is a PEFT adapter (``PeftModel.from_pretrained(base, path)``) plus tokenizer files;
    with ``output.mergeAdapter`` also ``merged/`` (``AutoModelForCausalLM.from_pretrained``).
  * freeze: ``adapter/trainable.safetensors`` holds only the trained tensors (names as in the base model's
    state dict: the last ``trainableLayers`` decoder layers and the final norm) with ``trainable.json`` and the
    tokenizer; ``merged/`` (the whole fine-tuned model) with ``mergeAdapter``.
  * full: ``adapter/`` is the whole fine-tuned model (``AutoModelForCausalLM.from_pretrained``) plus tokenizer.
  * An image-text checkpoint (Gemma 3 4B+, Gemma 4) trains its language model alone; each result above names its
    original class (gemma_trainer.image_text): the adapter's modules, freeze tensors, whole models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gemma_api.methods import METHODS

from .errors import ModelError
from .image_text import checkpoint_state, load_causal_lm, retarget_adapter, save_model

TRAINABLE_WEIGHTS = "trainable.safetensors"
TRAINABLE_INFO = "trainable.json"


def decoder_layers(model):
    """The decoder layer list of a (possibly PEFT-wrapped) causal LM."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ModelError(f"cannot find decoder layers in {type(model).__name__}")
    return inner, layers


# ---------------------------------------------------------------- load options


def _policy_dtype(setup, local_rank: int) -> dict:
    return {}


def _fp32_masters_on_cuda(setup, local_rank: int) -> dict:
    """bf16 autocast on fp32 masters (a bf16 master loses updates)."""
    return {"dtype": "float32"} if setup.device == "cuda" and not setup.policy.loss_scaling else {}


def _fp32_masters(setup, local_rank: int) -> dict:
    """Every weight trains: fp32 masters, fp16 projections under a loss-scaled policy; bf16 autocast on fp32
    masters on CUDA."""
    return {"dtype": "float32"} if setup.policy.loss_scaling or setup.device == "cuda" else {}


def _nf4_base(setup, local_rank: int) -> dict:
    """4-bit NF4 base weights whose matmuls run in the policy's projection dtype (bitsandbytes hands back the
    input's dtype, so the fp32 stream of a loss-scaled policy stays fp32)."""
    if setup.device != "cuda":
        raise ModelError("spec.method: qlora needs a CUDA GPU (bitsandbytes 4-bit), and none is visible here: "
                         "use method lora (cpu, tpu-v3) or run on nvidia-tesla-t4")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelError("spec.method: qlora needs the bitsandbytes package in the trainer image") from None
    from transformers import BitsAndBytesConfig

    from .precision import torch_dtype

    compute = torch_dtype(setup.policy.projections)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=compute)
    return {"quantization_config": config, "dtype": setup.policy.weights, "device_map": {"": local_rank}}


# ---------------------------------------------------------------- what trains


def _lora_adapters(model, spec, setup):
    from peft import LoraConfig, get_peft_model

    from .precision import masters_to_fp32

    targets = spec.lora.target_modules
    config = LoraConfig(
        r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
        target_modules="all-linear" if "all-linear" in targets else list(targets),
        bias="none", task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    # Adapter master weights in fp32 under every policy (trl/peft may cast them to half otherwise).
    return masters_to_fp32(model)


def _lora_on_frozen_nf4(model, spec, setup):
    # Not peft's prepare_model_for_kbit_training: it casts every non-4-bit weight to fp32 (Gemma 2 9B's
    # 917M-parameter embedding alone: +1.8 GB). The frozen weights stay in the 16-bit compute dtype
    # (Gemma's RMSNorm computes in fp32 internally); activation checkpointing (non-reentrant, from
    # TrainingArguments) needs no input that requires grad.
    for param in model.parameters():
        param.requires_grad_(False)
    return _lora_adapters(model, spec, setup)


def _last_layers(model, spec, setup):
    from .precision import trainable_to_fp32

    for param in model.parameters():
        param.requires_grad_(False)
    inner, layers = decoder_layers(model)
    n = spec.freeze.trainable_layers
    if n > len(layers):
        raise ModelError(f"spec.freeze.trainableLayers: the model has {len(layers)} decoder layers, not {n}")
    for layer in layers[len(layers) - n:]:
        for param in layer.parameters():
            param.requires_grad_(True)
    norm = getattr(inner, "norm", None)
    if norm is not None:
        for param in norm.parameters():
            param.requires_grad_(True)
    return trainable_to_fp32(model, setup.policy)


def _every_weight(model, spec, setup):
    for param in model.parameters():
        param.requires_grad_(True)
    return model


# ---------------------------------------------------------------- results


def _save_adapter(model, spec, local_dir: Path, base_uri: str, base_reference: str) -> None:
    from peft import get_peft_model_state_dict

    # Adapter tensors copied to the CPU: on TPU they live on XLA devices, which safetensors cannot read.
    state = {k: v.detach().to("cpu") for k, v in get_peft_model_state_dict(model).items()}
    for config in model.peft_config.values():  # not this machine's cache path
        config.base_model_name_or_path = base_reference
    # save_embedding_layers=False: LoRA targets projections only, and "auto" would look the base up on the Hub.
    model.save_pretrained(str(local_dir), state_dict=state, save_embedding_layers=False)
    retarget_adapter(model, local_dir)  # an image-text checkpoint's adapter names its original class


def _save_trained_tensors(model, spec, local_dir: Path, base_uri: str, base_reference: str) -> None:
    from safetensors.torch import save_file

    names = {n for n, p in model.named_parameters() if p.requires_grad}
    state = checkpoint_state(model, {n: t.detach().to("cpu").contiguous() for n, t in model.state_dict().items()
                                     if n in names})
    save_file(state, str(local_dir / TRAINABLE_WEIGHTS), metadata={"format": "pt"})
    (local_dir / TRAINABLE_INFO).write_text(json.dumps({
        "method": spec.method, "baseModelUri": base_uri, "trainableLayers": spec.freeze.trainable_layers,
        "tensors": sorted(state),
    }, indent=1))


def _save_whole_model(model, spec, local_dir: Path, base_uri: str, base_reference: str) -> None:
    save_model(model, local_dir)


def _merge_adapter(model, local_dir: Path, model_dir: Path, setup) -> None:
    import torch
    from peft import PeftModel

    # Merge into unquantized base weights (a 4-bit base cannot be merged exactly).
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(setup.precision, torch.float32)
    base = load_causal_lm(model_dir, dtype=dtype, attn_implementation="eager")
    adapter_dir = local_dir.parent / "_adapter_for_merge"
    model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    save_model(merged, local_dir)  # an image-text checkpoint: its original class, towers included


def _merge_whole_model(model, local_dir: Path, model_dir: Path, setup) -> None:
    save_model(model, local_dir)


@dataclass(frozen=True)
class MethodSteps:
    """How one training method loads, trains, saves and merges (its contract: ``api.methods.TrainingMethod``)."""

    load_options: Callable[..., dict]  # (setup, local_rank) -> from_pretrained options beyond the policy's dtype
    apply: Callable  # (model, spec, setup) -> the model with only what the method trains trainable
    save: Callable  # (model, spec, local_dir, base_uri, base_reference): the adapter/ folder's weights
    merge: Callable | None  # (model, local_dir, model_dir, setup): writes merged/; None: the result is whole


METHOD_STEPS: dict[str, MethodSteps] = {
    "lora": MethodSteps(_policy_dtype, _lora_adapters, _save_adapter, _merge_adapter),
    "qlora": MethodSteps(_nf4_base, _lora_on_frozen_nf4, _save_adapter, _merge_adapter),
    "freeze": MethodSteps(_fp32_masters_on_cuda, _last_layers, _save_trained_tensors, _merge_whole_model),
    "full": MethodSteps(_fp32_masters, _every_weight, _save_whole_model, None),
}


def method_steps(name: str) -> MethodSteps:
    """The steps of ``spec.method`` NAME (one entry per record of ``gemma_api.methods.METHODS``)."""
    if name not in METHOD_STEPS:
        raise ModelError(f"spec.method: the trainer has no steps for method {name!r} (one of {', '.join(METHODS)})")
    return METHOD_STEPS[name]

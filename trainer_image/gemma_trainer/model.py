"""Find, load and prepare the base model for a method, and write the result.

Model locations (``spec.modelUri``, default ``hf://google/<model>``):
  * ``gs://bucket/path``: downloaded once to ``$GEMMAFT_CACHE_DIR`` (default ``~/.cache/gemmaft/models``);
  * ``hf://org/name``: ``huggingface_hub.snapshot_download`` with ``HF_TOKEN`` from the environment;
  * ``pkg://NAME``: weights installed as Python packages, dequantised once into the cache (gemma_trainer.packaged);
  * a local folder with ``config.json``.

The adapter records as its base (``base_model_name_or_path``) what another machine can load: the hub id for
``hf://`` (and for ``pkg://``, the id its weights were converted from), the URI for ``gs://``, the absolute path
of a local folder; never a path into this machine's cache (see :func:`base_model_reference`).

Results in the run folder:
  * lora / qlora: ``adapter/`` is a PEFT adapter (``PeftModel.from_pretrained(base, path)``) plus tokenizer files;
    with ``output.mergeAdapter`` also ``merged/`` (``AutoModelForCausalLM.from_pretrained``).
  * freeze: ``adapter/trainable.safetensors`` holds only the trained tensors (names as in the base model's
    state dict: the last ``trainableLayers`` decoder layers and the final norm) with ``trainable.json`` and the
    tokenizer; ``merged/`` (the whole fine-tuned model) with ``mergeAdapter``.
  * full: ``adapter/`` is the whole fine-tuned model (``AutoModelForCausalLM.from_pretrained``) plus tokenizer.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .errors import ModelError
from .model_cache import COMPLETE_MARKER, cache_folder, cache_root, cached_download
from .packaged import PackageMissing, package_for, prepare_packaged_model
from .storage import open_store
from .templates import ensure_chat_template

log = logging.getLogger(__name__)

TRAINABLE_WEIGHTS = "trainable.safetensors"
TRAINABLE_INFO = "trainable.json"


# ---------------------------------------------------------------- locating


def resolve_model_dir(uri: str) -> Path:
    """A local folder holding the model named by ``uri`` (downloaded when needed)."""
    if uri.startswith("gs://"):
        return _from_gcs(uri)
    if uri.startswith("hf://"):
        return _from_hub(uri[len("hf://"):])
    if uri.startswith("pkg://"):
        return _from_package(uri)
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise ModelError(f"spec.modelUri: model folder {uri} does not exist")
    if not (path / "config.json").is_file():
        raise ModelError(f"spec.modelUri: {uri} has no config.json (expected a save_pretrained folder)")
    return path


def _from_gcs(uri: str) -> Path:
    local = cache_folder(uri)
    if not (local / COMPLETE_MARKER).exists() and not open_store(uri).exists("config.json"):
        raise ModelError(f"spec.modelUri: {uri}/config.json not found (expected a save_pretrained folder)")
    return cached_download(uri, local)


def _from_package(uri: str) -> Path:
    try:
        return prepare_packaged_model(uri, cache_root())
    except (PackageMissing, ValueError) as err:
        raise ModelError(f"spec.modelUri: {err}") from None


def base_model_reference(uri: str) -> str:
    """What an adapter names as its base model: loadable by ``AutoPeftModelForCausalLM`` on another machine."""
    if uri.startswith("hf://"):
        return uri[len("hf://"):]
    if uri.startswith("pkg://"):
        return package_for(uri)[1].upstream_id
    if uri.startswith("gs://"):
        return uri
    return str(Path(uri).expanduser().resolve())


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError as err:  # pragma: no cover - huggingface_hub comes with transformers
        raise ModelError(f"hf:// models need huggingface_hub: {err}") from None
    token = os.environ.get("HF_TOKEN") or None
    try:
        path = snapshot_download(repo_id, token=token,
                                 allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model"])
    except GatedRepoError:
        raise ModelError(f"spec.modelUri: hf://{repo_id} is gated: set spec.pod.hfTokenSecretRef to a token "
                         "that accepted the Gemma licence") from None
    except RepositoryNotFoundError:
        hint = "" if token else " (no HF_TOKEN set)"
        raise ModelError(f"spec.modelUri: hf://{repo_id} not found or not accessible{hint}") from None
    return Path(path)


# ---------------------------------------------------------------- loading


def load_tokenizer(model_dir: Path, family: str | None = None):
    """The tokenizer of ``model_dir``; with ``family``, also the chat template it trains and answers with."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise ModelError(f"spec.modelUri: cannot load the tokenizer from {model_dir}: {err}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if family is not None:
        ensure_chat_template(tok, family)
    return tok


def load_model(model_dir: Path, spec, setup, local_rank: int = 0):
    """The base model for ``spec.method`` on ``setup``'s device, in the dtypes of ``setup.policy`` (eager
    attention): frozen weights in ``policy.weights``, what the policy keeps in its stream dtype converted
    (gemma_trainer.precision); method ``full`` loads fp32 master weights under a loss-scaled policy."""
    from transformers import AutoModelForCausalLM

    from .precision import apply_precision, torch_dtype

    policy = setup.policy
    kwargs = {"attn_implementation": "eager", "dtype": torch_dtype(policy.weights)}
    if spec.method == "qlora":
        kwargs.update(_qlora_kwargs(setup, local_rank))
    elif spec.method == "full" and policy.loss_scaling:
        kwargs["dtype"] = torch_dtype("float32")  # every weight trains: fp32 masters, fp16 projections
    elif spec.method in ("freeze", "full") and setup.device == "cuda" and not policy.loss_scaling:
        kwargs["dtype"] = torch_dtype("float32")  # bf16 autocast on fp32 masters (a bf16 master loses updates)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"spec.modelUri: cannot load the model from {model_dir}: {str(err).splitlines()[0]}") \
            from None
    model.config.use_cache = False
    return apply_precision(model, policy, emulated=setup.emulated)


def _qlora_kwargs(setup, local_rank: int) -> dict:
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
    return {"quantization_config": config, "dtype": torch_dtype(setup.policy.weights),
            "device_map": {"": local_rank}}


def decoder_layers(model):
    """The decoder layer list of a (possibly PEFT-wrapped) causal LM."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ModelError(f"cannot find decoder layers in {type(model).__name__}")
    return inner, layers


def apply_method(model, spec, setup):
    """Make only what ``spec.method`` trains trainable; lora/qlora return a PEFT model."""
    import torch

    from .precision import trainable_to_fp32

    method = spec.method
    if method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        if method == "qlora":
            # Not peft's prepare_model_for_kbit_training: it casts every non-4-bit weight to fp32 (Gemma 2 9B's
            # 917M-parameter embedding alone: +1.8 GB). The frozen weights stay in the 16-bit compute dtype
            # (Gemma's RMSNorm computes in fp32 internally); activation checkpointing (non-reentrant, from
            # TrainingArguments) needs no input that requires grad.
            for param in model.parameters():
                param.requires_grad_(False)
        targets = spec.lora.target_modules
        config = LoraConfig(
            r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
            target_modules="all-linear" if "all-linear" in targets else list(targets),
            bias="none", task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
        # Adapter master weights in fp32 (fp16 autocast on T4; trl/peft may cast them to half otherwise).
        for name, param in model.named_parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
        return model
    if method == "freeze":
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
    for param in model.parameters():  # full
        param.requires_grad_(True)
    return model


def trainable_summary(model) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{trainable:,} of {total:,} parameters trainable ({100.0 * trainable / max(total, 1):.3f}%)"


# ---------------------------------------------------------------- results


def save_result(model, tokenizer, spec, local_dir: Path, base_uri: str) -> Path:
    """Write the ``adapter/`` folder (see the module docstring) into ``local_dir``."""
    local_dir.mkdir(parents=True, exist_ok=True)
    if spec.method in ("lora", "qlora"):
        from peft import get_peft_model_state_dict

        # Adapter tensors copied to the CPU: on TPU they live on XLA devices, which safetensors cannot read.
        state = {k: v.detach().to("cpu") for k, v in get_peft_model_state_dict(model).items()}
        for config in model.peft_config.values():  # not this machine's cache path
            config.base_model_name_or_path = base_model_reference(base_uri)
        # save_embedding_layers=False: LoRA targets projections only, and "auto" would look the base up on the Hub.
        model.save_pretrained(str(local_dir), state_dict=state, save_embedding_layers=False)
    elif spec.method == "freeze":
        from safetensors.torch import save_file

        names = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {n: t.detach().to("cpu").contiguous() for n, t in model.state_dict().items() if n in names}
        save_file(state, str(local_dir / TRAINABLE_WEIGHTS), metadata={"format": "pt"})
        (local_dir / TRAINABLE_INFO).write_text(json.dumps({
            "method": "freeze", "baseModelUri": base_uri, "trainableLayers": spec.freeze.trainable_layers,
            "tensors": sorted(state),
        }, indent=1))
    else:
        model.save_pretrained(str(local_dir))
    tokenizer.save_pretrained(str(local_dir))
    return local_dir


def save_merged(model, tokenizer, spec, local_dir: Path, model_dir: Path, setup) -> Path | None:
    """The whole fine-tuned model (adapter folded in) for ``output.mergeAdapter``; None for method full."""
    if spec.method == "full":
        return None
    local_dir.mkdir(parents=True, exist_ok=True)
    if spec.method in ("lora", "qlora"):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        # Merge into unquantized base weights (a 4-bit base cannot be merged exactly).
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(setup.precision, torch.float32)
        base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, attn_implementation="eager")
        adapter_dir = local_dir.parent / "_adapter_for_merge"
        model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        merged.save_pretrained(str(local_dir))
    else:
        model.save_pretrained(str(local_dir))
    tokenizer.save_pretrained(str(local_dir))
    return local_dir

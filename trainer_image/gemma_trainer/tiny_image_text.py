"""Tiny random Gemma 3 image-text and Gemma 4 checkpoints (the architectures of ``gemma_api/facts.py``'s newer sizes at a
few hundred thousand parameters), saved with a tiny tokenizer of their family. Tests and local smoke runs use them:
nothing here downloads anything.

* ``gemma3-image-text``: ``Gemma3ForConditionalGeneration`` with a SigLIP vision tower and its projector;
* ``gemma4-text``: ``Gemma4ForCausalLM`` with per-layer embeddings, key/value sharing, double-wide MLPs in the
  shared layers, and full-attention layers with their own head dimension whose keys are the values;
* ``gemma4-moe``: ``Gemma4ForCausalLM`` with a mixture of experts beside the dense MLP of every layer;
* ``gemma4-image-text``: ``Gemma4ForConditionalGeneration`` (the dense text model above) with a vision tower.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from .templates import GEMMA3_CHAT_TEMPLATE, GEMMA4_CHAT_TEMPLATE
from .tiny import build_tiny_tokenizer

GEMMA4_TURN_MARKERS = ("<|turn>", "<turn|>")
EXTRA_TOKENS = 8  # ids past the tokenizer's vocabulary for image, begin/end-of-image, audio... tokens
_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512, "sliding_window": 64,
         "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}


def _gemma4_text(vocab: int, **overrides) -> dict:
    values = {**_TEXT, "vocab_size": vocab, "global_head_dim": 32, "layer_types": [
        "sliding_attention", "full_attention", "sliding_attention", "full_attention"], "num_hidden_layers": 4,
        "attention_k_eq_v": True, "num_global_key_value_heads": 1, "final_logit_softcapping": 30.0,
        "hidden_size_per_layer_input": 8, "vocab_size_per_layer_input": vocab, "num_kv_shared_layers": 2,
        "use_double_wide_mlp": True}
    values.update(overrides)
    return values


def _special_ids(vocab: int, names: Iterable[str]) -> dict[str, int]:
    return {name: vocab - 1 - i for i, name in enumerate(names)}


def gemma3_image_text(vocab: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 28, "patch_size": 14}
    ids = _special_ids(vocab, ("image_token_index", "boi_token_index", "eoi_token_index"))
    config = Gemma3Config(text_config={**_TEXT, "vocab_size": vocab}, vision_config=vision, mm_tokens_per_image=4,
                          **ids)
    return Gemma3ForConditionalGeneration(config)


def gemma4_text(vocab: int):
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    return Gemma4ForCausalLM(Gemma4TextConfig(**_gemma4_text(vocab)))


def gemma4_moe(vocab: int):
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    config = Gemma4TextConfig(**_gemma4_text(vocab, hidden_size_per_layer_input=0, num_kv_shared_layers=0,
                                             use_double_wide_mlp=False, enable_moe_block=True, num_experts=4,
                                             top_k_experts=2, moe_intermediate_size=32))
    return Gemma4ForCausalLM(config)


def gemma4_image_text(vocab: int):
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "head_dim": 16, "patch_size": 4, "pooling_kernel_size": 2,
              "position_embedding_size": 64}
    ids = _special_ids(vocab, ("image_token_id", "boi_token_id", "eoi_token_id", "video_token_id",
                               "boa_token_id", "eoa_token_index", "audio_token_id"))
    return Gemma4ForConditionalGeneration(Gemma4Config(text_config=_gemma4_text(vocab), vision_config=vision, **ids))


# kind -> (builder, chat template, turn markers)
TINY_CHECKPOINTS: dict[str, tuple[Callable, str, tuple[str, str]]] = {
    "gemma3-image-text": (gemma3_image_text, GEMMA3_CHAT_TEMPLATE, ("<start_of_turn>", "<end_of_turn>")),
    "gemma4-text": (gemma4_text, GEMMA4_CHAT_TEMPLATE, GEMMA4_TURN_MARKERS),
    "gemma4-moe": (gemma4_moe, GEMMA4_CHAT_TEMPLATE, GEMMA4_TURN_MARKERS),
    "gemma4-image-text": (gemma4_image_text, GEMMA4_CHAT_TEMPLATE, GEMMA4_TURN_MARKERS),
}


def save_tiny_checkpoint(kind: str, folder: str | Path, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    """Write a tiny random checkpoint of ``kind`` (:data:`TINY_CHECKPOINTS`) and its tokenizer to ``folder``."""
    import torch

    build, template, markers = TINY_CHECKPOINTS[kind]
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(texts, turn_markers=markers, chat_template=template)
    torch.manual_seed(seed)
    model = build(len(tokenizer) + EXTRA_TOKENS)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

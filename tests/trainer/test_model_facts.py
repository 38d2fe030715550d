"""The facts table against transformers: each image-text size's text config, built from its ModelArch on the meta
device (no weights), has exactly the recorded parameters, experts and per-layer embeddings, and the memory
model's LoRA targets are the nn.Linear layers peft's ``all-linear`` would adapt in that real module tree."""

from __future__ import annotations

import pytest
import torch
from gemma_api.facts import MODELS, ModelArch
from gemma_api.methods import lora_params
from gemma_api.model_arch import PER_LAYER_MODEL_PROJECTION

NEW_SIZES = ["gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "gemma-4-e2b", "gemma-4-e4b", "gemma-4-26b-a4b",
             "gemma-4-31b"]


def text_config(arch: ModelArch):
    """The transformers text config these facts describe (Gemma3TextConfig or Gemma4TextConfig)."""
    import transformers

    values = {"vocab_size": arch.vocab, "hidden_size": arch.hidden, "intermediate_size": arch.intermediate,
              "num_hidden_layers": arch.layers, "num_attention_heads": arch.heads,
              "num_key_value_heads": arch.kv_heads, "head_dim": arch.head_dim,
              "sliding_window": arch.sliding_window, "max_position_embeddings": arch.max_positions}
    if arch.family == "gemma3":
        return transformers.Gemma3TextConfig(**values)
    glob = arch.global_attention
    values.update(
        layer_types=["full_attention" if arch.is_global(i) else "sliding_attention" for i in range(arch.layers)],
        global_head_dim=glob.head_dim, attention_k_eq_v=glob.kv_heads is not None,
        num_global_key_value_heads=glob.kv_heads, num_kv_shared_layers=arch.kv_shared_layers,
        use_double_wide_mlp=arch.double_wide_mlp,
        hidden_size_per_layer_input=arch.per_layer.width if arch.per_layer else 0,
        vocab_size_per_layer_input=arch.per_layer.vocab if arch.per_layer else arch.vocab,
        enable_moe_block=arch.experts is not None,
        num_experts=arch.experts.count if arch.experts else None,
        top_k_experts=arch.experts.top_k if arch.experts else None,
        moe_intermediate_size=arch.experts.intermediate if arch.experts else None)
    return transformers.Gemma4TextConfig(**values)


@pytest.fixture(scope="module", params=NEW_SIZES)
def meta_model(request):
    import transformers

    arch = MODELS[request.param]
    with torch.device("meta"):
        model = getattr(transformers, arch.language_model_class)(text_config(arch))
    return arch, model


def test_recorded_parameters_are_those_of_the_language_model(meta_model):
    arch, model = meta_model
    named = dict(model.named_parameters())
    assert sum(p.numel() for p in named.values()) == arch.params
    assert sum(p.numel() for n, p in named.items() if ".experts." in n) == arch.expert_params
    per_layer = named.get("model.embed_tokens_per_layer.weight")
    assert (per_layer.numel() if per_layer is not None else 0) == arch.per_layer_embedding_params


def test_lora_targets_are_the_linear_layers_all_linear_adapts(meta_model):
    arch, model = meta_model
    linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    assert lora_params(arch, 8, ["all-linear"]) == sum(8 * (m.in_features + m.out_features) for m in linear.values())
    attention = {n: m for n, m in linear.items() if n.rsplit(".", 1)[-1] in ("q_proj", "v_proj")}
    assert lora_params(arch, 4, ["q_proj", "v_proj"]) == sum(4 * (m.in_features + m.out_features)
                                                             for m in attention.values())
    assert (PER_LAYER_MODEL_PROJECTION in {n.rsplit(".", 1)[-1] for n in linear}) == (arch.per_layer is not None)

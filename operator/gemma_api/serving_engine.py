"""What the serving engine (vLLM's OpenAI-compatible server) accepts, per model family: one table, with sources.

Admission (``serving_rules.py``), the inference memory model (``serving_memory.py``) and the rendered Deployment
(``render/serving.py``) read these facts; nothing else names a vLLM limit.

Sources (vllm-project/vllm, read at commit 01230b40 and 004dc924; the pinned image's own copy UNVERIFIED):

* ``vllm/config/model.py`` ``_FLOAT16_NOT_SUPPORTED_MODELS``: model types ``gemma2``, ``gemma3`` and ``gemma3_text``
  are refused in float16 ("Numerical instability. Please use bfloat16 or float32 instead."). A T4 has no bfloat16
  (compute capability 7.5), so there a Gemma 2 or Gemma 3 serves in float32: twice the bytes of fp16.
* ``vllm/config/lora.py`` ``MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]``: ``--max-lora-rank``
  takes only these values (default 16); an adapter whose rank is above it is refused when it is loaded.
* ``vllm/model_executor/models/gemma2.py`` / ``gemma3.py``: ``Gemma2ForCausalLM`` and ``Gemma3ForCausalLM`` implement
  ``SupportsLoRA`` with ``packed_modules_mapping = {"qkv_proj": [q_proj, k_proj, v_proj], "gate_up_proj":
  [gate_proj, up_proj]}``; with ``o_proj`` and ``down_proj`` these are the projections an adapter may target. vLLM
  refuses an adapter with other modules ("While loading DIR, expected target modules in [...] but received [...]",
  ``vllm/lora``); Gemma declares no LoRA embedding modules, so ``embed_tokens`` / ``lm_head`` adapters are refused.
* ``--gpu-memory-utilization`` defaults to 0.9: the fraction of the GPU vLLM takes for weights, activations and its
  KV cache; the server refuses to start when one ``--max-model-len`` sequence does not fit the KV cache left.
* ``--tensor-parallel-size`` must divide the model's attention heads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import LINEAR_MODULES

ENGINE = "vLLM"
MAX_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# Tokens of one scheduler step (vLLM's max_num_batched_tokens for online serving on a GPU: UNVERIFIED per version):
# the forward pass's activations are counted for this many tokens.
BATCHED_TOKENS = 2048
SERVE_PORT = 8000
FALLBACK_DTYPE = "float32"  # what a refused dtype falls back to on a GPU without bfloat16 (the T4)


@dataclass(frozen=True)
class EngineFamily:
    """What the engine accepts for one model family (``ModelArch.family``)."""

    model_types: tuple[str, ...]  # config.json model_type values vLLM keys its tables by
    refused_dtypes: frozenset[str]  # dtypes the engine refuses for these model types
    lora_modules: frozenset[str]  # peft target modules the engine's LoRA layers accept
    why: str


_GEMMA_REFUSES_FP16 = "vllm/config/model.py _FLOAT16_NOT_SUPPORTED_MODELS: numerical instability"
ENGINE_FAMILIES: dict[str, EngineFamily] = {
    "gemma2": EngineFamily(("gemma2",), frozenset({"float16"}), frozenset(LINEAR_MODULES), _GEMMA_REFUSES_FP16),
    "gemma3": EngineFamily(("gemma3", "gemma3_text"), frozenset({"float16"}), frozenset(LINEAR_MODULES),
                           _GEMMA_REFUSES_FP16),
}


def engine_family(family: str) -> EngineFamily | None:
    """The engine's facts for a model family; None where this table has none (admission refuses serving it)."""
    return ENGINE_FAMILIES.get(family)


def serving_dtype(row: EngineFamily, arithmetic: str) -> str:
    """The dtype the engine serves a family in on an accelerator whose arithmetic is ``arithmetic``
    (``AcceleratorProfile.compute_dtype``): that arithmetic, unless the engine refuses it for the family."""
    return FALLBACK_DTYPE if arithmetic in row.refused_dtypes else arithmetic


def engine_lora_rank(rank: int) -> int | None:
    """The smallest ``--max-lora-rank`` value that holds an adapter of ``rank``; None above the engine's limit."""
    return next((r for r in MAX_LORA_RANKS if r >= rank), None)


def expand_targets(targets: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """peft's target modules as module names (``all-linear``: every projection of a decoder layer)."""
    return tuple(LINEAR_MODULES) if "all-linear" in targets else tuple(targets)

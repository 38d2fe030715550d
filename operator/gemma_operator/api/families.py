"""The model families (``ModelArch.family`` in ``facts.py``), one record each: the transformers class of its text
models, its tokenizer, the rule its chat template follows for a system message, and its rows of the precision
policy (``precision.py`` defines the policies).

The trainer holds the chat templates themselves, one per family (``gemma_trainer.templates.CHAT_TEMPLATES``).
Adding a family is one record here, its template there, and its models in ``facts.MODELS``; no code compares a
family with a family's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .precision import DEFAULTS, FP16_PROJECTIONS, PrecisionPolicy, PrecisionRow


@dataclass(frozen=True)
class ModelFamily:
    name: str
    architecture: str  # the transformers class of its text causal LMs (``config.json`` ``architectures``)
    tokenizer: str  # its tokenizer in words: a distillation's teacher and student must share one
    system_turn: str  # how its chat template takes a leading system message
    precision: dict[str, PrecisionRow] = field(default_factory=dict)  # arithmetic -> its policy, with why


SYSTEM_AS_PREFIX = "a leading system message becomes a prefix of the first user turn, followed by a blank line"

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    # Gemma 2 (all sizes): SentencePiece, 256,000 entries (transformers configuration_gemma2.py). Its released
    # template refuses a system message: gemmaft gives it Gemma 3's rule (gemma_trainer.templates).
    ModelFamily("gemma2", "Gemma2ForCausalLM", "Gemma 2 (256,000 tokens)", SYSTEM_AS_PREFIX, {
        "float16": PrecisionRow(
            FP16_PROJECTIONS, "Gemma 2 27B is erratic in fp16 (HF Gemma 2 blog); 2B and 9B are unmeasured here "
                              "(no real Gemma 2 weights on this machine): the safe policy"),
    }),
    # Gemma 3 text models: 262,144 entries (google/gemma-3-270m config.json; the same in the pkg:// GGUF's
    # tokenizer), a different vocabulary.
    ModelFamily("gemma3", "Gemma3ForCausalLM", "Gemma 3 (262,144 tokens)", SYSTEM_AS_PREFIX, {
        "float16": PrecisionRow(
            FP16_PROJECTIONS, "measured: the real Gemma 3 270M overflows fp16 at layer 8 (stream 1.04e5); fp16 "
                              "projections around an fp32 stream stay finite, loss within 0.01% of fp32 "
                              "(tests/real_gemma/test_numerics.py)"),
    }),
)}


def tokenizer_of(family: str) -> str:
    """The tokenizer of ``family`` in words (the family's name where it has no record)."""
    record = FAMILIES.get(family)
    return record.tokenizer if record is not None else family


def precision_policy(family: str, arithmetic: str) -> PrecisionPolicy:
    """The policy for a model ``family`` (``ModelArch.family``) on an accelerator whose arithmetic is
    ``arithmetic`` (``float16``, ``bfloat16`` or ``float32``): the family's row, else the arithmetic's default."""
    record = FAMILIES.get(family)
    row = record.precision.get(arithmetic) if record is not None else None
    if row is not None:
        return row.policy
    try:
        return DEFAULTS[arithmetic]
    except KeyError:
        raise ValueError(f"no precision policy for arithmetic {arithmetic!r}: one of {sorted(DEFAULTS)}") from None

"""The model families (``ModelArch.family`` in ``facts.py``), one record each: the transformers class of its text
models, its tokenizer, its chat template's turn markers and the rule it follows for a system message, and its rows
of the precision policy (``precision.py`` defines the policies).

The trainer holds the chat templates themselves, one per family (``gemma_trainer.templates.CHAT_TEMPLATES``);
tests check that every family has one and that it writes the record's turn markers. Adding a family is one record
here, its template there, and its models in ``facts.MODELS``; no code compares a family with a family's name.

Turn markers, as released:

* Gemma 2 and Gemma 3 (google/gemma-2-*-it, google/gemma-3-*-it ``chat_template``): ``<start_of_turn>ROLE\\n`` ...
  ``<end_of_turn>\\n``; no system role (Gemma 3 writes a system message before the first user message).
* Gemma 4 (google/gemma-4-*-it ``chat_template.jinja``, as quoted by llama.cpp's
  ``models/templates/google-gemma-4-31B-it.jinja`` and from the E2B GGUF's ``tokenizer.chat_template``):
  ``<|turn>ROLE\\n`` ... ``<turn|>\\n``, roles ``system``, ``user``, ``model``; a native system turn.

Tokenizers: a distillation's teacher and student must share one (the student learns the teacher's distribution
over the same token ids). Gemma 2: SentencePiece, 256,000 entries (transformers ``configuration_gemma2.py``).
Gemma 3: 262,144 entries (google/gemma-3-270m ``config.json``; the image-text sizes' embedding has 262,208 rows,
the same tokenizer plus image tokens: transformers ``Gemma3TextConfig`` default, which their ``config.json`` keeps).
Gemma 4: 262,144 entries (google/gemma-4-*-it ``config.json`` ``vocab_size``) with its own turn and channel
tokens; whether its ids equal Gemma 3's is UNVERIFIED, so it is a family of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .precision import DEFAULTS, FP16_PROJECTIONS, PrecisionPolicy, PrecisionRow


@dataclass(frozen=True)
class ModelFamily:
    name: str
    architecture: str  # the transformers class of its text causal LMs (an image-text checkpoint's language model)
    tokenizer: str  # its tokenizer in words: a distillation's teacher and student must share one
    system_turn: str  # how its chat template takes a leading system message
    turn_start: str  # opens a turn, followed by the role and a newline
    turn_end: str  # closes a turn (the loss covers it: the model learns to stop)
    system_role: bool  # the released template has a system turn of its own
    source: str  # where the turn markers come from
    precision: dict[str, PrecisionRow] = field(default_factory=dict)  # arithmetic -> its policy, with why


SYSTEM_AS_PREFIX = "a leading system message becomes a prefix of the first user turn, followed by a blank line"
SYSTEM_AS_TURN = "a leading system message is a turn of its own (role system)"

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    # Gemma 2 (all sizes): SentencePiece, 256,000 entries (transformers configuration_gemma2.py). Its released
    # template refuses a system message: gemmaft gives it Gemma 3's rule (gemma_trainer.templates).
    ModelFamily(
        "gemma2", "Gemma2ForCausalLM", "Gemma 2 (256,000 tokens)", SYSTEM_AS_PREFIX,
        "<start_of_turn>", "<end_of_turn>", False, "google/gemma-2-*-it chat_template (refuses a system message)",
        {"float16": PrecisionRow(
            FP16_PROJECTIONS, "Gemma 2 27B is erratic in fp16 (HF Gemma 2 blog); 2B and 9B are unmeasured here "
                              "(no real Gemma 2 weights on this machine): the safe policy")}),
    # Gemma 3 text models: 262,144 entries (google/gemma-3-270m config.json; the same in the pkg:// GGUF's
    # tokenizer), a different vocabulary; the image-text sizes train their Gemma3ForCausalLM language model.
    ModelFamily(
        "gemma3", "Gemma3ForCausalLM", "Gemma 3 (262,144 tokens)", SYSTEM_AS_PREFIX,
        "<start_of_turn>", "<end_of_turn>", False,
        "google/gemma-3-*-it chat_template (system message prefixed to the first user turn)",
        {"float16": PrecisionRow(
            FP16_PROJECTIONS, "measured: the real Gemma 3 270M overflows fp16 at layer 8 (stream 1.04e5); fp16 "
                              "projections around an fp32 stream stay finite: loss 0.008% from fp32 on one "
                              "examples/records row, 0.029% on four (gemmaft check-numerics; "
                              "tests/real_gemma/test_numerics.py asserts < 1%)")}),
    # Gemma 4: every size is an image-text checkpoint (Gemma4ForConditionalGeneration) whose language model is a
    # Gemma4ForCausalLM; 262,144 entries with its own turn tokens.
    ModelFamily(
        "gemma4", "Gemma4ForCausalLM", "Gemma 4 (262,144 tokens)", SYSTEM_AS_TURN,
        "<|turn>", "<turn|>", True,
        "google/gemma-4-*-it chat_template.jinja (llama.cpp models/templates/google-gemma-4-31B-it.jinja)",
        {"float16": PrecisionRow(
            FP16_PROJECTIONS, "unmeasured here (no real Gemma 4 weights on this machine); Unsloth's loader forces "
                              "fp32 activations for gemma4 as for gemma3 (FORCE_FLOAT32), and Gemma 4 scales its "
                              "embedding by sqrt(hidden) as Gemma 3 does: the safe policy")}),
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

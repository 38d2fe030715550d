"""Model families: one record each. ``ModelArch.family`` names one; the trainer's chat template
(``gemma_trainer.templates.CHAT_TEMPLATES``) and the precision table (``api/precision.py``) are keyed by the same
name, and tests check that every family has both.

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

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFamily:
    name: str
    tokenizer: str  # the tokenizer family: distillation pairs models of one
    turn_start: str  # opens a turn, followed by the role and a newline
    turn_end: str  # closes a turn (the loss covers it: the model learns to stop)
    system_role: bool  # the released template has a system turn of its own
    source: str


FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    ModelFamily("gemma2", "Gemma 2 (256,000 tokens)", "<start_of_turn>", "<end_of_turn>", False,
                "google/gemma-2-*-it chat_template (refuses a system message)"),
    ModelFamily("gemma3", "Gemma 3 (262,144 tokens)", "<start_of_turn>", "<end_of_turn>", False,
                "google/gemma-3-*-it chat_template (system message prefixed to the first user turn)"),
    ModelFamily("gemma4", "Gemma 4 (262,144 tokens)", "<|turn>", "<turn|>", True,
                "google/gemma-4-*-it chat_template.jinja (llama.cpp models/templates/google-gemma-4-31B-it.jinja)"),
)}

"""Gemma chat templates, per family, and the choice of the one a tokenizer trains and answers with.

Both families render a turn as ``<start_of_turn>ROLE\\n`` + content (trimmed) + ``<end_of_turn>\\n`` with roles
``user`` and ``model``, after one ``<bos>``; ``add_generation_prompt`` appends ``<start_of_turn>model\\n``.
They differ in the system turn:

* Gemma 3 (the template of google/gemma-3-*-it): a leading system message becomes a prefix of the first user
  turn, ``system + "\\n\\n"``, written as is (not trimmed), followed by the user's content trimmed.
* Gemma 2 (google/gemma-2-*-it): the released template refuses a system message ("System role not supported").
  gemmaft's Gemma 2 template is that template plus the one system rule Gemma has, Gemma 3's: identical output for
  every conversation without a system message.

The trainer renders every row with the tokenizer's template and saves that template with the adapter, so what a
model trains on is exactly what ``apply_chat_template`` gives it at inference. Nothing is folded by hand.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# The system prefix and the turn loop are shared; only the handling of a system message differs by family.
_TURNS = (
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' or message['role'] == 'model' -%}"
    "{%- set role = 'model' -%}"
    "{%- else -%}"
    "{%- set role = message['role'] -%}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{%- endif -%}"
)
_SYSTEM_PREFIX = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
)

GEMMA3_CHAT_TEMPLATE = _SYSTEM_PREFIX + _TURNS
GEMMA2_CHAT_TEMPLATE = _SYSTEM_PREFIX + _TURNS  # Gemma 2's own template refuses system; see the module docstring

CHAT_TEMPLATES = {"gemma2": GEMMA2_CHAT_TEMPLATE, "gemma3": GEMMA3_CHAT_TEMPLATE}

_SYSTEM_PROBE = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                 {"role": "assistant", "content": "a"}]


def renders_system_turns(tokenizer) -> bool:
    """Whether the tokenizer's own chat template takes a leading system message (Gemma 2's refuses it)."""
    from jinja2 import TemplateError

    try:
        tokenizer.apply_chat_template(_SYSTEM_PROBE, tokenize=False)
    except (TemplateError, ValueError, KeyError, TypeError):  # raise_exception, or a template needing other fields
        return False
    return True


def ensure_chat_template(tokenizer, family: str) -> str:
    """Give ``tokenizer`` the chat template it trains with and saves with the adapter; returns where it came from.

    Its own template is kept when it renders system turns; otherwise (none, as in a GGUF, or Gemma 2's, which
    refuses them) the family's template is set."""
    if family not in CHAT_TEMPLATES:
        raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(CHAT_TEMPLATES)}")
    if getattr(tokenizer, "chat_template", None) and renders_system_turns(tokenizer):
        return "tokenizer"
    reason = "has none" if not getattr(tokenizer, "chat_template", None) else "refuses system messages"
    log.info("the tokenizer's chat template %s: using gemmaft's %s template", reason, family)
    tokenizer.chat_template = CHAT_TEMPLATES[family]
    return family

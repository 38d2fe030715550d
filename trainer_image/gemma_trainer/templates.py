"""Gemma chat templates, per family, and the choice of the one a tokenizer trains and answers with.

Gemma 2 and Gemma 3 render a turn as ``<start_of_turn>ROLE\\n`` + content (trimmed) + ``<end_of_turn>\\n`` with roles
``user`` and ``model``, after one ``<bos>``; ``add_generation_prompt`` appends ``<start_of_turn>model\\n``.
They differ in the system turn:

* Gemma 3 (the template of google/gemma-3-*-it): a leading system message becomes a prefix of the first user
  turn, ``system + "\\n\\n"``, written as is (not trimmed), followed by the user's content trimmed.
* Gemma 2 (google/gemma-2-*-it): the released template refuses a system message ("System role not supported").
  gemmaft's Gemma 2 template is that template plus the one system rule Gemma has, Gemma 3's: identical output for
  every conversation without a system message.

Gemma 4 (google/gemma-4-*-it ``chat_template.jinja``; turn markers in ``gemma_api.families``) renders a
turn as ``<|turn>ROLE\n`` + content (trimmed) + ``<turn|>\n``, roles ``system``, ``user`` and ``model``: a leading
system message is a turn of its own. ``add_generation_prompt`` appends ``<|turn>model\n``. gemmaft's Gemma 4
template is the released one's text-only core: no tools, no images, thinking off. (The 26B-A4B and 31B
templates also append an empty thought channel, ``<|channel>thought\n<channel|>``, to the generation prompt when
thinking is off; a template that does not render conversations prefix by prefix cannot mark the turns to learn,
so such a tokenizer trains with gemmaft's template and saves it with the adapter.)

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

GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{ '<|turn>system\n' + messages[0]['content'] | trim + '<turn|>\n' }}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] in ('assistant', 'model') else message['role'] -%}"
    "{{ '<|turn>' + role + '\n' + message['content'] | trim + '<turn|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|turn>model\n' }}"
    "{%- endif -%}"
)

CHAT_TEMPLATES = {"gemma2": GEMMA2_CHAT_TEMPLATE, "gemma3": GEMMA3_CHAT_TEMPLATE, "gemma4": GEMMA4_CHAT_TEMPLATE}

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


_TURN_PROBE = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]


def _answer_tail(tokenizer) -> str | None:
    """What the template writes after an answer's content, when it renders a conversation prefix by prefix (the
    conversation starts with what the generation prompt rendered); None otherwise."""
    from jinja2 import TemplateError

    try:
        prompt = tokenizer.apply_chat_template(_TURN_PROBE[:1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(_TURN_PROBE, tokenize=False)
    except (TemplateError, ValueError, KeyError, TypeError):
        return None
    answer = prompt + _TURN_PROBE[1]["content"]
    return full[len(answer):] if full.startswith(answer) else None


def turn_end_marker(tokenizer, default: str = "<end_of_turn>") -> str:
    """The marker that closes a model turn in the tokenizer's template (``<end_of_turn>``, Gemma 4's
    ``<turn|>``): read from the template's own rendering, so every family's template answers for itself."""
    tail = (_answer_tail(tokenizer) or "").strip()
    return tail or default


def ensure_chat_template(tokenizer, family: str) -> str:
    """Give ``tokenizer`` the chat template it trains with and saves with the adapter; returns where it came from.

    Its own template is kept when it renders system turns and conversations prefix by prefix; otherwise (none,
    as in a GGUF; Gemma 2's, which refuses system messages; a generation prompt the answer does not continue) the
    family's template is set."""
    if family not in CHAT_TEMPLATES:
        raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(CHAT_TEMPLATES)}")
    own = getattr(tokenizer, "chat_template", None)
    if own and renders_system_turns(tokenizer) and _answer_tail(tokenizer) is not None:
        return "tokenizer"
    reason = ("has none" if not own else "refuses system messages" if not renders_system_turns(tokenizer)
              else "does not render conversations prefix by prefix")
    log.info("the tokenizer's chat template %s: using gemmaft's %s template", reason, family)
    tokenizer.chat_template = CHAT_TEMPLATES[family]
    return family

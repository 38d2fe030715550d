"""Chat templates per Gemma family and the loss masks rendered with them, including three data edge cases:
a literal ``<end_of_turn>`` inside an answer, a text row that already ends with ``<eos>``, and a system turn that
must render exactly as the template renders it at inference."""

from __future__ import annotations

import pytest
from gemma_api.families import FAMILIES
from gemma_trainer import tiny
from gemma_trainer.data import IGNORE_INDEX, format_and_tokenize
from gemma_trainer.templates import (
    CHAT_TEMPLATES,
    GEMMA2_CHAT_TEMPLATE,
    GEMMA3_CHAT_TEMPLATE,
    GEMMA4_CHAT_TEMPLATE,
    ensure_chat_template,
    renders_system_turns,
    turn_end_marker,
)
from gemma_trainer.tiny_image_text import GEMMA4_TURN_MARKERS

EOT = "<end_of_turn>"
# What google/gemma-2-*-it ships: no system role, contents trimmed (written out here, not taken from our code).
RELEASED_GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# What google/gemma-4-*-it ships, its text-only core (llama.cpp models/templates/google-gemma-4-31B-it.jinja and the
# E2B GGUF's tokenizer.chat_template: a native system turn, contents trimmed; written out here, not taken from our
# code; tools, images and thinking left out).
RELEASED_GEMMA4_TEMPLATE = (
    "{{- bos_token -}}{%- if messages[0]['role'] in ['system', 'developer'] -%}{{- '<|turn>system\n' -}}"
    "{{- messages[0]['content'] | trim -}}{{- '<turn|>\n' -}}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<|turn>' + role + '\n' -}}{{- message['content'] | trim -}}{{- '<turn|>\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|turn>model\n' -}}{%- endif -%}"
)
# The 26B-A4B's generation prompt with thinking off: an empty thought channel the answer does not start with.
EMPTY_THOUGHT_TEMPLATE = RELEASED_GEMMA4_TEMPLATE.replace(
    "{{- '<|turn>model\n' -}}{%- endif -%}", "{{- '<|turn>model\n<|channel>thought\n<channel|>' -}}{%- endif -%}")


@pytest.fixture
def tok():
    return tiny.build_tiny_tokenizer()


def trained_text(tok, feature) -> str:
    return tok.decode([t for t, lab in zip(feature["input_ids"], feature["labels"], strict=True)
                       if lab != IGNORE_INDEX])


def test_gemma3_template_writes_the_system_turn_as_gemma3_does(tok):
    tok.chat_template = GEMMA3_CHAT_TEMPLATE
    messages = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "  What?  "},
                {"role": "assistant", "content": " Fine. "}, {"role": "user", "content": "And?"},
                {"role": "assistant", "content": "Done."}]
    assert tok.apply_chat_template(messages, tokenize=False) == (
        "<bos><start_of_turn>user\n Be brief. \n\nWhat?<end_of_turn>\n<start_of_turn>model\nFine.<end_of_turn>\n"
        "<start_of_turn>user\nAnd?<end_of_turn>\n<start_of_turn>model\nDone.<end_of_turn>\n")
    assert tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True).endswith(
        "What?<end_of_turn>\n<start_of_turn>model\n")


def test_gemma2_template_equals_the_released_one_without_a_system_turn(tok):
    messages = [{"role": "user", "content": " Hi \n"}, {"role": "model", "content": "Hello "},
                {"role": "user", "content": "Bye"}]
    ours = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                   chat_template=GEMMA2_CHAT_TEMPLATE)
    released = tok.apply_chat_template([{**m, "role": "assistant" if m["role"] == "model" else m["role"]}
                                        for m in messages], tokenize=False, add_generation_prompt=True,
                                       chat_template=RELEASED_GEMMA2_TEMPLATE)
    assert ours == released == ("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                                "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.parametrize("template", [GEMMA3_CHAT_TEMPLATE, GEMMA2_CHAT_TEMPLATE], ids=["gemma3", "gemma2"])
def test_system_turn_trains_on_exactly_what_inference_renders(tok, template):
    """The prompt tokens of a training row are the tokens apply_chat_template gives at inference."""
    tok.chat_template = template
    messages = [{"role": "system", "content": " Answer in one word. "}, {"role": "user", "content": "  Sky colour? "},
                {"role": "assistant", "content": "blue"}]
    (feature,) = format_and_tokenize([{"messages": messages}], "messages", tok, 256)
    at_inference = tok.apply_chat_template(messages[:2], tokenize=True, add_generation_prompt=True,
                                           return_dict=True)["input_ids"]
    assert feature["input_ids"][: len(at_inference)] == list(at_inference)
    assert tok.decode(feature["input_ids"][: len(at_inference)]) == (
        "<bos><start_of_turn>user\n Answer in one word. \n\nSky colour?<end_of_turn>\n<start_of_turn>model\n")
    assert trained_text(tok, feature) == "blue" + EOT


def test_a_literal_end_of_turn_inside_an_answer_does_not_end_the_loss(tok):
    answer = f"Gemma ends a turn with {EOT} and then a newline."
    rows = [{"prompt": "How does Gemma end a turn?", "completion": answer}]
    (feature,) = format_and_tokenize(rows, "prompt-completion", tok, 256)
    assert trained_text(tok, feature) == answer + EOT
    messages = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": f"x {EOT} y"},
                             {"role": "user", "content": "b"}, {"role": "assistant", "content": "z"}]}
    (feature,) = format_and_tokenize([messages], "messages", tok, 256)
    assert trained_text(tok, feature) == f"x {EOT} y{EOT}z{EOT}"


def test_a_text_row_that_already_ends_with_eos_trains_on_one_eos(tok):
    rows = [{"text": "Q: sun\nA: moon<eos>"}, {"text": "<bos>Q: up\nA: down"}, {"text": "plain"}]
    features = format_and_tokenize(rows, "text", tok, 256)
    for f in features:
        ids = f["input_ids"]
        assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id, tok.decode(ids)
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id, tok.decode(ids)
        assert f["labels"] == ids
    assert tok.decode(features[0]["input_ids"]) == "<bos>Q: sun\nA: moon<eos>"


def test_ensure_chat_template_keeps_replaces_or_sets(tok):
    assert ensure_chat_template(tok, "gemma3") == "tokenizer" and tok.chat_template == GEMMA2_CHAT_TEMPLATE
    tok.chat_template = RELEASED_GEMMA2_TEMPLATE
    assert not renders_system_turns(tok)
    assert ensure_chat_template(tok, "gemma2") == "gemma2" and tok.chat_template == GEMMA2_CHAT_TEMPLATE
    tok.chat_template = None
    assert ensure_chat_template(tok, "gemma3") == "gemma3" and tok.chat_template == GEMMA3_CHAT_TEMPLATE
    with pytest.raises(ValueError, match="unknown model family"):
        ensure_chat_template(tok, "llama")


@pytest.fixture
def tok4():
    return tiny.build_tiny_tokenizer(turn_markers=GEMMA4_TURN_MARKERS, chat_template=GEMMA4_CHAT_TEMPLATE)


@pytest.mark.parametrize("system", [True, False], ids=["system", "no-system"])
def test_gemma4_template_equals_the_released_one(tok4, system):
    messages = [{"role": "user", "content": " Hi \n"}, {"role": "assistant", "content": "Hello "},
                {"role": "user", "content": "Bye"}]
    if system:
        messages.insert(0, {"role": "system", "content": " Be brief. "})
    ours = tok4.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    released = tok4.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                        chat_template=RELEASED_GEMMA4_TEMPLATE)
    assert ours == released
    assert ours == (("<bos><|turn>system\nBe brief.<turn|>\n" if system else "<bos>")
                    + "<|turn>user\nHi<turn|>\n<|turn>model\nHello<turn|>\n<|turn>user\nBye<turn|>\n<|turn>model\n")


def test_gemma4_rows_learn_the_answer_and_its_turn_end(tok4):
    assert turn_end_marker(tok4) == "<turn|>" and turn_end_marker(tiny.build_tiny_tokenizer()) == EOT
    messages = [{"role": "system", "content": "One word."}, {"role": "user", "content": "Sky colour?"},
                {"role": "assistant", "content": "blue"}]
    (feature,) = format_and_tokenize([{"messages": messages}], "messages", tok4, 256)
    at_inference = tok4.apply_chat_template(messages[:2], tokenize=True, add_generation_prompt=True,
                                            return_dict=True)["input_ids"]
    assert feature["input_ids"][: len(at_inference)] == list(at_inference)
    assert trained_text(tok4, feature) == "blue<turn|>"


def test_a_template_whose_generation_prompt_the_answer_does_not_continue_is_replaced(tok4):
    assert EMPTY_THOUGHT_TEMPLATE != RELEASED_GEMMA4_TEMPLATE
    tok4.chat_template = EMPTY_THOUGHT_TEMPLATE
    assert renders_system_turns(tok4)
    assert ensure_chat_template(tok4, "gemma4") == "gemma4" and tok4.chat_template == GEMMA4_CHAT_TEMPLATE
    tok4.chat_template = RELEASED_GEMMA4_TEMPLATE
    assert ensure_chat_template(tok4, "gemma4") == "tokenizer"


def test_every_family_has_a_template_written_with_its_turn_markers():
    assert set(CHAT_TEMPLATES) == set(FAMILIES)
    for name, family in FAMILIES.items():
        template = CHAT_TEMPLATES[name]
        assert family.turn_start in template and family.turn_end in template, name
        assert ("'<|turn>system" in template) == family.system_role, name

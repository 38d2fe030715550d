"""The real Gemma 3 tokenizer with its chat template: exact renderings and loss masks for messages (system turn
included) and prompt-completion rows; the facts table against the real model."""

from __future__ import annotations

import json

from gemma_api.facts import MODELS
from gemma_api.methods import lora_params
from gemma_trainer.batches import IGNORE_INDEX
from gemma_trainer.data import format_and_tokenize

from .conftest import LANE

pytestmark = LANE
EOT = "<end_of_turn>"


def trained_runs(tok, feature) -> list[str]:
    """The decoded runs of consecutive trained tokens."""
    runs, current = [], []
    for token, label in zip(feature["input_ids"], feature["labels"], strict=True):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    return [tok.decode(r) for r in runs + ([current] if current else [])]


def test_special_tokens_are_single_ids(gemma3_tokenizer):
    tok = gemma3_tokenizer
    ids = tok("<start_of_turn>user\nhi<end_of_turn>", add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<start_of_turn>") and ids[-1] == tok.convert_tokens_to_ids(EOT)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert len(tok) == MODELS["gemma-3-270m"].vocab


def test_messages_with_a_system_turn_render_and_mask_as_gemma3(gemma3_tokenizer):
    tok = gemma3_tokenizer
    messages = [{"role": "system", "content": "Answer with one JSON object."},
                {"role": "user", "content": "Ana is 30 and a pilot in Oslo. "},
                {"role": "assistant", "content": '{"name": "Ana", "age": 30}'},
                {"role": "user", "content": "And Bo, 41?"},
                {"role": "model", "content": '{"name": "Bo", "age": 41}'}]
    (feature,) = format_and_tokenize([{"messages": messages}], "messages", tok, 512)
    assert tok.decode(feature["input_ids"]) == (
        "<bos><start_of_turn>user\nAnswer with one JSON object.\n\nAna is 30 and a pilot in Oslo.<end_of_turn>\n"
        '<start_of_turn>model\n{"name": "Ana", "age": 30}<end_of_turn>\n'
        "<start_of_turn>user\nAnd Bo, 41?<end_of_turn>\n"
        '<start_of_turn>model\n{"name": "Bo", "age": 41}<end_of_turn>\n')
    assert trained_runs(tok, feature) == ['{"name": "Ana", "age": 30}' + EOT, '{"name": "Bo", "age": 41}' + EOT]
    # What inference renders for the first question is exactly the prompt the first answer was trained after.
    prompt = tok.apply_chat_template(messages[:2], add_generation_prompt=True, return_dict=True)["input_ids"]
    assert feature["input_ids"][: len(prompt)] == list(prompt)
    assert feature["labels"][len(prompt) - 1] == IGNORE_INDEX and feature["labels"][len(prompt)] != IGNORE_INDEX


def test_prompt_completion_rows_render_and_mask_as_gemma3(gemma3_tokenizer):
    from .conftest import RECORDS

    tok = gemma3_tokenizer
    rows = [json.loads(line) for line in (RECORDS / "eval.jsonl").read_text().splitlines()[:4]]
    for row, feature in zip(rows, format_and_tokenize(rows, "prompt-completion", tok, 256), strict=True):
        assert tok.decode(feature["input_ids"]) == (f"<bos><start_of_turn>user\n{row['prompt']}{EOT}\n"
                                                    f"<start_of_turn>model\n{row['completion']}{EOT}\n")
        assert trained_runs(tok, feature) == [row["completion"] + EOT]


def test_facts_table_matches_the_real_model(gemma3_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = MODELS["gemma-3-270m"]
    config = AutoConfig.from_pretrained(gemma3_dir)
    assert config.architectures == [arch.architecture]
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.head_dim, config.vocab_size, config.sliding_window,
            config.max_position_embeddings) == (arch.hidden, arch.intermediate, arch.layers, arch.heads,
                                                arch.kv_heads, arch.head_dim, arch.vocab, arch.sliding_window,
                                                arch.max_positions)
    model = AutoModelForCausalLM.from_pretrained(gemma3_dir, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == arch.params
    lora = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == lora_params(arch, 8, ["all-linear"])

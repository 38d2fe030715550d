"""The tiny tokenizer, tiny Gemma 2 and learnable data sets used by trainer tests."""

from __future__ import annotations

import pytest
import torch
from gemma_trainer import tiny


@pytest.fixture(scope="module")
def tok():
    return tiny.build_tiny_tokenizer()


def test_special_tokens_at_gemma_ids(tok):
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    sot, eot = tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"])
    assert {sot, eot} <= set(range(len(tok))) and sot != eot and tok.unk_token_id not in (sot, eot)
    # Specials are single tokens even inside text.
    ids = tok("a<end_of_turn>b", add_special_tokens=False).input_ids
    assert eot in ids
    assert 200 <= len(tok) <= 1000
    assert tok.padding_side == "right"


def test_bos_prepended_and_exact_round_trip(tok):
    text = "Reverse: élan 3 2 1\n  trailing spaces  "
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids[1:]) == text
    assert tok(text, add_special_tokens=False).input_ids == ids[1:]


def test_chat_template_gemma2_format(tok):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "again"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n"
        "<start_of_turn>user\nagain<end_of_turn>\n<start_of_turn>model\n"
    )
    assert tok.apply_chat_template(msgs[:2], tokenize=False).endswith("model\nyo<end_of_turn>\n")


def test_chat_template_folds_system_into_first_user_turn(tok):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "model", "content": "yo"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n"
    )
    with pytest.raises(Exception, match="must alternate"):  # a system message anywhere else, as Gemma 3's template
        tok.apply_chat_template(msgs[1:] + msgs[:1], tokenize=False)


def test_tokenizer_trains_on_given_texts():
    a = tiny.build_tiny_tokenizer(["zanzibar zanzibar zanzibar quetzal quetzal"])
    b = tiny.build_tiny_tokenizer()
    word = " zanzibar"
    assert len(a(word, add_special_tokens=False).input_ids) < len(b(word, add_special_tokens=False).input_ids)
    assert tiny.build_tiny_tokenizer().get_vocab() == b.get_vocab()  # deterministic


def test_tiny_model_config_and_forward(tok):
    model = tiny.build_tiny_gemma2(len(tok), seed=1)
    c = model.config
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (64, 128, 2)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (4, 2, 16)
    assert (c.max_position_embeddings, c.sliding_window, c.vocab_size) == (512, 64, len(tok))
    assert c._attn_implementation == "eager" and c.tie_word_embeddings
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    same = tiny.build_tiny_gemma2(len(tok), seed=1)
    other = tiny.build_tiny_gemma2(len(tok), seed=2, num_hidden_layers=1)
    assert other.config.num_hidden_layers == 1
    w = model.model.embed_tokens.weight
    assert torch.equal(w, same.model.embed_tokens.weight) and not torch.equal(w, other.model.embed_tokens.weight)
    ids = torch.tensor([tok("What is the capital of peru?").input_ids])
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(out.loss) and 3.0 < out.loss.item() < 9.0  # about ln(vocab) at random init


def test_save_tiny_model_loads_with_auto_classes(tmp_path, tok):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny.save_tiny_model(tmp_path / "m", texts=["capital of peru"])
    model = AutoModelForCausalLM.from_pretrained(path)
    loaded = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == "Gemma2ForCausalLM"
    assert model.config.vocab_size == len(loaded)
    assert loaded("hi").input_ids[0] == loaded.bos_token_id
    assert loaded.chat_template == tiny.GEMMA2_CHAT_TEMPLATE and loaded.padding_side == "right"
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert loaded.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(msgs, tokenize=False)


@pytest.mark.parametrize("kind,keys", [("messages", {"messages"}), ("prompt-completion", {"prompt", "completion"}),
                                       ("text", {"text"})])
def test_dataset_rows(kind, keys):
    rows = tiny.make_dataset_rows(kind, 40, seed=3)
    assert len(rows) == 40 and all(set(r) == keys for r in rows)
    assert rows == tiny.make_dataset_rows(kind, 40, seed=3)
    assert rows != tiny.make_dataset_rows(kind, 40, seed=4)
    lengths = {len(str(r)) for r in rows}
    assert max(lengths) > 2 * min(lengths)  # varied lengths
    if kind == "messages":
        assert any(r["messages"][0]["role"] == "system" for r in rows)
        assert any(len(r["messages"]) > 3 for r in rows)
        assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    with pytest.raises(ValueError):
        tiny.make_dataset_rows("csv", 1)


def test_dataset_is_a_deterministic_mapping():
    rows = tiny.make_dataset_rows("prompt-completion", 200)
    answers: dict[str, set] = {}
    for r in rows:
        answers.setdefault(r["prompt"], set()).add(r["completion"])
        if r["prompt"].startswith("reverse: "):
            assert r["completion"] == " ".join(reversed(r["prompt"][len("reverse: "):].split()))
    assert all(len(v) == 1 for v in answers.values())

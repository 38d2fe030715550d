"""gemma_trainer.compare: the held-out loss the demo prints, and greedy answers."""

from __future__ import annotations

import pytest
import torch
from gemma_trainer.batches import PadCollator
from gemma_trainer.compare import answer, heldout_loss, load_base, one_line
from gemma_trainer.data import format_and_tokenize
from gemma_trainer.tiny import make_dataset_rows
from transformers import AutoTokenizer


@pytest.mark.parametrize("fmt", ["prompt-completion", "messages"])
def test_heldout_loss_is_the_mean_loss_per_trained_token(tiny_model_dir, fmt):
    """Batched, with logits only where a label is, it equals transformers' own loss over one padded batch."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = load_base(tiny_model_dir)
    rows = make_dataset_rows(fmt, 10, seed=5)
    batch = PadCollator(tok.pad_token_id)(format_and_tokenize(rows, fmt, tok, 128))
    with torch.no_grad():
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss.item()
    assert heldout_loss(model, tok, rows, fmt, 128, batch_size=3) == pytest.approx(reference, rel=1e-5)


def test_answer_stops_at_the_end_of_the_turn(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = answer(load_base(tiny_model_dir), tok, "What is the capital of peru?", max_new_tokens=8)
    assert "<end_of_turn>" not in text and "<start_of_turn>" not in text
    assert one_line("").startswith("(empty") and one_line("a\n b", 10) == "a b"
    assert one_line("x" * 20, 10) == "xxxxxxx..."

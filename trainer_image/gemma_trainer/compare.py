"""Before and after a fine-tune: held-out loss and greedy answers of a base model and of its adapter.

The loss is computed on the trainer's own rendering and masks (``format_and_tokenize``): the mean cross-entropy
over every trained token of the held-out rows, so base and adapter are measured on exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .batches import IGNORE_INDEX, PadCollator
from .data import format_and_tokenize
from .templates import turn_end_marker


def heldout_loss(model, tokenizer, rows: Sequence[dict], fmt: str, max_seq_length: int, batch_size: int = 8) -> float:
    """Mean cross-entropy per trained token of ``rows`` (format ``fmt``) under ``model``."""
    import torch
    import torch.nn.functional as F

    features = format_and_tokenize(list(rows), fmt, tokenizer, max_seq_length)
    collate = PadCollator(tokenizer.pad_token_id)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(features[start:start + batch_size]).items()}
            targets = batch["labels"][:, 1:]  # the token each position predicts
            keep = (targets != IGNORE_INDEX).any(0).nonzero().squeeze(1)  # logits only where some row has a label
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           logits_to_keep=keep).logits.float()
            kept = targets[:, keep]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), kept.reshape(-1),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
            total += float(loss)
            count += int((kept != IGNORE_INDEX).sum())
    return total / max(count, 1)


def answer(model, tokenizer, prompt: str, max_new_tokens: int = 32) -> str:
    """The greedy reply to one user turn, rendered with the tokenizer's chat template, up to the end of its turn."""
    import torch

    inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    stop = [t for t in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(turn_end_marker(tokenizer)))
            if isinstance(t, int) and t != tokenizer.unk_token_id]
    model.eval()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def load_base(model_dir: Path):
    """The base model of a comparison, fp32 on the CPU, eager attention (as the trainer runs it)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                attn_implementation="eager").eval()


def with_adapter(base, adapter_dir: Path):
    """``base`` with the LoRA adapter of ``adapter_dir``; ``disable_adapter()`` gives the base back."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def one_line(text: str, width: int = 72) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join(text.split()) or "(empty: the turn ended at once)"
    return flat if len(flat) <= width else flat[: width - 3] + "..."

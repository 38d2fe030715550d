"""The end of ``gemmaft demo``: what the fine-tune changed, measured on held-out rows the run never trained on.

The base model and the adapter the run wrote are loaded here (the adapter from the bucket, with peft); both are
scored on the same held-out rows with the trainer's own rendering and masks, and answer the same held-out prompts
greedily, one above the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BeforeAfter:
    before: float  # mean loss per answer token of the held-out rows, base model
    after: float  # the same with the adapter
    rows: int
    adapter_weights: int
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (prompt, base answer, tuned answer)

    def loss_line(self) -> str:
        return f"{self.before:.3f} -> {self.after:.3f}"


def measure(adapter_uri: str, base_dir: Path, eval_rows: list[dict], fmt: str, max_seq_length: int,
            workdir: Path, prompts: int = 3) -> BeforeAfter:
    """Download the adapter, then score and ask the base model and the adapter on the held-out rows."""
    from gemma_trainer.compare import answer, heldout_loss, load_base, with_adapter
    from gemma_trainer.storage import open_store
    from transformers import AutoTokenizer

    local = workdir / "adapter-check"
    open_store(adapter_uri).download_dir("", local)
    tokenizer = AutoTokenizer.from_pretrained(str(local))  # the chat template the run trained with
    base = load_base(base_dir)
    asked = [_prompt_of(row) for row in eval_rows[:prompts]]
    before = heldout_loss(base, tokenizer, eval_rows, fmt, max_seq_length)
    base_answers = [answer(base, tokenizer, p) for p in asked]
    tuned = with_adapter(base, local)
    weights = sum(p.numel() for n, p in tuned.named_parameters() if "lora_" in n)
    after = heldout_loss(tuned, tokenizer, eval_rows, fmt, max_seq_length)
    tuned_answers = [answer(tuned, tokenizer, p) for p in asked]
    return BeforeAfter(before, after, len(eval_rows), weights, list(zip(asked, base_answers, tuned_answers)))


def _prompt_of(row: dict) -> str:
    if "prompt" in row:
        return row["prompt"]
    users = [m["content"] for m in row.get("messages") or () if m.get("role") == "user"]
    return users[0] if users else row.get("text", "")


def side_by_side(result: BeforeAfter, width: int = 96) -> str:
    """Each held-out prompt with the base model's answer and the fine-tuned answer under it."""
    from gemma_trainer.compare import one_line

    lines = []
    for prompt, base, tuned in result.answers:
        lines += [f"  prompt        {one_line(prompt, width)}",
                  f"    base        {one_line(base, width)}",
                  f"    fine-tuned  {one_line(tuned, width)}"]
    return "\n".join(lines)

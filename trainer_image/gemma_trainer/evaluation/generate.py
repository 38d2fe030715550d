"""Greedy batched answers and the held-out loss of one model, loaded the trainer's way (the run's precision
policy, its device, its adapter: ``distill.teacher.load_teacher``, which loads any fine-tune's output)."""

from __future__ import annotations

import logging

from gemma_api.distillation import ResolvedTeacher
from gemma_api.methods import METHODS

from ..compare import heldout_loss
from ..distill.teacher import load_teacher
from .prompts import EvalPrompt

log = logging.getLogger("gemma_trainer")


def load_for_evaluation(spec, setup, adapter_uri: str | None):
    """(model, tokenizer) of ``spec.model`` with the adapter at ``adapter_uri`` (None: the base model), in eval
    mode on ``setup``'s device and in its precision policy."""
    quantization = METHODS[spec.method].base_quantization or "none"
    source = ResolvedTeacher(model=spec.model, model_uri=spec.resolved_model_uri, adapter_uri=adapter_uri,
                             quantization=quantization)
    model, tokenizer = load_teacher(source, setup)
    model.config.use_cache = True
    return model, tokenizer


def _stop_tokens(tokenizer) -> list[int]:
    ids = (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>"))
    return [t for t in ids if isinstance(t, int) and t != tokenizer.unk_token_id]


def greedy_answers(model, tokenizer, prompts: list[EvalPrompt], max_new_tokens: int) -> list[str]:
    """The greedy reply to each prompt (one left-padded batch), up to ``<end_of_turn>``, surrounding space cut."""
    import torch

    texts = [tokenizer.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, top_p=None, top_k=None,
                             eos_token_id=_stop_tokens(tokenizer), pad_token_id=tokenizer.pad_token_id)
    start = batch["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True).strip() for row in out]


def eval_loss(model, tokenizer, rows: list[dict], fmt: str, spec) -> float | None:
    """Mean cross-entropy per answer token of the eval rows (the training path's rendering and masks)."""
    if not rows:
        return None
    return heldout_loss(model, tokenizer, rows, fmt, spec.training.max_seq_length,
                        batch_size=spec.evaluation.batch_size)

"""The loss head (gemma_trainer.loss_head) as the trainer uses it: equal to transformers' own loss, the vocabulary
projection only at labelled positions, and never a whole ``[tokens, vocab]`` fp32 tensor alive."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gemma_trainer.batches import PackedCollator, PadCollator
from gemma_trainer.loss_head import (
    IGNORE_INDEX,
    causal_lm_loss,
    iter_vocab_chunks,
    output_softcap,
    token_losses,
)
from gemma_trainer.memprobe import PeakTensorMemory
from gemma_trainer.packed_attention import use_packed_attention
from gemma_trainer.tiny import build_tiny_gemma2
from torch.utils._python_dispatch import TorchDispatchMode


def _rows(n_rows: int, vocab: int, seed: int = 0, prompt: int = 6) -> list[dict]:
    """Rows of different lengths whose first ``prompt`` tokens carry no loss (a prompt)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n_rows):
        length = 20 + 13 * i
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return rows


def _lora_model(vocab: int, **config):
    from peft import LoraConfig, get_peft_model

    model = build_tiny_gemma2(vocab, final_logit_softcapping=30.0, **config).float()
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # non-zero B, so the adapter changes the outputs and gets gradients
            torch.nn.init.normal_(param, std=0.05)
    return model


def _trainer(model, tmp_path):
    from gemma_trainer.train import _make_trainer_class
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=4)
    return _make_trainer_class()(model=model, args=args)


def _grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("softcap", [30.0, None])
def test_token_losses_equal_full_cross_entropy_values_and_gradients(softcap):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=g, dtype=torch.float64).float().requires_grad_()
    weight = (torch.randn(1000, 16, generator=g) * 3).requires_grad_()  # large logits: the soft-cap matters
    targets = torch.randint(0, 1000, (37,), generator=g)
    targets[::5] = IGNORE_INDEX
    ours = token_losses(hidden, weight, targets, softcap, tokens_per_block=8)  # a ragged last block
    ours.sum().backward()
    ours_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    logits = hidden @ weight.t()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    reference = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")
    reference.sum().backward()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_grads[0], hidden.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours_grads[1], weight.grad, rtol=1e-4, atol=1e-6)
    chunks = torch.cat([z for _, z in iter_vocab_chunks(hidden.detach(), weight.detach(), softcap, 300)], dim=1)
    torch.testing.assert_close(chunks, logits.detach())


@pytest.mark.parametrize("packed", [False, True])
def test_trainer_loss_and_gradients_equal_transformers_loss(packed, tmp_path):
    """The trainer's loss (padded or packed batches) against the model's own loss on padded rows."""
    model = _lora_model(500, sliding_window=16, attn_logit_softcapping=50.0)
    rows = _rows(4, 500)
    padded = PadCollator(0)(rows)
    reference = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                      labels=padded["labels"]).loss
    reference.backward()
    expected = _grads(model)
    model.zero_grad()

    trainer = _trainer(model, tmp_path)
    if packed:
        use_packed_attention(model)
    batch = PackedCollator()(rows) if packed else padded
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    got = _grads(model)
    assert got.keys() == expected.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-7, msg=name)


def test_static_shapes_give_the_same_loss():
    """The XLA path keeps every position (static shapes) and weighs the unlabelled ones 0."""
    model = _lora_model(300)
    batch = PadCollator(0, buckets=(64, 128))(_rows(3, 300))
    head, cap = model.get_output_embeddings(), output_softcap(model)
    dynamic, n = causal_lm_loss(model, head, cap, batch)
    static, m = causal_lm_loss(model, head, cap, batch, static=True)
    torch.testing.assert_close(dynamic, static)
    assert int(n) == int(m) == sum(len(r["input_ids"]) - 6 for r in _rows(3, 300))


class _LmHeadRows(TorchDispatchMode):
    """Counts the rows of hidden states multiplied with the LM head weight (its storage), forward only."""

    def __init__(self, weight):
        super().__init__()
        self.ptr = weight.untyped_storage().data_ptr()
        self.rows = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func.__name__.startswith(("mm", "addmm", "bmm", "matmul")) and len(tensors) >= 2:
            shares = [t.untyped_storage().data_ptr() == self.ptr for t in tensors]
            if any(shares):
                other = tensors[shares.index(False)] if False in shares else tensors[0]
                self.rows += other.reshape(-1, other.shape[-1]).shape[0]
        return func(*args, **(kwargs or {}))


def test_the_vocabulary_projection_sees_only_labelled_positions(tmp_path):
    """Prompt positions carry no loss: their hidden states never reach the 256k-wide LM head."""
    model = _lora_model(400)
    rows = _rows(4, 400, prompt=15)
    batch = PadCollator(0)(rows)
    labelled = int((batch["shift_labels"] != IGNORE_INDEX).sum())
    trainer = _trainer(model, tmp_path)
    weight = model.get_output_embeddings().weight
    with torch.no_grad(), _LmHeadRows(weight) as counter:
        trainer.compute_loss(model, batch)
    assert counter.rows == labelled, (counter.rows, labelled, batch["input_ids"].numel())


def test_a_training_step_never_holds_the_full_logits(tmp_path):
    """Loss + backward of a batch whose fp32 logits would be 512 MB: the peak of new tensors stays under half."""
    vocab = 131072
    model = _lora_model(vocab, hidden_size=32, intermediate_size=64, head_dim=8, query_pre_attn_scalar=8)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": (ids := torch.randint(3, vocab, (256,), generator=g).tolist()), "labels": ids}
            for _ in range(4)]
    batch = PadCollator(0)(rows)
    full_logits = batch["input_ids"].numel() * vocab * 4
    trainer = _trainer(model, tmp_path)
    with PeakTensorMemory() as memory:
        trainer.compute_loss(model, batch).backward()
    assert memory.peak < full_logits / 2, \
        f"peak {memory.peak / 2**20:.0f} MiB of new tensors; full logits {full_logits / 2**20:.0f} MiB"

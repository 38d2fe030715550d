"""The loss head: cross-entropy of the LM head's soft-capped logits at the labelled positions only, in chunks.

Gemma's 256k vocabulary makes ``[tokens, vocab]`` logits the largest tensor of a training step (batch 4 x 1024 on
Gemma 2 2B: logits, their fp32 upcast and their gradient are about 9 GB). This module never builds them:

* :func:`shift_labels` / :func:`labelled_positions`: the next-token target of each position, per row (a packed
  batch's rows never predict each other's tokens), and where a target exists;
* :class:`LabelledHiddenStates`: runs the model's own forward with ``logits_to_keep`` set to the labelled
  positions and takes the final hidden states of those positions from the LM head's input (the model's LM head
  then projects nothing), so prompt tokens never reach the vocabulary projection;
* :func:`softcapped_logits` / :func:`iter_vocab_chunks`: fp32 logits of some hidden states against a slice of the
  vocabulary, with Gemma's final-logit soft-cap ``cap * tanh(z / cap)`` (what distillation reuses for the
  teacher's top-k and the student's KL, chunk by chunk);
* :func:`token_losses`: per-token cross-entropy through :class:`ChunkedLinearCrossEntropy`, a custom autograd
  Function that computes ``logsumexp`` over vocabulary chunks (online) for token chunks and RECOMPUTES each chunk in
  backward: at most one ``[token_chunk, vocab_chunk]`` fp32 block (and its few temporaries) is alive, forward or
  backward. On a CUDA GPU of compute capability >= 8.0 with ``liger-kernel`` installed, Liger's fused linear
  cross-entropy (which supports the soft-cap) is used instead; on a T4 (7.5) it is not: Triton 3.3 and later,
  which current torch releases ship, dropped Turing, and Liger guards its fused linear cross-entropy fast path on
  capability 8.0 (Liger-Kernel v0.8.2 release notes, PR 1316). Everywhere else, the pure-PyTorch chunked path runs.
* On XLA every position is kept (``static=True``) and ignored positions only weigh 0, so the chunk shapes are
  the same on every step and the graph compiles once per pad bucket.

The result equals ``transformers``' ``ForCausalLMLoss`` on the full logits to fp32 rounding (tests/trainer/
test_loss_head.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

IGNORE_INDEX = -100
TOKEN_CHUNK = 1024  # tokens per block
VOCAB_CHUNK = 16384  # vocabulary entries per block: a block is at most 64 MB of fp32 logits


def shift_labels(labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``labels`` moved one position left (position t's target is token t+1's label), ``-100`` at the end of each
    row. With ``position_ids`` (a packed batch: several rows in one sequence, positions restarting at 0), the last
    token of each packed row gets ``-100`` too, so no row learns to predict the next row's first token."""
    out = torch.full_like(labels, IGNORE_INDEX)
    out[..., :-1] = labels[..., 1:]
    if position_ids is not None:
        row_starts_next = torch.zeros_like(labels, dtype=torch.bool)
        row_starts_next[..., :-1] = position_ids[..., 1:] == 0
        out = out.masked_fill(row_starts_next, IGNORE_INDEX)
    return out


def labelled_positions(shifted: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the positions whose next-token target carries loss."""
    return shifted != IGNORE_INDEX


def output_softcap(model) -> float | None:
    """Gemma's ``final_logit_softcapping`` (30.0 for Gemma 2; None for Gemma 3) of a (PEFT-wrapped) model."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return getattr(config, "final_logit_softcapping", None)


class LabelledHiddenStates(contextlib.AbstractContextManager):
    """Within the block, a forward of ``model`` run with :meth:`forward_kwargs` leaves the final hidden states
    of the kept positions in ``self.hidden`` (``[kept, hidden]``, graph attached) and the model's LM head projects
    nothing (it returns ``[..., 0]`` logits). Works through PEFT, DDP and FSDP wrappers: it replaces the LM head
    module's ``forward`` for the duration of the block."""

    def __init__(self, lm_head: torch.nn.Module):
        self.lm_head = lm_head
        self.hidden: torch.Tensor | None = None

    @staticmethod
    def forward_kwargs(keep: torch.Tensor | None) -> dict:
        """``logits_to_keep`` for a boolean ``[batch, seq]`` mask (dynamic shapes), or every position (None)."""
        return {"logits_to_keep": keep if keep is not None else 0}

    def _take(self, hidden, *args, **kwargs):
        self.hidden = hidden.reshape(-1, hidden.shape[-1])
        return hidden.new_zeros((*hidden.shape[:-1], 0))

    def __enter__(self):
        self.lm_head.forward = self._take
        return self

    def __exit__(self, *exc):
        del self.lm_head.forward  # back to the class's forward
        return False


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def softcapped_logits(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """fp32 logits ``[tokens, rows of weight]`` of ``hidden`` against ``weight`` (a slice of the LM head), with
    Gemma's final soft-cap. The projection runs in the autocast / weight dtype, like the model's own LM head."""
    dtype = _compute_dtype(hidden, weight)
    z = torch.matmul(hidden.to(dtype), weight.to(dtype).t()).float()
    if softcap:
        z = z.div_(softcap).tanh_().mul_(softcap)  # in place: one block alive, not four
    return z


def iter_vocab_chunks(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None,
                      vocab_chunk: int = VOCAB_CHUNK) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first vocabulary id, fp32 soft-capped logits [tokens, chunk])`` for each vocabulary chunk, in order.
    No graph is kept between chunks by this function; wrap it in ``torch.no_grad()`` for teacher passes."""
    for start in range(0, weight.shape[0], vocab_chunk):
        yield start, softcapped_logits(hidden, weight[start:start + vocab_chunk], softcap)


def chunked_logsumexp(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None,
                      vocab_chunk: int = VOCAB_CHUNK) -> torch.Tensor:
    """``logsumexp`` over the whole vocabulary of each token's soft-capped logits (fp32 ``[tokens]``), computed
    online over vocabulary chunks."""
    running_max = running_sum = None
    for _, z in iter_vocab_chunks(hidden, weight, softcap, vocab_chunk):
        chunk_max = z.amax(dim=1)
        new_max = chunk_max if running_max is None else torch.maximum(running_max, chunk_max)
        chunk_sum = z.sub_(new_max[:, None]).exp_().sum(dim=1)
        running_sum = chunk_sum if running_sum is None else running_sum * torch.exp(running_max - new_max) + chunk_sum
        running_max = new_max
    return running_max + torch.log(running_sum)


def _target_logits(hidden, weight, targets, softcap):
    """Soft-capped logit of each token's target (fp32) and the soft-cap's derivative there."""
    dtype = _compute_dtype(hidden, weight)
    raw = (hidden.to(dtype) * weight[targets].to(dtype)).sum(dim=-1).float()
    if not softcap:
        return raw, torch.ones_like(raw)
    t = torch.tanh(raw / softcap)
    return t * softcap, 1.0 - t * t


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Per-token ``logsumexp(softcap(h W^T)) - softcap(h W^T)[target]`` (0 where the target is -100), chunked
    over tokens and vocabulary; backward recomputes each chunk's logits instead of saving them."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, token_chunk, vocab_chunk):
        valid = targets != IGNORE_INDEX
        safe = targets.clamp(min=0)
        lse = torch.cat([chunked_logsumexp(hidden[i:i + token_chunk], weight, softcap, vocab_chunk)
                         for i in range(0, hidden.shape[0], token_chunk)]) if hidden.shape[0] else \
            hidden.new_zeros(0, dtype=torch.float32)
        target_logit, _ = _target_logits(hidden, weight, safe, softcap)
        ctx.save_for_backward(hidden, weight, safe, valid, lse)
        ctx.settings = (softcap, token_chunk, vocab_chunk)
        return torch.where(valid, lse - target_logit, torch.zeros_like(lse))

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, targets, valid, lse = ctx.saved_tensors
        softcap, token_chunk, vocab_chunk = ctx.settings
        g = torch.where(valid, grad.float(), torch.zeros_like(grad, dtype=torch.float32))
        need_w = ctx.needs_input_grad[1]
        dtype = _compute_dtype(hidden, weight)
        d_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        d_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        for i in range(0, hidden.shape[0], token_chunk):
            h, gc, lse_c = hidden[i:i + token_chunk], g[i:i + token_chunk], lse[i:i + token_chunk]
            for v in range(0, weight.shape[0], vocab_chunk):
                w = weight[v:v + vocab_chunk]
                z = torch.matmul(h.to(dtype), w.to(dtype).t()).float()
                # Two blocks alive at most: dz = softmax * g (* the soft-cap's derivative 1 - tanh^2).
                if softcap:
                    z.div_(softcap).tanh_()
                    dz = z.mul(softcap)
                else:
                    dz = z
                dz.sub_(lse_c[:, None]).exp_().mul_(gc[:, None])
                if softcap:
                    dz.mul_(z.mul_(z).neg_().add_(1.0))
                del z
                d_hidden[i:i + token_chunk] += torch.matmul(dz.to(dtype), w.to(dtype)).float()
                if need_w:
                    d_weight[v:v + vocab_chunk] += torch.matmul(dz.t().to(dtype), h.to(dtype)).float()
                del dz
        # The target term: -d softcap(h . w_target).
        _, dcap = _target_logits(hidden, weight, targets, softcap)
        coef = (g * dcap)[:, None]
        d_hidden -= coef * weight[targets].float()
        if need_w:
            d_weight.index_add_(0, targets, -coef * hidden.float())
        return (d_hidden.to(hidden.dtype), d_weight.to(weight.dtype) if need_w else None,
                None, None, None, None)


def _liger_loss(hidden, weight, targets, softcap):
    """Liger's fused linear cross-entropy (sum over tokens), or None where it does not apply."""
    if hidden.device.type != "cuda" or torch.cuda.get_device_capability(hidden.device) < (8, 0):
        return None
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum", softcap=softcap)
    return loss(weight, hidden, targets)


def token_losses(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                 token_chunk: int = TOKEN_CHUNK, vocab_chunk: int = VOCAB_CHUNK) -> torch.Tensor:
    """Per-token cross-entropy (fp32 ``[tokens]``, 0 where ``targets`` is -100) of ``hidden`` ``[tokens, H]``
    through the LM head ``weight`` ``[vocab, H]`` with the soft-cap, never holding full logits."""
    return ChunkedLinearCrossEntropy.apply(hidden, weight, targets, softcap, token_chunk, vocab_chunk)


def summed_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                token_chunk: int = TOKEN_CHUNK, vocab_chunk: int = VOCAB_CHUNK,
                use_liger: bool = True) -> torch.Tensor:
    """The summed cross-entropy over the labelled tokens: Liger's kernel where it applies, else the chunked path."""
    if use_liger:
        fused = _liger_loss(hidden, weight, targets, softcap)
        if fused is not None:
            return fused
    return token_losses(hidden, weight, targets, softcap, token_chunk, vocab_chunk).sum()


def causal_lm_loss(model, lm_head: torch.nn.Module, softcap: float | None, inputs: dict, static: bool = False,
                   num_items_in_batch=None, token_chunk: int = TOKEN_CHUNK,
                   vocab_chunk: int = VOCAB_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, labelled token count)`` of one batch through ``model`` (any wrapper: PEFT, DDP, FSDP), whose LM
    head is ``lm_head`` with final soft-cap ``softcap`` (:func:`output_softcap` of the unwrapped model). ``inputs`` hold ``input_ids``, ``labels`` (unshifted) or
    ``shift_labels`` (already per row), and optionally ``attention_mask`` / ``position_ids``. The loss is the sum
    over labelled tokens divided by ``num_items_in_batch`` (the Trainer's count over the accumulated batch) or, when
    None, by this batch's count: the same reduction as transformers' ``ForCausalLMLoss``."""
    inputs = dict(inputs)
    labels = inputs.pop("labels", None)
    shifted = inputs.pop("shift_labels", None)
    if shifted is None:
        shifted = shift_labels(labels, inputs.get("position_ids") if "attention_mask" not in inputs else None)
    keep = labelled_positions(shifted)
    with LabelledHiddenStates(lm_head) as taken:
        model(**inputs, **LabelledHiddenStates.forward_kwargs(None if static else keep))
    targets = shifted.reshape(-1) if static else shifted[keep]
    total = summed_loss(taken.hidden, lm_head.weight, targets, softcap, token_chunk, vocab_chunk)
    count = keep.sum()
    denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
    if torch.is_tensor(denominator):
        denominator = denominator.to(total.device)
    return total / denominator, count

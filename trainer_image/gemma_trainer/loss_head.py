"""The loss head: cross-entropy of the LM head's soft-capped logits at the labelled positions only, in chunks.

Gemma's 256k vocabulary makes ``[tokens, vocab]`` logits the largest tensor of a training step (batch 4 x 1024 on
Gemma 2 2B: logits, their fp32 upcast and their gradient are about 9 GB). This module never builds them:

* :func:`~gemma_trainer.batches.shift_labels` (the collators add it) / :func:`labelled_positions`: the next-token target of each position, per row (a packed
  batch's rows never predict each other's tokens), and where a target exists;
* :class:`LabelledHiddenStates`: runs the model's own forward with ``logits_to_keep`` set to the labelled
  positions and takes the final hidden states of those positions from the LM head's input (the model's LM head
  then projects nothing), so prompt tokens never reach the vocabulary projection;
* :func:`softcapped_logits` / :func:`iter_vocab_chunks`: fp32 logits of some hidden states against a slice of the
  vocabulary, with Gemma's final-logit soft-cap ``cap * tanh(z / cap)`` (what distillation reuses for the
  teacher's top-k and the student's KL, chunk by chunk);
* :func:`token_losses`: per-token cross-entropy through :class:`ChunkedLinearCrossEntropy`, a custom autograd
  Function that takes the labelled tokens a block at a time (``[block tokens, vocab]`` fp32, at most
  ``LOSS_BLOCK_ELEMENTS`` entries: 64 MB; 256 MB on CUDA and XLA, where fewer, larger matmuls read the LM head
  fewer times and XLA unrolls fewer blocks)
  and computes each block's loss AND its gradient with respect to the hidden states in the forward pass, so the
  block is freed before the next one: two block-sized fp32 buffers alive at most, forward or backward, and two
  matmul passes over the labelled tokens, as many as an unfused head's forward + backward over all tokens. On a
  CUDA GPU of compute capability >= 8.0 with ``liger-kernel`` installed, Liger's fused linear cross-entropy (which
  supports the soft-cap) is used instead; on a T4 (7.5) it is not: Triton 3.3 and later, which current torch
  releases ship, dropped Turing, and Liger guards its fused linear cross-entropy fast path on capability 8.0
  (Liger-Kernel v0.8.2 release notes, PR 1316). Everywhere else, the pure-PyTorch path runs.
* On XLA every position is kept (``static=True``) and ignored positions only weigh 0, so the chunk shapes are
  the same on every step and the graph compiles once per pad bucket.

The result equals ``transformers``' ``ForCausalLMLoss`` on the full logits to fp32 rounding (tests/trainer/
test_loss_head.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from gemma_api.memory import LOSS_BLOCK_ELEMENTS, LOSS_BLOCK_ELEMENTS_ACCELERATOR

from .batches import IGNORE_INDEX, shift_labels

VOCAB_CHUNK = 16384  # vocabulary entries per chunk of iter_vocab_chunks


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
    """The dtype the LM head multiplies in: autocast's, else the head weight's (fp16 on a T4: fp32 accumulation,
    softmax and loss in fp32). An fp16 head on the CPU (the T4 emulation) multiplies the same fp16 values in fp32:
    CPU fp16 matmuls are about 30x slower; the emulation does not round the head's inputs and logits to fp16."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    if weight.dtype == torch.float16 and device == "cpu":
        return torch.float32
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


def block_tokens(vocab: int, device_type: str) -> int:
    """Tokens per block: a ``[tokens, vocab]`` fp32 block of at most the device's block budget."""
    budget = LOSS_BLOCK_ELEMENTS_ACCELERATOR if device_type in ("cuda", "xla") else LOSS_BLOCK_ELEMENTS
    return max(1, budget // vocab)


def _logit_gradients(hidden, weight, targets, valid, softcap):
    """Per-token loss (fp32 ``[tokens]``) and d loss / d raw logits (fp32 ``[tokens, vocab]``) of one block; two
    block-sized buffers alive at most (the tanh, and the logits turned into the softmax in place)."""
    dtype = _compute_dtype(hidden, weight)
    z = torch.matmul(hidden.to(dtype), weight.to(dtype).t()).float()
    if softcap:
        t = z.div_(softcap).tanh_()
        z = t.mul(softcap)
    target_logit = z.gather(1, targets[:, None])[:, 0]
    top = z.amax(dim=1, keepdim=True)
    probs = z.sub_(top).exp_()
    total = probs.sum(dim=1, keepdim=True)
    loss = (top[:, 0] + torch.log(total[:, 0]) - target_logit) * valid
    grads = probs.div_(total)
    grads.scatter_add_(1, targets[:, None], torch.full_like(target_logit[:, None], -1.0))
    if softcap:
        grads.mul_(t.mul_(t).neg_().add_(1.0))  # d softcap(x) / dx = 1 - tanh^2
    grads.mul_(valid[:, None])
    return loss, grads


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Per-token ``logsumexp(softcap(h W^T)) - softcap(h W^T)[target]`` (0 where the target is -100), one block of
    ``tokens`` x the whole vocabulary at a time. The gradient with respect to the hidden states is computed in the
    forward pass, block by block (each token's loss depends on its own hidden state only, so backward just scales
    it by the incoming per-token gradient): two matmul passes, as many as an unfused head's forward and backward.
    A trainable ``weight`` (method full) gets its gradient in backward, recomputing each block."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, tokens_per_block):
        valid = (targets != IGNORE_INDEX).float()
        safe = targets.clamp(min=0)
        dtype = _compute_dtype(hidden, weight)
        w = weight.to(dtype)  # cast once, not twice per block (a no-op when the head is in the compute dtype)
        losses = torch.zeros(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        d_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) \
            if ctx.needs_input_grad[0] else None
        for i in range(0, hidden.shape[0], tokens_per_block):
            rows = slice(i, i + tokens_per_block)
            loss, grads = _logit_gradients(hidden[rows], w, safe[rows], valid[rows], softcap)
            losses[rows] = loss
            if d_hidden is not None:
                d_hidden[rows] = torch.matmul(grads.to(dtype), w).float()
            del grads
        ctx.save_for_backward(d_hidden, hidden, weight, safe, valid)
        ctx.settings = (softcap, tokens_per_block)
        return losses

    @staticmethod
    def backward(ctx, grad):
        d_hidden, hidden, weight, targets, valid = ctx.saved_tensors
        softcap, tokens_per_block = ctx.settings
        g = grad.float()
        d_h = (d_hidden * g[:, None]).to(hidden.dtype) if d_hidden is not None else None
        d_w = None
        if ctx.needs_input_grad[1]:
            dtype = _compute_dtype(hidden, weight)
            w = weight.to(dtype)
            d_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            for i in range(0, hidden.shape[0], tokens_per_block):
                rows = slice(i, i + tokens_per_block)
                _, grads = _logit_gradients(hidden[rows], w, targets[rows], valid[rows], softcap)
                d_w += torch.matmul(grads.mul_(g[rows, None]).t().to(dtype), hidden[rows].to(dtype)).float()
            d_w = d_w.to(weight.dtype)
        return d_h, d_w, None, None, None


@functools.cache
def _liger_loss_class():
    """Liger's ``LigerFusedLinearCrossEntropyLoss``, or None without ``liger-kernel`` (looked up once: a failed
    import is not cached by Python and would search ``sys.path`` again on every step)."""
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    return LigerFusedLinearCrossEntropyLoss


def _liger_loss(hidden, weight, targets, softcap):
    """Liger's fused linear cross-entropy (sum over tokens), or None where it does not apply."""
    if hidden.device.type != "cuda" or torch.cuda.get_device_capability(hidden.device) < (8, 0):
        return None
    loss_class = _liger_loss_class()
    if loss_class is None:
        return None
    loss = loss_class(ignore_index=IGNORE_INDEX, reduction="sum", softcap=softcap)
    return loss(weight, hidden, targets)


def token_losses(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                 tokens_per_block: int | None = None) -> torch.Tensor:
    """Per-token cross-entropy (fp32 ``[tokens]``, 0 where ``targets`` is -100) of ``hidden`` ``[tokens, H]``
    through the LM head ``weight`` ``[vocab, H]`` with the soft-cap, never holding full logits."""
    tokens_per_block = tokens_per_block or block_tokens(weight.shape[0], hidden.device.type)
    return ChunkedLinearCrossEntropy.apply(hidden, weight, targets, softcap, tokens_per_block)


def summed_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                use_liger: bool = True) -> torch.Tensor:
    """The summed cross-entropy over the labelled tokens: Liger's kernel where it applies, else the chunked path."""
    if use_liger:
        fused = _liger_loss(hidden, weight, targets, softcap)
        if fused is not None:
            return fused
    return token_losses(hidden, weight, targets, softcap).sum()


def labelled_hidden_states(model, lm_head: torch.nn.Module, inputs: dict, static: bool = False,
                           **forward_kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(hidden [P, H], targets [P], keep [.., seq])``: the final hidden states of the labelled positions (every
    position when ``static``: XLA's static shapes, unlabelled targets -100), their next-token targets, and the
    labelled-position mask, through the model's own forward (PEFT, DDP and FSDP hooks run; the LM head projects
    nothing). ``inputs``: a padded batch (``labels``, ``attention_mask``) or a packed one (``position_ids``,
    ``shift_labels`` already per row); ``forward_kwargs`` go to the model's forward."""
    inputs = dict(inputs)
    labels = inputs.pop("labels", None)
    shifted = inputs.pop("shift_labels", None)
    if shifted is None:
        shifted = shift_labels(labels, inputs.get("position_ids") if "attention_mask" not in inputs else None)
    keep = labelled_positions(shifted)
    with LabelledHiddenStates(lm_head) as taken:
        model(**inputs, **forward_kwargs, **LabelledHiddenStates.forward_kwargs(None if static else keep))
    return taken.hidden, shifted.reshape(-1) if static else shifted[keep], keep


def causal_lm_loss(model, lm_head: torch.nn.Module, softcap: float | None, inputs: dict, static: bool = False,
                   num_items_in_batch=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, labelled token count)`` of one batch through ``model`` (any wrapper: PEFT, DDP, FSDP), whose LM
    head is ``lm_head`` with final soft-cap ``softcap`` (:func:`output_softcap` of the unwrapped model). ``inputs`` hold ``input_ids``, ``labels`` (unshifted) or
    ``shift_labels`` (already per row), and optionally ``attention_mask`` / ``position_ids``. The loss is the sum
    over labelled tokens divided by ``num_items_in_batch`` (the Trainer's count over the accumulated batch) or, when
    None, by this batch's count: the same reduction as transformers' ``ForCausalLMLoss``."""
    hidden, targets, keep = labelled_hidden_states(model, lm_head, inputs, static)
    total = summed_loss(hidden, lm_head.weight, targets, softcap)
    count = keep.sum()
    denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
    if torch.is_tensor(denominator):
        denominator = denominator.to(total.device)
    return total / denominator, count

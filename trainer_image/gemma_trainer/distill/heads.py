"""LM-head math of distillation, chunked over the vocabulary: the full ``[positions, vocab]`` logits never exist.

Both sides see the same k+1-way distribution per labelled position: the teacher's top-k token ids, each with
its own probability, and one *rest* bucket holding the mass of every other token. The teacher stage stores
``log p_i`` for its top-k ids and ``log p_rest`` (computed exactly: the evicted logits are summed with a running
logsumexp, never as ``1 - sum``). The student's buckets are ``log q_i`` at the same ids and ``log q_rest`` =
logsumexp of its logits over every other id, minus its log-normaliser. With temperature ``T`` both sides use
``softmax(logits / T)``:

    KL = sum_i p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest)
    CE = logsumexp(s) - s[label]            (plain logits, T = 1)

Logits are Gemma's: ``softcap * tanh(h W^T / softcap)`` when the model has a final-logit soft-cap.
"""

from __future__ import annotations

import torch
from gemma_api.distillation import TEACHER_POSITION_CHUNK, TEACHER_VOCAB_CHUNK
from torch.utils.checkpoint import checkpoint

from ..loss_head import iter_vocab_chunks

STUDENT_VOCAB_CHUNK = 8192
NEG_INF = float("-inf")


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """fp32 soft-capped logits of ``hidden`` [P, H] against one block of LM-head rows ``weight`` [C, H], without
    in-place steps so autograd can go through them (``loss_head.iter_vocab_chunks`` serves no-grad passes)."""
    logits = (hidden @ weight.T).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


# ---------------------------------------------------------------- teacher (no gradient)


@torch.no_grad()
def _teacher_block(hidden, weight, softcap, temperature, k, vocab_chunk):
    n = hidden.shape[0]
    top_v = hidden.new_empty((n, 0), dtype=torch.float32)
    top_i = torch.empty((n, 0), dtype=torch.long, device=hidden.device)
    rest = torch.full((n,), NEG_INF, device=hidden.device)
    for start, z in iter_vocab_chunks(hidden, weight, softcap, vocab_chunk):
        z = z.div_(temperature)
        ids = torch.arange(start, start + z.shape[1], device=hidden.device).expand(n, -1)
        cand_v, cand_i = torch.cat([top_v, z], 1), torch.cat([top_i, ids], 1)
        sel_v, sel = cand_v.topk(min(k, cand_v.shape[1]), dim=1)
        evicted = cand_v.scatter(1, sel, NEG_INF)  # everything that left (or never entered) the top-k
        rest = torch.logaddexp(rest, torch.logsumexp(evicted, 1))
        top_v, top_i = sel_v, cand_i.gather(1, sel)
    log_z = torch.logaddexp(torch.logsumexp(top_v, 1), rest)
    return top_i, top_v - log_z[:, None], rest - log_z


def teacher_topk(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None, temperature: float, k: int,
                 vocab_chunk: int = TEACHER_VOCAB_CHUNK, position_chunk: int = TEACHER_POSITION_CHUNK):
    """Per position of ``hidden`` [P, H]: top-k ids [P, k] (int64, highest first), their log-probabilities
    [P, k] and the log of the remaining mass [P], all at ``temperature``; in blocks of position_chunk x
    vocab_chunk logits."""
    if k > weight.shape[0]:
        raise ValueError(f"topK {k} is larger than the vocabulary ({weight.shape[0]})")
    parts = [_teacher_block(hidden[i:i + position_chunk], weight, softcap, temperature, k, vocab_chunk)
             for i in range(0, hidden.shape[0], position_chunk)]
    if not parts:
        empty = hidden.new_empty((0, k), dtype=torch.float32)
        return empty.long(), empty, empty[:, 0]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


# ---------------------------------------------------------------- student (with gradient)


def _student_chunk(hidden, weight, start, softcap, temperature, labels, teacher_ids):
    """Statistics of one vocabulary block: logsumexp at T and at 1, logsumexp at T outside the teacher's ids,
    the logits at the teacher's ids and at the label (0 where they fall outside the block)."""
    s = head_logits(hidden, weight, softcap)
    width = s.shape[1]
    z = s / temperature
    inside = (teacher_ids >= start) & (teacher_ids < start + width)
    local = (teacher_ids - start).clamp(0, width - 1)
    hits = torch.zeros_like(z).scatter_add_(1, local, inside.to(z.dtype))
    rest_t = torch.logsumexp(z.masked_fill(hits > 0, NEG_INF), 1)
    at_ids = torch.where(inside, s.gather(1, local), 0.0)
    label_inside = (labels >= start) & (labels < start + width)
    at_label = torch.where(label_inside, s.gather(1, (labels - start).clamp(0, width - 1)[:, None])[:, 0], 0.0)
    return torch.logsumexp(z, 1), torch.logsumexp(s, 1), rest_t, at_ids, at_label


def student_terms(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None, temperature: float,
                  labels: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
                  teacher_rest: torch.Tensor, vocab_chunk: int = STUDENT_VOCAB_CHUNK):
    """Per position: KL(teacher || student) over the k+1 buckets and the cross-entropy on ``labels``.

    Each vocabulary block runs under activation checkpointing, so the backward pass recomputes one block at a
    time instead of keeping every block's logits."""
    blocks = [
        checkpoint(_student_chunk, hidden, weight[start:start + vocab_chunk], start, softcap, temperature,
                   labels, teacher_ids, use_reentrant=False)
        for start in range(0, weight.shape[0], vocab_chunk)
    ]
    lse_t, lse_1, rest_t, at_ids, at_label = (torch.stack(parts) for parts in zip(*blocks, strict=True))
    lse_t, lse_1, rest_t = (torch.logsumexp(x, 0) for x in (lse_t, lse_1, rest_t))
    log_q = at_ids.sum(0) / temperature - lse_t[:, None]
    log_q_rest = rest_t - lse_t
    p, p_rest = teacher_logprobs.exp(), teacher_rest.exp()
    kl = (p * (teacher_logprobs - log_q)).sum(1)
    kl = kl + p_rest * torch.where(p_rest > 0, teacher_rest - log_q_rest, 0.0)  # an empty rest adds 0, not NaN
    ce = lse_1 - at_label.sum(0)
    return kl, ce

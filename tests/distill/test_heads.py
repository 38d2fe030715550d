"""The chunked KD and CE terms against a direct full-softmax computation (fp32), the top-k tail included."""

from __future__ import annotations

import pytest
import torch
from gemma_trainer.distill.heads import student_terms, teacher_topk
from gemma_trainer.tiny import build_tiny_gemma2


def direct_teacher(logits: torch.Tensor, temperature: float, k: int):
    """Top-k and the rest mass from the full [P, vocab] log-softmax (the oracle)."""
    logp = torch.log_softmax(logits / temperature, -1)
    top_lp, top_ids = logp.topk(k, -1)
    rest = torch.logsumexp(logp.scatter(1, top_ids, float("-inf")), -1)
    return top_ids, top_lp, rest


def direct_terms(student_logits, labels, top_ids, top_lp, rest, temperature):
    """KL over the k+1 buckets and CE, from full softmaxes: the student's rest bucket is 1 - its top-k mass."""
    q = torch.softmax(student_logits.double() / temperature, -1)
    q_top = q.gather(1, top_ids)
    q_rest = 1.0 - q_top.sum(-1)
    p_top, p_rest = top_lp.double().exp(), rest.double().exp()
    kl = (p_top * (p_top.log() - q_top.log())).sum(-1) + p_rest * (p_rest.log() - q_rest.log())
    ce = torch.nn.functional.cross_entropy(student_logits.double(), labels, reduction="none")
    return kl, ce


def _lm_parts(model):
    return model.lm_head.weight, model.config.final_logit_softcapping


@pytest.mark.parametrize("temperature, k", [(1.0, 8), (2.0, 5), (0.5, 40)])
def test_chunked_terms_equal_the_full_softmax_on_a_real_gemma2_head(temperature, k):
    torch.manual_seed(0)
    teacher = build_tiny_gemma2(384, seed=1, final_logit_softcapping=3.0)  # a low cap: tanh matters
    student = build_tiny_gemma2(384, seed=2, final_logit_softcapping=3.0)
    ids = torch.randint(6, 384, (3, 21))
    with torch.no_grad():
        t_out = teacher(ids, output_hidden_states=True)
    s_out = student(ids, output_hidden_states=True)
    # The models' own logits (soft-capped by transformers) are the oracle's input.
    t_logits, s_logits = t_out.logits.reshape(-1, 384), s_out.logits.reshape(-1, 384)
    t_hidden = teacher.model(ids).last_hidden_state.reshape(-1, 64)
    s_hidden = student.model(ids).last_hidden_state.reshape(-1, 64)
    labels = torch.randint(0, 384, (t_logits.shape[0],))

    w, cap = _lm_parts(teacher)
    got_ids, got_lp, got_rest = teacher_topk(t_hidden, w, cap, temperature, k, vocab_chunk=37, position_chunk=16)
    want_ids, want_lp, want_rest = direct_teacher(t_logits, temperature, k)
    assert torch.equal(got_ids, want_ids)
    torch.testing.assert_close(got_lp, want_lp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_rest, want_rest, rtol=1e-5, atol=1e-5)
    assert (want_rest.exp() > 1e-3).all()  # the tail carries real mass here

    w, cap = _lm_parts(student)
    kl, ce = student_terms(s_hidden, w, cap, temperature, labels, got_ids, got_lp, got_rest, vocab_chunk=50)
    want_kl, want_ce = direct_terms(s_logits, labels, want_ids, want_lp, want_rest, temperature)
    torch.testing.assert_close(kl.double(), want_kl, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ce.double(), want_ce, rtol=1e-5, atol=1e-5)

    # Gradients through the chunked, checkpointed blocks equal those of the full computation.
    (kl.mean() + ce.mean()).backward()
    chunked_grad = student.model.embed_tokens.weight.grad.clone()
    student.zero_grad()
    s_logits = student(ids).logits.reshape(-1, 384)
    want_kl, want_ce = direct_terms(s_logits, labels, want_ids, want_lp, want_rest, temperature)
    (want_kl.mean() + want_ce.mean()).float().backward()
    torch.testing.assert_close(chunked_grad, student.model.embed_tokens.weight.grad, rtol=1e-3, atol=1e-6)


def test_an_empty_tail_adds_nothing_and_no_nan():
    torch.manual_seed(0)
    hidden, weight = torch.randn(4, 8), torch.randn(6, 8)
    ids, lp, rest = teacher_topk(hidden, weight, None, 1.0, 6, vocab_chunk=4)
    assert torch.isneginf(rest).all()
    kl, ce = student_terms(hidden, weight.clone().requires_grad_(), None, 1.0, torch.zeros(4, dtype=torch.long),
                           ids, lp, rest, vocab_chunk=4)
    assert torch.allclose(kl, torch.zeros(4), atol=1e-6)  # same logits: KL 0
    assert torch.isfinite(ce).all()

"""``results.json`` from the answers: per-check scores of both models, the held-out losses and the gate (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gemma_api.evaluation import gate
from gemma_api.evaluation_results import CheckScore, EvaluationResults, RowAnswer

from .checks import Passes, row_passes, scores
from .prompts import EvalPrompt


@dataclass(frozen=True)
class ModelAnswers:
    """One model's answers to every eval row and its held-out loss."""

    answers: list[str]
    loss: float | None


def _passes(predicates: Sequence[Passes], prompts: Sequence[EvalPrompt], answers: Sequence[str]) -> list[list[bool]]:
    return [row_passes(predicates, a, p.reference) for p, a in zip(prompts, answers, strict=True)]


def evaluation_results(evaluation, predicates: Sequence[Passes], prompts: Sequence[EvalPrompt], base: ModelAnswers,
                       tuned: ModelAnswers, answers_key: str, adapter_uri: str,
                       report_uri: str | None = None) -> EvaluationResults:
    """The stage's result: both models scored by every check, the gate applied to each."""
    checks = list(evaluation.checks)
    tuned_passes, base_passes = _passes(predicates, prompts, tuned.answers), _passes(predicates, prompts, base.answers)
    tuned_scores, base_scores = scores(tuned_passes, len(checks)), scores(base_passes, len(checks))
    verdict = gate(checks, tuned_scores, base_scores, tuned.loss, base.loss, evaluation.beat_base)
    base_verdict = gate(checks, base_scores, None, base.loss, None, beat_base=False)
    return EvaluationResults(
        answers_key=answers_key, adapter_uri=adapter_uri, rows=len(prompts),
        checks=[CheckScore(type=c.type, min_score=c.min_score, score=s, base_score=b, passed=s >= c.min_score)
                for c, s, b in zip(checks, tuned_scores, base_scores, strict=True)],
        eval_loss=tuned.loss, base_eval_loss=base.loss, passed=verdict.passed, base_passed=base_verdict.passed,
        reason=verdict.reason, message=verdict.message, report_uri=report_uri,
        answers=[RowAnswer(index=i, prompt=p.text, reference=p.reference, tuned=t, base=b, tuned_passes=tp,
                           base_passes=bp)
                 for i, (p, t, b, tp, bp) in enumerate(zip(prompts, tuned.answers, base.answers, tuned_passes,
                                                           base_passes, strict=True))],
    )

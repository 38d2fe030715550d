"""``<run>/evaluation/results.json``: what the evaluation stage found, written by the trainer, read by the operator
into ``status.evaluation`` and the Evaluated condition."""

from __future__ import annotations

from pydantic import Field

from .base import ApiModel
from .evaluation import CheckType


class CheckScore(ApiModel):
    """One check's scores: the fraction of eval rows whose answer passes it."""

    type: CheckType
    min_score: float
    score: float
    """The fine-tuned model's score."""
    base_score: float | None = None
    """The base model's score on the same rows."""
    passed: bool
    """score reached minScore."""


class RowAnswer(ApiModel):
    """One eval row: its prompt, the reference answer, both models' greedy answers and which checks each passed."""

    index: int
    prompt: str
    reference: str
    tuned: str
    base: str
    tuned_passes: list[bool] = Field(default_factory=list)
    base_passes: list[bool] = Field(default_factory=list)


class EvaluationResults(ApiModel):
    """The evaluation stage's committed result (its gate decides the trainer's exit code and the condition)."""

    answers_key: str
    """Content hash of the answers (rows, maxNewTokens): gemma_api.evaluation.answers_key."""
    adapter_uri: str
    rows: int
    checks: list[CheckScore]
    eval_loss: float | None = None
    """Held-out loss of the fine-tuned model (mean cross-entropy per answer token)."""
    base_eval_loss: float | None = None
    passed: bool
    """The gate: every check reached its minScore (and beat the base with beatBase)."""
    base_passed: bool
    """The same gate applied to the base model's scores."""
    reason: str
    message: str
    """The gate's verdict; on failure it names the check, its score and the bound."""
    report_uri: str | None = None
    answers: list[RowAnswer] = Field(default_factory=list)

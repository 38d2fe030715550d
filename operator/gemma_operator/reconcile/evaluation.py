"""The evaluation stage's gate in the status (pure): ``status.evaluation``, the ``Evaluated`` condition and the
Event that says the result.

The trainer runs the stage after training in the same Job and writes the gate into ``progress.json``
(``evaluation``) with ``<run>/evaluation/results.json``; a failed gate ends the Job with exit code 4, which
:func:`attempts.judge` turns into a Failed run with reason BelowThreshold (not Ready: Argo CD shows it Degraded).
``kubectl wait --for=condition=Evaluated`` returns once the adapter passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_operator.api.evaluation import BELOW_THRESHOLD, PASSED
from gemma_operator.api.run import RunProgress
from gemma_operator.api.status import EvaluationStatus

from .conditions import set_condition
from .model import Event

EVALUATED = "Evaluated"
PENDING_REASON = "NotEvaluated"


@dataclass(frozen=True)
class Evaluated:
    """What the gate adds to a status."""

    status: dict[str, Any]
    events: list[Event]


def _gate(status: dict[str, Any], prev: dict[str, Any], progress: RunProgress | None) -> EvaluationStatus | None:
    """The gate from progress.json, else the one the status recorded for the same run (a finished run's progress
    is not read again)."""
    if progress is not None and progress.evaluation is not None:
        return progress.evaluation
    if prev.get("evaluation") and prev.get("runId") == status.get("runId"):
        return EvaluationStatus.model_validate(prev["evaluation"])
    return None


def _condition(gate: EvaluationStatus | None, phase: str | None) -> tuple[str, str, str]:
    if gate is None:
        waits = "the run failed before its evaluation" if phase == "Failed" else "waits for training to finish"
        return "False", PENDING_REASON, waits
    if gate.passed:
        return "True", PASSED, gate.message or "every check passed"
    return "False", BELOW_THRESHOLD, gate.message or "a check fell short of its minScore"


def evaluated(status: dict[str, Any], prev: dict[str, Any], progress: RunProgress | None, now: str,
              generation: int | None) -> Evaluated:
    """``status`` with ``evaluation`` and the Evaluated condition set, and an Event when the result is new."""
    gate = _gate(status, prev, progress)
    state, reason, message = _condition(gate, status.get("phase"))
    new = {**status, "conditions": set_condition(status.get("conditions") or [], EVALUATED, state, reason, message,
                                                 now, generation)}
    if gate is not None:
        new["evaluation"] = gate.to_api()
    before = next((c for c in prev.get("conditions") or [] if c.get("type") == EVALUATED), {})
    events = []
    if reason != PENDING_REASON and (before.get("reason"), before.get("message")) != (reason, message):
        events.append(Event("Normal" if state == "True" else "Warning", reason, f"evaluation: {message}"))
    return Evaluated(new, events)

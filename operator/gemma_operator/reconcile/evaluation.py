"""The evaluation stage of a run (pure): its own Job when only ``spec.evaluation`` changed, and the gate in the
status: ``status.evaluation``, the ``Evaluated`` condition and the Event that says the result.

A new run's Job trains and then evaluates (``gemmaft train`` runs the stages in order). A finished, trained run
whose recorded gate is of another ``spec.evaluation`` (:func:`evaluation_key`; the run id is unchanged) gets an
evaluate-stage Job of its own (:func:`evaluation_leg`): the same adapter, evaluated again.

The trainer runs the stage after training in the same Job and writes the gate into ``progress.json``
(``evaluation``) with ``<run>/evaluation/results.json``; a failed gate ends the Job with exit code 4, which
:func:`attempts.judge` turns into a Failed run with reason BelowThreshold (not Ready: Argo CD shows it Degraded).
``kubectl wait --for=condition=Evaluated`` returns once the adapter passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api.evaluation import BELOW_THRESHOLD, PASSED, evaluation_key
from gemma_api.run import RunProgress
from gemma_api.run_stages import EVALUATE_STAGE
from gemma_api.status import EvaluationStatus

from .conditions import set_condition
from .model import Event
from .staged_run import TERMINAL, CurrentStage, StagedRun

EVALUATED = "Evaluated"
PENDING_REASON = "NotEvaluated"


@dataclass(frozen=True)
class EvaluationLeg:
    """A decision about the run's evaluate stage."""

    stage: CurrentStage
    """The stage and the run config its Job mounts (``stage: evaluate``)."""
    prev: dict[str, Any]
    """The last status as the decision sees it: a fresh leg sets the finished state of the last one aside."""
    fresh: bool


def _trained(prev: dict[str, Any]) -> bool:
    return prev.get("phase") == "Succeeded" or bool(prev.get("evaluation"))


def _stale(prev: dict[str, Any], key: str) -> bool:
    """Whether the recorded gate is not of this ``spec.evaluation`` (key ``key``): none recorded, or one of another
    key. A gate recorded without a key counts as this one's, as :func:`_gate` reads it; both must agree, or the
    gate would be shown and then evaluated again."""
    recorded = prev.get("evaluation")
    return not recorded or recorded.get("evaluationKey") not in (None, key)


def _set_aside(prev: dict[str, Any]) -> dict[str, Any]:
    """``prev`` without the finished leg: no completion, no Job record, the next attempt number."""
    again = ((prev.get("job") or {}).get("stage")) == EVALUATE_STAGE
    kept = {k: v for k, v in prev.items() if k not in ("completionTime", "job", "jobName", "evaluation")}
    return {**kept, "attempt": int(prev.get("attempt") or 0) + 1 if again else 0}


def evaluation_leg(run: StagedRun, prev: dict[str, Any]) -> EvaluationLeg | None:
    """The evaluate stage when this decision is about it: a finished, trained run whose gate is stale (a fresh
    leg), or a run whose recorded Job is its evaluate Job; None otherwise."""
    rid = run.run_id
    if not run.evaluates or rid is None or prev.get("runId") != rid:
        return None
    key = evaluation_key(run.ft.spec)
    fresh = prev.get("phase") in TERMINAL and _trained(prev) and _stale(prev, key)
    if not fresh and (prev.get("job") or {}).get("stage") != EVALUATE_STAGE:
        return None
    stage = CurrentStage("Evaluate", "Reevaluating", f"spec.evaluation changed ({key}): the adapter of run {rid} "
                         "is evaluated again", run.evaluate_config())
    return EvaluationLeg(stage, _set_aside(prev) if fresh else prev, fresh)


def leg_events(leg: EvaluationLeg | None) -> list[Event]:
    return [Event("Normal", leg.stage.reason, leg.stage.message)] if leg is not None and leg.fresh else []


@dataclass(frozen=True)
class Evaluated:
    """What the gate adds to a status."""

    status: dict[str, Any]
    events: list[Event]


def _gate(spec, status: dict[str, Any], prev: dict[str, Any], progress: RunProgress | None) -> EvaluationStatus | None:
    """The gate of this ``spec.evaluation``: from progress.json, else as the status recorded it for the same run
    (a finished run's progress is not read again)."""
    gate = progress.evaluation if progress is not None else None
    if gate is None and prev.get("evaluation") and prev.get("runId") == status.get("runId"):
        gate = EvaluationStatus.model_validate(prev["evaluation"])
    return gate if gate is not None and gate.evaluation_key in (None, evaluation_key(spec)) else None


def _condition(gate: EvaluationStatus | None, phase: str | None) -> tuple[str, str, str]:
    if gate is None:
        waits = "the run failed before its evaluation" if phase == "Failed" else "waits for training to finish"
        return "False", PENDING_REASON, waits
    if gate.passed:
        return "True", PASSED, gate.message or "every check passed"
    return "False", BELOW_THRESHOLD, gate.message or "a check fell short of its minScore"


def evaluated(spec, status: dict[str, Any], prev: dict[str, Any], progress: RunProgress | None, now: str,
              generation: int | None) -> Evaluated:
    """``status`` with ``evaluation`` and the Evaluated condition set, and an Event when the result is new."""
    gate = _gate(spec, status, prev, progress)
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

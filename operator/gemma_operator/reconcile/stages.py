"""A distillation's stages in the status, as pure decisions: what ``status.stage``, ``status.stages``, the
TeacherReady condition and the Events say about each stage (which stage runs now is the staged run's:
``reconcile/staged_run.py``). Each stage's Job mounts its own run config (``stage`` set) and runs on its own
accelerator.
"""

from __future__ import annotations

from typing import Any

from gemma_api.run import RunProgress

from .attempts import Verdict
from .conditions import phase_status, set_condition
from .model import Actions, Decision, Event, Observed
from .runs import percent_done
from .staged_run import STUDENT, TEACHER, WAITING, CurrentStage


def _stage_entry(name: str, phase: str, progress: RunProgress | None, uri: str | None, job: str | None,
                 message: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "phase": phase, "step": progress.step if progress else 0}
    if progress is not None and progress.total_steps:
        entry.update(totalSteps=progress.total_steps, percent=percent_done(progress))
    entry.update({k: v for k, v in (("outputUri", uri), ("jobName", job), ("message", message)) if v})
    return entry


def _committed_teacher_counts(prev: dict[str, Any] | None) -> dict[str, Any]:
    """The teacher's step / totalSteps / percent as the last status recorded them (its progress is not read again
    once the student stage runs: :meth:`StagedRun.progress_folders`)."""
    entries = (prev or {}).get("stages") or []
    teacher = next((e for e in entries if isinstance(e, dict) and e.get("name") == "teacher"), {})
    return {k: teacher[k] for k in ("step", "totalSteps", "percent") if k in teacher}


def stage_status(current: CurrentStage, teacher_progress: RunProgress | None, student_progress: RunProgress | None,
                 job_names: dict[str, str] | None = None, student_phase: str | None = None,
                 prev: dict[str, Any] | None = None) -> dict[str, Any]:
    """``status.stage`` and ``status.stages`` (camelCase) for the current stage; ``student_phase`` is the run's phase
    once the student stage runs (Running, Succeeded, Failed); ``prev``: the last status, whose teacher counts stand
    in the student stage when the teacher's progress was not read."""
    jobs = job_names or {}
    cfg = current.config
    if current.stage == WAITING:
        stages = [_stage_entry("teacher", "Waiting", None, None, None, current.message),
                  _stage_entry("student", "Waiting", None, None, None)]
    else:
        teacher_phase = "Succeeded" if current.stage == STUDENT else "Running"
        student = student_phase if current.stage == STUDENT else "Waiting"
        teacher = _stage_entry("teacher", teacher_phase, teacher_progress, cfg.teacher_uri, jobs.get("teacher"))
        if teacher_progress is None and current.stage == STUDENT:
            teacher.update(_committed_teacher_counts(prev))
        stages = [teacher,
                  _stage_entry("student", student or "Running",
                               student_progress if current.stage == STUDENT else None, cfg.run_uri,
                               jobs.get("student"))]
    return {"stage": current.stage, "stages": stages}


def stage_events(previous_stage: str | None, current: CurrentStage) -> list[tuple[str, str, str]]:
    """(type, reason, message) Events for a change of stage; none while the stage stays the same."""
    if previous_stage == current.stage:
        return []
    if current.stage == WAITING:
        return [("Warning" if current.stalled else "Normal", current.reason, current.message)]
    if current.stage == TEACHER:
        return [("Normal", "TeacherStarted", current.message)]
    events = [("Normal", "TeacherCommitted", current.message)] if previous_stage is not None else []
    spec = current.config.spec
    started = f"student {spec.model} trains against the teacher's top-{spec.distillation.top_k} outputs"
    return [*events, ("Normal", "StudentStarted", started)]


def source_name(body: dict[str, Any]) -> str | None:
    """The fine-tune a body's teacher comes from (``fromFineTune``), if any."""
    teacher = ((body.get("spec") or {}).get("distillation") or {}).get("teacher") or {}
    name = teacher.get("fromFineTune")
    return name if isinstance(name, str) else None


# A teacher Job that ended before its outputs show as committed: the commit lives in storage, which no watch sees,
# so the run stays polled until it shows (or the user acts on the message).
AWAITING_TEACHER_COMMIT = "TeacherJobDone"


def stage_verdict(current: CurrentStage, verdict: Verdict) -> Verdict:
    """The run's verdict in the ``current`` stage: a teacher Job that completed does not end the run (the student
    stage starts once the teacher's outputs are committed)."""
    if current.stage == TEACHER and verdict.phase == "Succeeded":
        return Verdict("Pending", AWAITING_TEACHER_COMMIT, f"teacher Job done ({verdict.message}); the student stage "
                                                      "starts once its outputs are committed")
    if current.stage == TEACHER:
        return Verdict(verdict.phase, verdict.reason, f"teacher stage: {verdict.message}", verdict.stalled,
                       verdict.restart)
    return verdict


def finish_stage(current: CurrentStage, prev: dict[str, Any], status: dict[str, Any],
                 teacher_progress: RunProgress | None, student_progress: RunProgress | None, now: str,
                 generation: int | None) -> tuple[dict[str, Any], list[Event]]:
    """``status`` with ``stage``, ``stages``, the TeacherReady condition (and the teacher) added, and the stage's
    Events."""
    job = (status.get("job") or {}).get("name")
    jobs = {current.config.stage: job} if current.config is not None and job else {}
    status = {**status, **stage_status(current, teacher_progress, student_progress, jobs, status.get("phase"), prev)}
    if current.config is not None:  # the teacher of this run, kept while its fromFineTune source is retrained
        from_fine_tune = current.config.spec.distillation.teacher.from_fine_tune
        status["teacher"] = {**current.config.teacher.to_api(), **({"fromFineTune": from_fine_tune}
                                                                 if from_fine_tune else {})}
    status["conditions"] = set_condition(status.get("conditions") or [], *current.condition, now, generation)
    return status, [Event(*e) for e in stage_events(prev.get("stage"), current)]


def waiting(obs: Observed, prev: dict[str, Any], current: CurrentStage) -> Decision:
    """The decision while the teacher is not resolved: no run yet, no Job, nothing to poll (a change of the
    referenced fine-tune triggers this one)."""
    generation = (obs.body.get("metadata") or {}).get("generation")
    status = phase_status(prev, "Pending", current.reason, current.message, current.stalled, obs.now, generation)
    status, events = finish_stage(current, prev, status, None, None, obs.now, generation)
    return Actions(events=tuple(events)).decision(status)

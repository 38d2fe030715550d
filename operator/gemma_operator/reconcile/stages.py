"""A distillation run's stages as pure decisions: which stage runs now, with which run config, and what status,
conditions and Events say about each stage.

Inputs are what the operator already holds: the fine-tune, the fine-tune named by ``fromFineTune`` as the
watch-fed cache has it (never a LIST), and the teacher folder's ``progress.json``. The teacher stage is done when
its progress says ``completed`` (written only after ``<teacher>/COMMITTED``); only then does the student
stage's Job start. Each stage's Job mounts its own run config (``stage`` set) and runs on its own accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api import GemmaFineTune, RunConfig, SpecError, parse_finetune
from gemma_api.distillation import ResolvedTeacher, resolve_teacher
from gemma_api.run import RunProgress

from .attempts import Verdict
from .conditions import phase_status, set_condition
from .model import Decision, Event, Observed, typed_status
from .runs import percent_done

TEACHER_CONDITION = "TeacherReady"
WAITING, TEACHER, STUDENT = "WaitingForTeacher", "Teacher", "Student"


@dataclass(frozen=True)
class StagePlan:
    stage: str
    """WaitingForTeacher, Teacher or Student."""
    reason: str
    message: str
    config: RunConfig | None = None
    """The run config the stage's Job mounts; None while waiting."""
    stalled: bool = False
    """The spec cannot go on as written (e.g. the referenced fine-tune trained another model)."""

    @property
    def condition(self) -> tuple[str, str, str, str]:
        """(type, status, reason, message) of the TeacherReady condition."""
        return TEACHER_CONDITION, "True" if self.stage == STUDENT else "False", self.reason, self.message


def _recorded_teacher(ft: GemmaFineTune, prev: dict[str, Any] | None) -> ResolvedTeacher | None:
    """The teacher the last run resolved from the same ``fromFineTune`` (``status.teacher``), if any."""
    record = (prev or {}).get("teacher") or {}
    if not record or record.get("fromFineTune") != ft.spec.distillation.teacher.from_fine_tune:
        return None
    fields = {k: v for k, v in record.items() if k != "fromFineTune"}
    teacher = ResolvedTeacher.model_validate(fields)
    return teacher if teacher.model == ft.spec.distillation.teacher.model else None


def teacher_source(ft: GemmaFineTune, source: dict[str, Any] | None,
                   prev: dict[str, Any] | None = None) -> tuple[ResolvedTeacher | None, str, str]:
    """The resolved teacher, or None with the reason and message of the wait (or of the mismatch). While the
    referenced fine-tune is not Succeeded (retrained, deleted), a run that already resolved it keeps the teacher
    it recorded in ``status.teacher``: the next success of that fine-tune (a new adapter) starts a new run."""
    spec = ft.spec
    name = spec.distillation.teacher.from_fine_tune
    if name is None:
        return resolve_teacher(spec), "TeacherConfigured", "teacher given in spec.distillation.teacher"
    namespace = ft.metadata.namespace or "default"
    recorded = _recorded_teacher(ft, prev)
    kept = None
    if recorded:
        kept = recorded, "TeacherConfigured", f"teacher: adapter {recorded.adapter_uri} of {name} (status.teacher)"
    if source is None:
        if kept:
            return kept
        return None, "WaitingForFineTune", f"waits for GemmaFineTune {namespace}/{name}: it does not exist yet"
    try:
        source_ft = parse_finetune(source)
    except SpecError as err:
        return None, "WaitingForFineTune", f"waits for GemmaFineTune {namespace}/{name}: it is not valid ({err})"
    status = source.get("status") or {}
    phase = status.get("phase") or "Pending"
    adapter = (status.get("outputs") or {}).get("adapterUri")
    if phase != "Succeeded" or not adapter:
        if kept:
            return kept
        return None, "WaitingForFineTune", (f"waits for GemmaFineTune {namespace}/{name} to succeed (it is "
                                            f"{phase}); its adapter is the teacher's")
    if source_ft.spec.model != spec.distillation.teacher.model:
        return None, "TeacherMismatch", (f"spec.distillation.teacher.model is {spec.distillation.teacher.model} "
                                         f"but GemmaFineTune {name} trained {source_ft.spec.model}: set "
                                         f"teacher.model: {source_ft.spec.model}")
    return resolve_teacher(spec, source_ft.spec, adapter), "TeacherConfigured", f"teacher: adapter of {name}"


def reached_student(status: dict[str, Any], run: str) -> bool:
    """Whether ``status`` records run ``run`` in its student stage (it stays there: committed teacher outputs
    never change)."""
    return status.get("stage") == STUDENT and status.get("runId") == run


def plan_stage(ft: GemmaFineTune, namespace: str, source: dict[str, Any] | None,
               teacher_progress: RunProgress | None, prev: dict[str, Any] | None = None) -> StagePlan:
    """The stage the fine-tune's current run is in, and the run config of that stage's Job. ``prev``: the last
    status; a run that reached its student stage stays there (committed teacher outputs never change, and a
    finished run's teacher folder is not read again)."""
    teacher, reason, message = teacher_source(ft, source, prev)
    if teacher is None:
        return StagePlan(WAITING, reason, message, stalled=reason == "TeacherMismatch")
    base = RunConfig.for_finetune(ft, teacher=teacher, namespace=namespace)
    committed = teacher_progress is not None and teacher_progress.state == "completed"
    if committed or reached_student(prev or {}, base.run_id):
        return StagePlan(STUDENT, "TeacherCommitted", f"teacher outputs committed at {base.teacher_uri}",
                         base.model_copy(update={"stage": "student"}))
    done = f"{teacher_progress.step} of {teacher_progress.total_steps} shards committed" \
        if teacher_progress is not None and teacher_progress.total_steps else "starting"
    return StagePlan(TEACHER, "TeacherRunning", f"teacher pass of {teacher.model}: {done}",
                     base.model_copy(update={"stage": "teacher"}))


def _stage_entry(name: str, phase: str, progress: RunProgress | None, uri: str | None, job: str | None,
                 message: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "phase": phase, "step": progress.step if progress else 0}
    if progress is not None and progress.total_steps:
        entry.update(totalSteps=progress.total_steps, percent=percent_done(progress))
    entry.update({k: v for k, v in (("outputUri", uri), ("jobName", job), ("message", message)) if v})
    return entry


def _committed_teacher_counts(prev: dict[str, Any] | None) -> dict[str, Any]:
    """The teacher's step / totalSteps / percent as the last status recorded them (its progress is not read again
    once the student stage runs: :func:`teacher_progress_matters`)."""
    entries = (prev or {}).get("stages") or []
    teacher = next((e for e in entries if isinstance(e, dict) and e.get("name") == "teacher"), {})
    return {k: teacher[k] for k in ("step", "totalSteps", "percent") if k in teacher}


def stage_status(plan: StagePlan, teacher_progress: RunProgress | None, student_progress: RunProgress | None,
                 job_names: dict[str, str] | None = None, student_phase: str | None = None,
                 prev: dict[str, Any] | None = None) -> dict[str, Any]:
    """``status.stage`` and ``status.stages`` (camelCase) for the plan; ``student_phase`` is the run's phase
    once the student stage runs (Running, Succeeded, Failed); ``prev``: the last status, whose teacher counts stand
    in the student stage when the teacher's progress was not read."""
    jobs = job_names or {}
    cfg = plan.config
    if plan.stage == WAITING:
        stages = [_stage_entry("teacher", "Waiting", None, None, None, plan.message),
                  _stage_entry("student", "Waiting", None, None, None)]
    else:
        teacher_phase = "Succeeded" if plan.stage == STUDENT else "Running"
        student = student_phase if plan.stage == STUDENT else "Waiting"
        teacher = _stage_entry("teacher", teacher_phase, teacher_progress, cfg.teacher_uri, jobs.get("teacher"))
        if teacher_progress is None and plan.stage == STUDENT:
            teacher.update(_committed_teacher_counts(prev))
        stages = [teacher,
                  _stage_entry("student", student or "Running",
                               student_progress if plan.stage == STUDENT else None, cfg.run_uri,
                               jobs.get("student"))]
    return {"stage": plan.stage, "stages": stages}


def stage_events(previous_stage: str | None, plan: StagePlan) -> list[tuple[str, str, str]]:
    """(type, reason, message) Events for a change of stage; none while the stage stays the same."""
    if previous_stage == plan.stage:
        return []
    if plan.stage == WAITING:
        return [("Warning" if plan.stalled else "Normal", plan.reason, plan.message)]
    if plan.stage == TEACHER:
        return [("Normal", "TeacherStarted", plan.message)]
    events = [("Normal", "TeacherCommitted", plan.message)] if previous_stage is not None else []
    spec = plan.config.spec
    started = f"student {spec.model} trains against the teacher's top-{spec.distillation.top_k} outputs"
    return [*events, ("Normal", "StudentStarted", started)]


def source_name(body: dict[str, Any]) -> str | None:
    """The fine-tune a body's teacher comes from (``fromFineTune``), if any."""
    teacher = ((body.get("spec") or {}).get("distillation") or {}).get("teacher") or {}
    name = teacher.get("fromFineTune")
    return name if isinstance(name, str) else None


def teacher_progress_matters(status: dict[str, Any], run: str) -> bool:
    """Whether the teacher's progress.json can change the decision: not once this run reached its student stage
    (committed teacher outputs never change; status keeps the teacher's counts)."""
    return not reached_student(status, run)


# A teacher Job that ended before its outputs show as committed: the commit lives in storage, which no watch sees,
# so the run stays polled until it shows (or the user acts on the message).
AWAITING_TEACHER_COMMIT = "TeacherJobDone"


def stage_verdict(plan: StagePlan, verdict: Verdict) -> Verdict:
    """The run's verdict in ``plan``'s stage: a teacher Job that completed does not end the run (the student
    stage starts once the teacher's outputs are committed)."""
    if plan.stage == TEACHER and verdict.phase == "Succeeded":
        return Verdict("Pending", AWAITING_TEACHER_COMMIT, f"teacher Job done ({verdict.message}); the student stage "
                                                      "starts once its outputs are committed")
    if plan.stage == TEACHER:
        return Verdict(verdict.phase, verdict.reason, f"teacher stage: {verdict.message}", verdict.stalled,
                       verdict.restart)
    return verdict


def finish_stage(plan: StagePlan, prev: dict[str, Any], status: dict[str, Any],
                 teacher_progress: RunProgress | None, student_progress: RunProgress | None, now: str,
                 generation: int | None) -> tuple[dict[str, Any], list[Event]]:
    """``status`` with ``stage``, ``stages``, the TeacherReady condition (and the teacher) added, and the stage's
    Events."""
    job = (status.get("job") or {}).get("name")
    jobs = {plan.config.stage: job} if plan.config is not None and job else {}
    status = {**status, **stage_status(plan, teacher_progress, student_progress, jobs, status.get("phase"), prev)}
    if plan.config is not None:  # the teacher of this run, kept while its fromFineTune source is retrained
        from_fine_tune = plan.config.spec.distillation.teacher.from_fine_tune
        status["teacher"] = {**plan.config.teacher.to_api(), **({"fromFineTune": from_fine_tune}
                                                                 if from_fine_tune else {})}
    status["conditions"] = set_condition(status.get("conditions") or [], *plan.condition, now, generation)
    return status, [Event(*e) for e in stage_events(prev.get("stage"), plan)]


def waiting(obs: Observed, prev: dict[str, Any], plan: StagePlan) -> Decision:
    """The decision while the teacher is not resolved: no run yet, no Job, nothing to poll (a change of the
    referenced fine-tune triggers this one)."""
    generation = (obs.body.get("metadata") or {}).get("generation")
    status = phase_status(prev, "Pending", plan.reason, plan.message, plan.stalled, obs.now, generation)
    status, events = finish_stage(plan, prev, status, None, None, obs.now, generation)
    return Decision(status=typed_status(status), events=events)

"""The staged run: what one GemmaFineTune asks to run, computed once per reconcile (pure).

A plain fine-tune is one stage (``train``, which ends with its evaluation when ``spec.evaluation`` is set); a
distillation two (``teacher``, then ``student``). A finished run whose ``spec.evaluation`` alone changed gets one
more Job of stage ``evaluate`` (``reconcile/evaluation.py``). The runtime builds the staged run from the body and
the watch-fed cache, asks it which progress files to read (:meth:`StagedRun.progress_folders`), and passes it to
``decide`` in :class:`~.model.Observed`: the decision follows it and never plans the run again.

Inputs are what the operator already holds: the fine-tune, the fine-tune named by ``fromFineTune`` as the
watch-fed cache has it (never a LIST), and the status the run recorded. The teacher stage is done when its
progress says ``completed`` (written only after ``<teacher>/COMMITTED``); only then does the student stage's Job
start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api import GemmaFineTune, RunConfig, SpecError, parse_finetune, run_id, run_uri
from gemma_api.distillation import ResolvedTeacher, resolve_teacher
from gemma_api.run import RunProgress
from gemma_api.run_stages import (
    DISTILLATION_STAGES,
    EVALUATE_STAGE,
    STUDENT_STAGE,
    TEACHER_STAGE,
    TRAIN_STAGE,
)

from .pods import job_view, pod_view

TERMINAL = ("Succeeded", "Failed")
"""The phases a run ends in."""


TEACHER_CONDITION = "TeacherReady"
WAITING, TEACHER, STUDENT = "WaitingForTeacher", "Teacher", "Student"
"""A distillation's ``status.stage``."""


@dataclass(frozen=True)
class CurrentStage:
    """The stage a decision is about, and the run config its Job mounts."""

    stage: str
    """WaitingForTeacher, Teacher or Student (a distillation); Evaluate (the evaluate Job of a trained run)."""
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


@dataclass(frozen=True)
class InvalidSpec:
    """A body that is not a valid GemmaFineTune: nothing to run."""

    problems: tuple[str, ...]


@dataclass(frozen=True)
class StagedRun:
    """The run a valid GemmaFineTune asks for."""

    ft: GemmaFineTune
    stages: tuple[str, ...]
    """Its Jobs' stages in order: (train,) or (teacher, student)."""
    run_id: str | None = None
    """None while a distillation waits for its teacher (the run id depends on the teacher)."""
    run_uri: str | None = None
    config: RunConfig | None = None
    """A distillation's run config (stage unset) once its teacher is resolved."""
    waiting: CurrentStage | None = None
    """Why a distillation cannot start yet (its teacher is not resolved)."""

    @classmethod
    def of(cls, ft: GemmaFineTune, source: dict[str, Any] | None, status: dict[str, Any]) -> StagedRun:
        """The run of a parsed fine-tune; ``status``: its last status (the teacher it recorded)."""
        if ft.spec.distillation is None:
            rid = run_id(ft.spec)
            return cls(ft, (TRAIN_STAGE,), rid, run_uri(ft.spec, rid))
        teacher, reason, message = teacher_source(ft, source, status)
        if teacher is None:
            return cls(ft, DISTILLATION_STAGES,
                       waiting=CurrentStage(WAITING, reason, message, stalled=reason == "TeacherMismatch"))
        config = RunConfig.for_finetune(ft, teacher=teacher, namespace=ft.metadata.namespace or "default")
        return cls(ft, DISTILLATION_STAGES, config.run_id, config.run_uri, config)

    @property
    def namespace(self) -> str:
        return self.ft.metadata.namespace or "default"

    @property
    def teacher_uri(self) -> str | None:
        """A distillation's teacher folder (``<output.uri>/teacher-<key>``)."""
        return self.config.teacher_uri if self.config is not None else None

    @property
    def evaluates(self) -> bool:
        return self.ft.spec.evaluation is not None

    def current(self, teacher_progress: RunProgress | None, prev: dict[str, Any]) -> CurrentStage | None:
        """The distillation stage this reconcile is about (None for a plain run). ``prev``: the last status; a run
        that reached its student stage stays there (committed teacher outputs never change, and a finished run's
        teacher folder is not read again)."""
        if TEACHER_STAGE not in self.stages:  # a plain run: one stage, no distillation stage to pick
            return None
        if self.waiting is not None or self.config is None:
            return self.waiting
        committed = teacher_progress is not None and teacher_progress.state == "completed"
        if committed or reached_student(prev, self.run_id):
            return CurrentStage(STUDENT, "TeacherCommitted", f"teacher outputs committed at {self.teacher_uri}",
                                self.config.model_copy(update={"stage": STUDENT_STAGE}))
        done = f"{teacher_progress.step} of {teacher_progress.total_steps} shards committed" \
            if teacher_progress is not None and teacher_progress.total_steps else "starting"
        return CurrentStage(TEACHER, "TeacherRunning", f"teacher pass of {self.config.teacher.model}: {done}",
                            self.config.model_copy(update={"stage": TEACHER_STAGE}))

    def evaluate_config(self) -> RunConfig:
        """The run config of an evaluate Job: the trained adapter of this run (a distillation's student), evaluated
        again on the accelerator that trained it."""
        config = self.config or RunConfig.for_finetune(self.ft, namespace=self.namespace)
        return config.model_copy(update={"stage": EVALUATE_STAGE})

    def progress_folders(self, status: dict[str, Any], jobs: list[dict[str, Any]], pods: list[dict[str, Any]],
                         awaited: frozenset[str]) -> tuple[str | None, str | None]:
        """(run folder, teacher folder) whose ``progress.json`` can change the decision on ``status``, given the
        fine-tune's Jobs and pods (live and gone) and the Jobs created but not seen yet: none for a finished run;
        the run's when :func:`progress_matters`; the teacher's until the run reached its student stage."""
        if self.run_id is None or (status.get("runId") == self.run_id and status.get("phase") in TERMINAL):
            return None, None
        run = self.run_uri if progress_matters(status, self.run_id, jobs, awaited, pods) else None
        return run, self.teacher_uri if not reached_student(status, self.run_id) else None


def staged_run(body: dict[str, Any], source: dict[str, Any] | None) -> StagedRun | InvalidSpec:
    """The run ``body`` asks for; ``source``: the fine-tune its ``fromFineTune`` names, from the cache."""
    try:
        ft = parse_finetune(body)
    except SpecError as err:
        return InvalidSpec(tuple(str(p) for p in err.problems))
    return StagedRun.of(ft, source, body.get("status") or {})


def progress_matters(status: dict[str, Any], run: str, jobs: list[dict[str, Any]], awaited: frozenset[str],
                     pods: list[dict[str, Any]]) -> bool:
    """Whether the run's progress.json can change the decision: a run seen for the first time (it may have
    completed before), a running trainer, a recorded Job that is gone unseen (judged from progress.json), or an
    attempt that ended before any reconcile saw it running (its Job finished, or one of its pods): progress.json
    holds how it ended (the evaluation gate, the outputs), and the decision ending the run must read it."""
    if status.get("runId") != run or status.get("phase") in (None, "Running"):
        return True
    record = status.get("job") or {}
    if not record:
        return False
    mine = [j for j in jobs if (j.get("metadata") or {}).get("uid") == record.get("uid")]
    if not mine:
        return record.get("name") not in awaited
    ended = (view for view in map(pod_view, pods) if view.job == record.get("name"))
    return job_view(mine[0]).finished or any(view.phase in ("Succeeded", "Failed") for view in ended)


def reached_student(status: dict[str, Any], run: str | None) -> bool:
    """Whether ``status`` records run ``run`` in its student stage (it stays there: committed teacher outputs
    never change)."""
    return status.get("stage") == STUDENT and status.get("runId") == run


def _recorded_teacher(ft: GemmaFineTune, prev: dict[str, Any]) -> ResolvedTeacher | None:
    """The teacher the last run resolved from the same ``fromFineTune`` (``status.teacher``), if any."""
    record = prev.get("teacher") or {}
    if not record or record.get("fromFineTune") != ft.spec.distillation.teacher.from_fine_tune:
        return None
    fields = {k: v for k, v in record.items() if k != "fromFineTune"}
    teacher = ResolvedTeacher.model_validate(fields)
    return teacher if teacher.model == ft.spec.distillation.teacher.model else None


def teacher_source(ft: GemmaFineTune, source: dict[str, Any] | None,
                   prev: dict[str, Any]) -> tuple[ResolvedTeacher | None, str, str]:
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
        return kept or (None, "WaitingForFineTune", (f"waits for GemmaFineTune {namespace}/{name}: it does not "
                                                    "exist yet"))
    try:
        source_ft = parse_finetune(source)
    except SpecError as err:
        return None, "WaitingForFineTune", f"waits for GemmaFineTune {namespace}/{name}: it is not valid ({err})"
    status = source.get("status") or {}
    phase = status.get("phase") or "Pending"
    adapter = (status.get("outputs") or {}).get("adapterUri")
    if phase != "Succeeded" or not adapter:
        return kept or (None, "WaitingForFineTune", (f"waits for GemmaFineTune {namespace}/{name} to succeed (it is "
                                                    f"{phase}); its adapter is the teacher's"))
    if source_ft.spec.model != spec.distillation.teacher.model:
        return None, "TeacherMismatch", (f"spec.distillation.teacher.model is {spec.distillation.teacher.model} "
                                         f"but GemmaFineTune {name} trained {source_ft.spec.model}: set "
                                         f"teacher.model: {source_ft.spec.model}")
    return resolve_teacher(spec, source_ft.spec, adapter), "TeacherConfigured", f"teacher: adapter of {name}"

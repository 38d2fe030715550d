"""What a Job and its pods say about a run attempt, read from the raw API objects (live or last watched)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api.run import (
    EXIT_BELOW_THRESHOLD,
    EXIT_INPUTS_CHANGED,
    EXIT_INVALID_INPUT,
    EXIT_NON_FINITE,
    EXIT_PREEMPTED,
)
from gemma_api.run_stages import TRAIN_STAGE

from gemma_operator.render import LABEL_ATTEMPT, LABEL_RUN, LABEL_STAGE

TRAINER = "trainer"
OOM_KILLED = "OOMKilled"


@dataclass(frozen=True)
class PodView:
    name: str
    job: str | None
    run_id: str | None
    attempt: int
    phase: str
    exit_code: int | None
    disrupted: bool  # DisruptionTarget=True: preemption, node drain, eviction
    deleting: bool
    gone: bool = False  # deleted; this is its last watched state
    waiting_reason: str | None = None
    waiting_message: str = ""
    terminated_reason: str | None = None
    unschedulable: str | None = None  # the scheduler's message when PodScheduled=False/Unschedulable

    @property
    def preempted(self) -> bool:
        """Lost through no fault of the trainer (the Job's podFailurePolicy ignores it)."""
        return self.phase == "Failed" and (self.disrupted or self.exit_code == EXIT_PREEMPTED)

    @property
    def failed(self) -> bool:
        """A trainer failure that counts against backoffLimit (or fails the Job at once on exit 2)."""
        return self.phase == "Failed" and not self.preempted

    @property
    def invalid_input(self) -> bool:
        return self.failed and self.exit_code == EXIT_INVALID_INPUT

    @property
    def inputs_changed(self) -> bool:
        """A data file pinned at the run's first start is gone or changed (gemma_trainer.inputs)."""
        return self.failed and self.exit_code == EXIT_INPUTS_CHANGED

    @property
    def below_threshold(self) -> bool:
        """The run trained but its evaluation gate failed (spec.evaluation)."""
        return self.failed and self.exit_code == EXIT_BELOW_THRESHOLD

    @property
    def non_finite(self) -> bool:
        """The trainer stopped because its loss or gradients became inf/NaN (gemma_trainer.guard)."""
        return self.failed and self.exit_code == EXIT_NON_FINITE

    @property
    def oom_killed(self) -> bool:
        return self.failed and self.terminated_reason == OOM_KILLED

    @property
    def active(self) -> bool:
        return self.phase in ("Pending", "Running") and not self.deleting and not self.gone


@dataclass(frozen=True)
class JobView:
    name: str
    uid: str | None
    run_id: str | None
    attempt: int
    suspended: bool
    complete: bool
    failed: bool
    failed_reason: str | None
    failed_message: str | None
    indexed_hosts: int
    deleting: bool
    start_time: str | None
    completion_time: str | None
    annotations: dict[str, str]
    spec: dict[str, Any]
    gone: bool = False  # deleted (TTL, a person, garbage collection); this is its last watched state
    stage: str = TRAIN_STAGE  # a distillation's teacher or student Job (label gemmaft.dev/stage)

    @property
    def finished(self) -> bool:
        return self.complete or self.failed

    @property
    def live(self) -> bool:
        return not self.gone and not self.deleting


def _attempt(labels: dict[str, str]) -> int:
    try:
        return int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def _trainer_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == TRAINER:
            return status.get("state") or {}
    return {}


def _unschedulable(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get(
                "reason") == "Unschedulable":
            return cond.get("message") or "no node fits the pod"
    return None


def pod_view(pod: dict[str, Any], gone: bool = False) -> PodView:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    state = _trainer_state(pod)
    terminated, waiting = state.get("terminated") or {}, state.get("waiting") or {}
    disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                    for c in status.get("conditions") or ())
    return PodView(
        name=meta.get("name", ""),
        job=labels.get("job-name") or labels.get("batch.kubernetes.io/job-name"),
        run_id=labels.get(LABEL_RUN),
        attempt=_attempt(labels),
        phase=status.get("phase") or "Pending",
        exit_code=int(terminated["exitCode"]) if "exitCode" in terminated else None,
        disrupted=disrupted,
        deleting=bool(meta.get("deletionTimestamp")),
        gone=gone,
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message") or "",
        terminated_reason=terminated.get("reason"),
        unschedulable=_unschedulable(status),
    )


def job_view(job: dict[str, Any], gone: bool = False) -> JobView:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or () if c.get("status") == "True"}
    failed = conds.get("Failed")
    hosts = int(spec.get("completions") or 1) if spec.get("completionMode") == "Indexed" else 1
    return JobView(
        name=meta.get("name", ""),
        uid=meta.get("uid"),
        run_id=labels.get(LABEL_RUN),
        attempt=_attempt(labels),
        suspended=bool(spec.get("suspend")),
        complete="Complete" in conds,
        failed=failed is not None,
        failed_reason=failed.get("reason") if failed else None,
        failed_message=failed.get("message") if failed else None,
        indexed_hosts=hosts,
        deleting=bool(meta.get("deletionTimestamp")),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        annotations=dict(meta.get("annotations") or {}),
        spec={k: v for k, v in spec.items() if k != "template"},
        gone=gone,
        stage=labels.get(LABEL_STAGE) or TRAIN_STAGE,
    )

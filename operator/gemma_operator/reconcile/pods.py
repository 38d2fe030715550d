"""What a Job and its pods say about a run attempt, read from the raw API objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_operator.api.run import EXIT_INVALID_INPUT, EXIT_PREEMPTED
from gemma_operator.render import LABEL_ATTEMPT, LABEL_RUN

TRAINER = "trainer"


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
    def active(self) -> bool:
        return self.phase in ("Pending", "Running") and not self.deleting


@dataclass(frozen=True)
class JobView:
    name: str
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

    @property
    def finished(self) -> bool:
        return self.complete or self.failed


def _attempt(labels: dict[str, str]) -> int:
    try:
        return int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def _exit_code(pod: dict[str, Any]) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == TRAINER:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if "exitCode" in terminated:
                return int(terminated["exitCode"])
    return None


def pod_view(pod: dict[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                    for c in status.get("conditions") or ())
    return PodView(
        name=meta.get("name", ""),
        job=labels.get("job-name") or labels.get("batch.kubernetes.io/job-name"),
        run_id=labels.get(LABEL_RUN),
        attempt=_attempt(labels),
        phase=status.get("phase") or "Pending",
        exit_code=_exit_code(pod),
        disrupted=disrupted,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def job_view(job: dict[str, Any]) -> JobView:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or () if c.get("status") == "True"}
    failed = conds.get("Failed")
    hosts = int(spec.get("completions") or 1) if spec.get("completionMode") == "Indexed" else 1
    return JobView(
        name=meta.get("name", ""),
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
    )

"""One attempt of a run (one Job): how far it got, what it cost, and whether the next attempt must start.

A multi-host slice trains as one unit: the first host it loses fails its Job (``backoffLimit: 0``) and the whole
slice restarts as the next attempt. A crash spends one of ``runPolicy.backoffLimit``; a preemption spends none.
A single-host Job retries its own pod (``podFailurePolicy`` ignores preemptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api import GemmaFineTuneSpec
from gemma_api.evaluation import BELOW_THRESHOLD

from .pods import JobView, PodView
from .problems import create_problem, oom_message, pod_problem

# Counts carried into a new Job attempt, written once when the Job is created (never patched).
ANN_PREEMPTIONS = "gemmaft.dev/preemptions-before"
ANN_FAILURES = "gemmaft.dev/failures-before"
ANN_SLICE_RESTARTS = "gemmaft.dev/slice-restarts-before"


@dataclass(frozen=True)
class Verdict:
    phase: str
    reason: str
    message: str
    stalled: bool = False
    """Only a person can move it on (kstatus Stalled)."""
    restart: bool = False
    """Start the next attempt: the whole slice restarts from the last committed checkpoint."""


@dataclass(frozen=True)
class Counts:
    preemptions: int
    failures: int
    preempted_pods: tuple[str, ...] = ()
    slice_restarts: int = 0
    """Whole-slice restarts before this attempt: read from the attempt's Job, never added up per decision (a
    decision repeated after an operator crash would count its restart twice)."""

    @classmethod
    def recorded(cls, restarts: dict[str, Any] | None) -> Counts:
        """The counts as ``status.restarts`` recorded them."""
        r = restarts or {}
        return cls(int(r.get("preemptions") or 0), int(r.get("failures") or 0),
                   slice_restarts=int(r.get("sliceRestarts") or 0))

    def annotations(self) -> dict[str, str]:
        """What a new attempt's Job carries of the counts before it (written once, at creation)."""
        return {ANN_PREEMPTIONS: str(self.preemptions), ANN_FAILURES: str(self.failures),
                ANN_SLICE_RESTARTS: str(self.slice_restarts)}

    def to_status(self) -> dict[str, int]:
        """``status.restarts``."""
        return {"preemptions": self.preemptions, "failures": self.failures, "sliceRestarts": self.slice_restarts}


def _base(job: JobView, key: str) -> int:
    try:
        return int(job.annotations.get(key, 0))
    except ValueError:
        return 0


def slice_crashed(job: JobView, pods: list[PodView]) -> bool:
    """A host of the slice failed by the trainer's fault (or the Job failed with no pod left to tell)."""
    lost = [p for p in pods if p.phase == "Failed"]
    return any(p.failed for p in lost) or (job.failed and not lost and job.failed_reason != "DeadlineExceeded")


def count(job: JobView, pods: list[PodView], recorded: Counts) -> Counts:
    """Preemptions and failures of the run so far (``recorded``: the counts in status, which pods may outlive)."""
    mine = [p for p in pods if p.job == job.name]
    preempted = tuple(p.name for p in mine if p.preempted)
    if job.indexed_hosts > 1:  # a slice is lost once, however many hosts the Job controller stopped with it
        crashed = slice_crashed(job, mine)
        failures, lost = (1 if crashed else 0), (1 if preempted and not crashed else 0)
    else:
        failures, lost = sum(1 for p in mine if p.failed), len(preempted)
    preemptions = _base(job, ANN_PREEMPTIONS) + lost
    failures += _base(job, ANN_FAILURES)
    # A Job created before the annotation existed keeps the recorded count.
    restarts = _base(job, ANN_SLICE_RESTARTS) if ANN_SLICE_RESTARTS in job.annotations else recorded.slice_restarts
    return Counts(max(preemptions, recorded.preemptions), max(failures, recorded.failures), preempted, restarts)


def _failed(job: JobView, pods: list[PodView]) -> Verdict:
    oom = oom_message(pods)
    if oom:
        return Verdict("Failed", "OOMKilled", f"Job {job.name} failed: {oom}")
    reason = job.failed_reason or "JobFailed"
    fix = ("raise spec.runPolicy.activeDeadlineSeconds" if reason == "DeadlineExceeded"
           else f"see the trainer's logs (kubectl logs job/{job.name})")
    return Verdict("Failed", reason, f"Job {job.name} failed: {job.failed_message or reason}. Fix: {fix}")


def _slice(job: JobView, pods: list[PodView], spec: GemmaFineTuneSpec, counts: Counts) -> Verdict | None:
    lost = [p for p in pods if p.phase == "Failed"]
    if not lost and not job.failed:
        return None
    if job.failed and job.failed_reason == "DeadlineExceeded":
        return _failed(job, pods)
    limit = spec.run_policy.backoff_limit
    crashed = slice_crashed(job, pods)
    if crashed and counts.failures > limit:
        verdict = _failed(job, pods)
        message = (f"{counts.failures} slice failures exceed runPolicy.backoffLimit {limit}: "
                   f"{verdict.message}")
        return Verdict("Failed", "OOMKilled" if verdict.reason == "OOMKilled" else "BackoffLimitExceeded", message)
    names = ", ".join(p.name for p in lost) or "a host"
    cause = "crashed" if crashed else "was preempted"
    return Verdict("Pending", "SliceRestart", f"host pod(s) {names} of the {job.indexed_hosts}-host slice {cause}: "
                   f"every host restarts from the last committed checkpoint", restart=True)


def judge(job: JobView, pods: list[PodView], spec: GemmaFineTuneSpec, counts: Counts, suspended: bool,
          queued: bool, create_error: str | None = None, *, retry: str,
          trainer_message: str | None = None) -> Verdict:
    """Where the attempt of ``job`` stands (``pods``: its pods, live or last watched; ``create_error``: why the
    Job controller could not create a pod, from its last FailedCreate Event; ``retry``: how a person retries;
    ``trainer_message``: what the trainer wrote in progress.json when it failed)."""
    mine = [p for p in pods if p.job == job.name]
    if job.complete:
        return Verdict("Succeeded", "JobComplete", f"Job {job.name} completed")
    if any(p.non_finite for p in mine):
        detail = trainer_message or f"see the logs of Job {job.name}"
        return Verdict("Failed", "NonFiniteLoss", f"the training loss became inf/NaN (exit code 3), nothing of it "
                                                  f"was committed: {detail}")
    if any(p.inputs_changed for p in mine):
        detail = trainer_message or f"see the logs of Job {job.name}"
        return Verdict("Failed", "InputsChanged", f"a data file pinned at the run's first start is gone or changed "
                                                  f"(exit code 5), nothing was trained on other data: {detail}")
    if any(p.below_threshold for p in mine):
        detail = trainer_message or f"see <run>/evaluation/results.json and the logs of Job {job.name}"
        return Verdict("Failed", BELOW_THRESHOLD, f"trained, but the evaluation gate failed (exit code 4): {detail}")
    if any(p.invalid_input for p in mine):
        return Verdict("Failed", "InvalidInput", f"the trainer refused its input (exit code 2): see the logs of Job "
                                                 f"{job.name}; fix the data, model or config and re-apply")
    if job.indexed_hosts > 1:
        verdict = _slice(job, mine, spec, counts)
        if verdict is not None:
            return verdict
    if job.failed:
        return _failed(job, mine)
    if job.gone:
        return Verdict("Failed", "JobDeleted", f"Job {job.name} was deleted before it finished; nothing is "
                       f"re-created. Retry: {retry}", stalled=True)
    if suspended:
        if queued:
            return Verdict("Pending", "WaitingForAdmission", f"Job {job.name} waits for Kueue to admit it")
        return Verdict("Suspended", "Suspended", f"Job {job.name} is suspended (spec.runPolicy.suspend)")
    running = [p for p in mine if p.active and p.phase == "Running"]
    if running:
        return Verdict("Running", "Training", f"{len(running)} trainer pod(s) running in Job {job.name}")
    if any(p.phase == "Succeeded" for p in mine):  # the trainer is done; the Job controller has yet to say so
        return Verdict("Running", "Completing", f"the trainer of Job {job.name} finished; the Job completes")
    problem = pod_problem(mine)
    if problem is None and create_error and not any(p.active for p in mine):
        problem = create_problem(job.name, create_error)
    if problem is not None:
        return Verdict("Pending", problem.reason, problem.message, stalled=problem.stalled)
    return waiting(job.name, job.attempt)


def waiting(job: str, attempt: int) -> Verdict:
    """A created Job whose pods are not running yet (the same words before and after the Job is watched, so
    seeing the Job costs no status write)."""
    return Verdict("Pending", "JobCreated", f"Job {job} (attempt {attempt}) waits for its pods to be scheduled")

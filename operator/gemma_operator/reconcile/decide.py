"""The one decision function: what the operator does next for one GemmaFineTune."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from gemma_operator.api import GemmaFineTune, SpecError, parse_finetune, run_id, run_uri
from gemma_operator.api.run import ADAPTER_DIR, LOSS_PLOT_FILE, MERGED_DIR, METRICS_FILE, RunProgress
from gemma_operator.render import names, placement, render_run
from gemma_operator.settings import OperatorSettings

from .conditions import set_condition
from .pods import JobView, PodView, job_view, pod_view

Policy = OperatorSettings

# Counts carried into a new Job attempt, written once when the Job is created (never patched).
ANN_PREEMPTIONS = "gemmaft.dev/preemptions-before"
ANN_FAILURES = "gemmaft.dev/failures-before"

TERMINAL = ("Succeeded", "Failed")
CONDITION_TYPES = ("Running", "Suspended", "Succeeded", "Failed")


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    body: dict[str, Any]
    """The GemmaFineTune as read from the API."""
    jobs: list[dict[str, Any]] = field(default_factory=list)
    """Jobs labelled with this fine-tune's name (any run, any attempt)."""
    pods: list[dict[str, Any]] = field(default_factory=list)
    """Pods labelled with this fine-tune's name."""
    progress: RunProgress | None = None
    """The current run's progress.json, if it could be read."""
    now: str = "1970-01-01T00:00:00Z"


@dataclass
class Decision:
    create: list[dict[str, Any]] = field(default_factory=list)
    """Objects to create, in order, owner references set ("already exists" counts as done)."""
    patch_jobs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(Job name, merge patch)."""
    delete: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) to delete after the creations ("not found" counts as done)."""
    status: dict[str, Any] = field(default_factory=dict)
    """The whole new status."""
    events: list[Event] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """Runs that finished in this step: succeeded or failed (for metrics)."""
    new_preemptions: int = 0
    slice_restarts: int = 0
    active: bool = False
    """Whether the run is still going (worth polling its progress)."""


def wanted_run(body: dict[str, Any]) -> tuple[str, str] | None:
    """(runId, runUri) the body asks for, or None when it is not a valid fine-tune."""
    try:
        ft = parse_finetune(body)
    except SpecError:
        return None
    rid = run_id(ft.spec)
    return rid, run_uri(ft.spec, rid)


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion", "gemmaft.dev/v1alpha1"), "kind": body.get("kind", "GemmaFineTune"),
            "name": meta.get("name"), "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}


def _conditions(prev: list[dict[str, Any]], ready: tuple[str, str, str], phase: str | None, reason: str,
                message: str, now: str, gen: int | None) -> list[dict[str, Any]]:
    conds = set_condition(prev, "Ready", *ready, now, gen)
    for type_ in CONDITION_TYPES:
        on = phase == type_
        conds = set_condition(conds, type_, "True" if on else "False", reason if on else (phase or reason),
                              message if on else "", now, gen)
    return conds


def _refuse(obs: Observed, prev: dict[str, Any], reason: str, message: str) -> Decision:
    meta = obs.body.get("metadata") or {}
    gen = meta.get("generation")
    status = copy.deepcopy(prev)
    status.update(phase="Failed", message=message, observedGeneration=gen)
    status["conditions"] = _conditions(prev.get("conditions") or [], ("False", reason, message), "Failed", reason,
                                       message, obs.now, gen)
    events = []
    if prev.get("phase") != "Failed" or prev.get("message") != message:
        events.append(Event("Warning", reason, message))
    return Decision(status=status, events=events)


def _objects(ft: GemmaFineTune, obs: Observed, policy: Policy, attempt: int, preemptions: int,
             failures: int) -> list[dict[str, Any]]:
    namespace = obs.body["metadata"].get("namespace") or "default"
    objects = render_run(ft, policy.render_settings(), namespace, attempt)
    owner = owner_reference(obs.body)
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [owner]
        if obj["kind"] == "Job":
            obj["metadata"].setdefault("annotations", {}).update(
                {ANN_PREEMPTIONS: str(preemptions), ANN_FAILURES: str(failures)})
    return objects


def _stop(name: str, job: JobView) -> list[tuple[str, str]]:
    out = [("Job", job.name)]
    if job.indexed_hosts > 1 and job.run_id:
        out.append(("Service", names.service_name(name, job.run_id, job.attempt)))
    return out


def _progress(p: RunProgress) -> dict[str, Any]:
    percent = round(100.0 * p.step / p.total_steps, 1) if p.total_steps else None
    fields = {"step": p.step, "totalSteps": p.total_steps, "percent": percent, "epoch": p.epoch, "loss": p.loss,
              "evalLoss": p.eval_loss, "tokensPerSecond": p.tokens_per_second, "etaSeconds": p.eta_seconds,
              "updatedAt": p.updated_at}
    return {k: v for k, v in fields.items() if v is not None}


def _outputs(ft: GemmaFineTune, uri: str, p: RunProgress | None, done: bool) -> dict[str, Any]:
    out = {"runUri": uri}
    if done:
        out["adapterUri"] = (p.adapter_uri if p and p.adapter_uri else
                             None if ft.spec.method in ("full", "freeze") else f"{uri}/{ADAPTER_DIR}")
        if ft.spec.output.merge_adapter or ft.spec.method in ("full", "freeze"):
            out["mergedModelUri"] = p.merged_model_uri if p and p.merged_model_uri else f"{uri}/{MERGED_DIR}"
        out["metricsUri"] = f"{uri}/{METRICS_FILE}"
        out["lossPlotUri"] = f"{uri}/{LOSS_PLOT_FILE}"
    return {k: v for k, v in out.items() if v is not None}


def _phase_of(job: JobView, pods: list[PodView], suspended: bool, queued: bool) -> tuple[str, str, str]:
    """(phase, reason, message) of the current attempt."""
    if job.complete:
        return "Succeeded", "JobComplete", f"Job {job.name} completed"
    if job.failed:
        if any(p.invalid_input for p in pods):
            return "Failed", "InvalidInput", (f"the trainer refused its input (exit code 2): see the logs of Job "
                                              f"{job.name}; fix the data, model or config and re-apply")
        reason = job.failed_reason or "JobFailed"
        return "Failed", reason, f"Job {job.name} failed: {job.failed_message or reason}"
    if suspended:
        if queued:
            return "Pending", "WaitingForAdmission", f"Job {job.name} waits for Kueue to admit it"
        return "Suspended", "Suspended", f"Job {job.name} is suspended (spec.runPolicy.suspend)"
    running = [p for p in pods if p.phase == "Running" and not p.deleting]
    if running:
        return "Running", "Training", f"{len(running)} trainer pod(s) running in Job {job.name}"
    return "Pending", "PodsPending", f"Job {job.name} waits for its pods to be scheduled"


def decide(obs: Observed, policy: Policy) -> Decision:
    body = obs.body
    meta = body.get("metadata") or {}
    name, gen = meta.get("name", ""), meta.get("generation")
    prev = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}

    try:
        ft = parse_finetune(body)
    except SpecError as err:
        fields = "; ".join(str(p) for p in err.problems)
        return _refuse(obs, prev, "InvalidSpec", f"invalid spec: {fields}")
    spec = ft.spec
    image = spec.pod.image or policy.render_settings().image_for(spec.accelerator.type)
    if not policy.image_allowed(image):
        allowed = ", ".join(policy.allowed_image_prefixes)
        return _refuse(obs, prev, "ImageNotAllowed",
                       f"image {image!r} is not allowed: spec.pod.image must start with one of: {allowed}")

    rid, uri = run_id(spec), run_uri(spec, run_id(spec))
    d = Decision()
    jobs = [job_view(j) for j in obs.jobs]
    pods = [pod_view(p) for p in obs.pods]
    prev_rid = prev.get("runId")
    new_run = prev_rid != rid
    history = [dict(r) for r in prev.get("runs") or []]

    # Other runs' Jobs (an earlier spec) are stopped; their folders in storage stay.
    for job in jobs:
        if job.run_id != rid and not job.deleting:
            d.delete += _stop(name, job)

    status: dict[str, Any] = copy.deepcopy(prev)
    restarts = dict(prev.get("restarts") or {})
    if new_run:
        if prev_rid:
            was = prev.get("phase")
            old_phase = was if was in TERMINAL else "Suspended"
            for rec in history:
                if rec.get("runId") == prev_rid:
                    rec.update(phase=old_phase, reason=rec.get("reason") if was in TERMINAL else "Superseded",
                               completionTime=prev.get("completionTime"))
            d.events.append(Event("Normal", "NewRun", f"training fields changed: run {rid} replaces run {prev_rid} "
                                  f"(stopped; its outputs stay in {prev.get('outputs', {}).get('runUri', 'storage')})"))
        for key in ("progress", "lastCheckpoint", "outputs", "startTime", "completionTime", "jobName", "message"):
            status.pop(key, None)
        restarts = {"preemptions": 0, "failures": 0, "sliceRestarts": 0}
        status.update(runId=rid, attempt=0)

    mine = [j for j in jobs if j.run_id == rid]
    attempt = max([0 if new_run else int(prev.get("attempt") or 0)] + [j.attempt for j in mine])
    for job in mine:
        if job.attempt < attempt and not job.deleting:
            d.delete += _stop(name, job)
    current = next((j for j in mine if j.attempt == attempt and not j.deleting), None)
    job_pods = [p for p in pods if current and p.job == current.name]
    progress = obs.progress
    queued = bool(spec.pod.queue_name)
    earlier = next((r for r in history if r.get("runId") == rid), None) if new_run else None

    if current is None:
        finished_before = (not new_run and prev.get("phase") in TERMINAL and prev.get("completionTime"))
        if finished_before:
            phase, reason, message = prev["phase"], "Finished", prev.get("message") or ""
        elif earlier and earlier.get("phase") == "Succeeded":
            # The spec went back to a run that already finished: its results are reused, nothing retrains.
            phase, reason, message = "Succeeded", "Reused", f"run {rid} finished earlier; its outputs are reused"
            status["completionTime"] = earlier.get("completionTime") or obs.now
            status["startTime"] = earlier.get("startTime")
        elif progress is not None and progress.state == "completed":
            phase, reason, message = "Succeeded", "Completed", f"run {rid} completed (read from progress.json)"
        else:
            preempt_base = int(restarts.get("preemptions") or 0)
            fail_base = int(restarts.get("failures") or 0)
            d.create = _objects(ft, obs, policy, attempt, preempt_base, fail_base)
            job_name = names.job_name(name, rid, attempt)
            d.events.append(Event("Normal", "Created", f"created Job {job_name} for run {rid} (attempt {attempt})"))
            status["jobName"] = job_name
            suspended = spec.run_policy.suspend or queued
            phase, reason, message = (
                ("Pending", "WaitingForAdmission", f"Job {job_name} waits for Kueue to admit it") if queued else
                ("Suspended", "Suspended", f"Job {job_name} is suspended (spec.runPolicy.suspend)") if suspended else
                ("Pending", "JobCreated", f"Job {job_name} created; waiting for its pods"))
    else:
        status["jobName"] = current.name
        preempted = [p for p in job_pods if p.preempted]
        failed = [p for p in job_pods if p.failed]
        preemptions = int(current.annotations.get(ANN_PREEMPTIONS, 0)) + len(preempted)
        failures = int(current.annotations.get(ANN_FAILURES, 0)) + len(failed)
        if not new_run:
            preemptions = max(preemptions, int(restarts.get("preemptions") or 0))
            failures = max(failures, int(restarts.get("failures") or 0))
        before = int(restarts.get("preemptions") or 0)
        if preemptions > before:
            d.new_preemptions = preemptions - before
            lost = ", ".join(p.name for p in preempted) or "a trainer pod"
            d.events.append(Event("Warning", "Preempted",
                                  f"{lost} lost (spot preemption, node drain or SIGTERM); training resumes from "
                                  f"the last committed checkpoint"))
        restarts.update(preemptions=preemptions, failures=failures)
        if current.indexed_hosts > 1 and preempted and not current.finished:
            # One host of a slice is gone: every host must restart together from the last checkpoint.
            attempt += 1
            d.create = _objects(ft, obs, policy, attempt, preemptions, failures)
            d.delete += _stop(name, current)
            d.slice_restarts = 1
            job_name = names.job_name(name, rid, attempt)
            d.events.append(Event("Warning", "SliceRestart",
                                  f"host pod(s) {', '.join(p.name for p in preempted)} of the {current.indexed_hosts}-"
                                  f"host slice lost: Job {current.name} replaced by {job_name} (attempt {attempt})"))
            status["jobName"] = job_name
            phase, reason, message = "Pending", "SliceRestart", f"slice restarting as Job {job_name}"
        else:
            want_suspend = spec.run_policy.suspend
            suspended = current.suspended
            if not queued and not current.finished and current.suspended != want_suspend:
                d.patch_jobs.append((current.name, {"spec": {"suspend": want_suspend}}))
                suspended = want_suspend
                d.events.append(Event("Normal", "Suspending" if want_suspend else "Resuming",
                                      f"Job {current.name} {'suspended: trainer pods stop after a checkpoint' if want_suspend else 'resumed from the last checkpoint'}"))
            phase, reason, message = _phase_of(current, job_pods, suspended, queued)
            if phase in TERMINAL:
                status["completionTime"] = prev.get("completionTime") if not new_run and prev.get(
                    "completionTime") else (current.completion_time or obs.now)
        if current.start_time and not status.get("startTime"):
            status["startTime"] = current.start_time
    restarts["sliceRestarts"] = max(attempt, int(restarts.get("sliceRestarts") or 0))
    status["attempt"] = attempt
    status["restarts"] = restarts
    if phase in ("Running",) and not status.get("startTime"):
        status["startTime"] = obs.now
    if phase == "Succeeded" and not status.get("completionTime"):
        status["completionTime"] = obs.now

    if progress is not None:
        status["progress"] = _progress(progress)
        if progress.last_checkpoint:
            status["lastCheckpoint"] = progress.last_checkpoint
    status["outputs"] = _outputs(ft, uri, progress, phase == "Succeeded")
    if earlier and reason == "Reused":
        status["outputs"]["adapterUri"] = earlier.get("adapterUri") or status["outputs"].get("adapterUri")

    status.update(phase=phase, message=message, observedGeneration=gen)
    status["conditions"] = _conditions(prev.get("conditions") or [], ("True", "Accepted", f"run {rid}"),
                                       phase, reason, message, obs.now, gen)
    record = {"runId": rid, "generation": gen, "phase": phase, "reason": reason, "startTime": status.get("startTime"),
              "completionTime": status.get("completionTime"), "runUri": uri,
              "adapterUri": status["outputs"].get("adapterUri")}
    history = [{k: v for k, v in record.items() if v is not None}] + [r for r in history if r.get("runId") != rid]
    status["runs"] = history[: policy.run_history]

    if new_run or phase != prev.get("phase"):
        kind = "Warning" if phase == "Failed" else "Normal"
        d.events.append(Event(kind, phase, message))
        if phase in TERMINAL and reason not in ("Reused", "Finished"):
            d.results.append(phase.lower())
    d.active = phase not in TERMINAL
    d.status = status
    return d


__all__ = ["ANN_FAILURES", "ANN_PREEMPTIONS", "Decision", "Event", "Observed", "Policy", "decide", "owner_reference",
           "placement", "wanted_run"]

"""The decision: what the operator does next for one GemmaFineTune (observed state in, actions and status out).

A run's attempts are Jobs. The Job of the current attempt is recorded in ``status.job`` (name and uid) before
anything can delete it; from then on that record, the Job's last watched state and the run's progress.json
judge the attempt. A Job is created only for an attempt that has no record yet: never again blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, NamedTuple

from gemma_api import GemmaFineTune, RunConfig
from gemma_api.run_stages import EVALUATE_STAGE, TRAIN_STAGE

from gemma_operator.render import names, render_run
from gemma_operator.settings import OperatorSettings

from . import attempts, changes, runs, serving, stages
from .admission import Refusal, admit
from .attempts import ANN_FAILURES, ANN_PREEMPTIONS, Counts, Verdict
from .conditions import kstatus_conditions, phase_status
from .evaluation import evaluated, evaluation_leg, leg_events
from .model import Actions, Decision, Event, Observed
from .pods import JobView, PodView, job_view, pod_view
from .staged_run import TERMINAL, CurrentStage, StagedRun


@dataclass(frozen=True)
class Run:
    """One decision's fixed inputs."""

    obs: Observed
    staged: StagedRun
    """The run the fine-tune asks for (computed once, by the runtime)."""
    policy: OperatorSettings
    prev: dict[str, Any]
    """The last status as the API server holds it, read as recorded: a status an older operator wrote may not
    validate against today's model, and the decision must still go on from it. The new status is typed
    (:meth:`~.model.Actions.decision`) before it leaves the decision."""
    stage: CurrentStage | None = None
    """The stage this decision is about (its Job, run config and accelerator): a distillation's teacher or
    student, or the evaluate stage of a trained run."""

    @property
    def ft(self) -> GemmaFineTune:
        return self.staged.ft

    @property
    def rid(self) -> str:
        return self.staged.run_id

    @property
    def uri(self) -> str:
        return self.staged.run_uri

    @property
    def config(self) -> RunConfig | None:
        return self.stage.config if self.stage is not None else None

    @property
    def job_stage(self) -> str:
        """The stage recorded with the Job: ``train`` for a plain run, ``teacher`` or ``student``."""
        return self.config.stage if self.config is not None else TRAIN_STAGE

    @property
    def trains(self) -> bool:
        """Whether this stage's Job trains (a completed progress.json then means it is done); the evaluate stage
        of a trained run does not."""
        return self.job_stage != EVALUATE_STAGE

    @property
    def name(self) -> str:
        return self.obs.body["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.obs.body["metadata"].get("namespace") or "default"

    @property
    def generation(self) -> int | None:
        return (self.obs.body.get("metadata") or {}).get("generation")

    @property
    def queued(self) -> bool:
        return bool(self.ft.spec.pod.queue_name)


class Step(NamedTuple):
    """What one part of a decision concludes: the verdict, the status so far (a new dict), and its actions."""

    verdict: Verdict
    status: dict[str, Any]
    actions: Actions = Actions()


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion", "gemmaft.dev/v1alpha1"), "kind": body.get("kind", "GemmaFineTune"),
            "name": meta.get("name"), "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}


def _render(run: Run, attempt: int, counts: Counts | None = None) -> list[dict[str, Any]]:
    objects = render_run(run.ft, run.policy.render_settings(), run.namespace, attempt, config=run.config)
    owner = owner_reference(run.obs.body)
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [owner]
        if obj["kind"] == "Job" and counts is not None:
            obj["metadata"].setdefault("annotations", {}).update(
                {**counts.annotations(), changes.ANN_TEMPLATE: _template_hash(run)})
    return objects


def _desired_job(run: Run) -> dict[str, Any]:
    """The Job of attempt 0 as the spec renders it now (read only; rendered once per spec, stage and settings)."""
    config = run.config.model_dump_json(by_alias=True) if run.config is not None else None
    return _render_job(run.ft.model_dump_json(by_alias=True), config, run.policy, run.namespace)


@lru_cache(maxsize=256)
def _render_job(finetune_json: str, config_json: str | None, policy: OperatorSettings, namespace: str) -> dict[str, Any]:
    ft = GemmaFineTune.model_validate_json(finetune_json)
    config = RunConfig.model_validate_json(config_json) if config_json is not None else None
    return next(o for o in render_run(ft, policy.render_settings(), namespace, 0, config=config) if o["kind"] == "Job")


def _template_hash(run: Run) -> str:
    return changes.template_hash(_desired_job(run))


def _stop(run: Run, job: JobView) -> list[tuple[str, str]]:
    out = [("Job", job.name)]
    if job.indexed_hosts > 1 and job.run_id:
        out.append(("Service", names.service_name(run.name, names.run_key(job.run_id, job.stage), job.attempt)))
    return out


def _start(run: Run, status: dict[str, Any], attempt: int, counts: Counts, reason: str | None = None,
           message: str = "") -> Step:
    """Create the objects of ``attempt`` and record its Job (the uid is filled in from the create answer)."""
    job = names.job_name(run.name, names.run_key(run.rid, run.job_stage), attempt)
    status = {**status, "attempt": attempt, "jobName": job,
              "job": {"name": job, "attempt": attempt, "stage": run.job_stage}}
    actions = Actions(create=tuple(_render(run, attempt, counts)))
    if run.queued:
        verdict = Verdict("Pending", "WaitingForAdmission", f"Job {job} created; it waits for Kueue to admit it")
    elif run.ft.spec.run_policy.suspend:
        verdict = Verdict("Suspended", "Suspended", f"Job {job} created suspended (spec.runPolicy.suspend)")
    elif reason is None:
        verdict = attempts.waiting(job, attempt)
    else:
        verdict = Verdict("Pending", reason, message.format(job=job, attempt=attempt))
    return Step(verdict, status, actions)


def _locate(record: dict[str, Any] | None, jobs: list[JobView]) -> JobView | None:
    if not record:
        return None
    uid = record.get("uid")
    found = [j for j in jobs if (j.uid == uid if uid else j.name == record.get("name") and not j.gone)]
    return next((j for j in found if not j.gone), found[0] if found else None)


def _vanished(run: Run, record: dict[str, Any]) -> Verdict:
    """The recorded Job is gone and was never seen finishing: judge from progress.json, create nothing."""
    job = record.get("name")
    progress = run.obs.progress
    if progress is not None and progress.state == "completed":
        return Verdict("Succeeded", "JobRemoved", f"Job {job} was deleted before the operator saw it end; the "
                                                  f"run's progress.json says it completed")
    return Verdict("Failed", "JobVanished",
                   f"Job {job} was deleted before the operator saw it end (ttlSecondsAfterFinished shorter than an "
                   f"operator outage, or a manual delete); nothing was re-created. Retry: {runs.retry_command(run.name)}")


def _first(run: Run, status: dict[str, Any], new_run: bool) -> Step:
    """No Job recorded for this run: reuse an earlier result, or start attempt ``status.attempt``."""
    earlier = runs.earlier_success(run.prev, run.rid) if new_run else None
    if earlier:
        reused = {**status, "completionTime": earlier.get("completionTime") or run.obs.now,
                  "startTime": earlier.get("startTime"),
                  "outputs": {"runUri": run.uri, "adapterUri": earlier.get("adapterUri")}}
        return Step(Verdict("Succeeded", "Reused", f"run {run.rid} finished earlier; its outputs are reused"), reused)
    if run.trains and run.obs.progress is not None and run.obs.progress.state == "completed":
        return Step(Verdict("Succeeded", "Completed", f"run {run.rid} completed (read from progress.json)"), status)
    return _start(run, status, int(status.get("attempt") or 0), Counts.recorded(status.get("restarts")))


def _preempted(counts: Counts, recorded: Counts) -> Actions:
    """The preemptions not counted before: their number for the metrics and one Warning Event."""
    if counts.preemptions <= recorded.preemptions:
        return Actions()
    lost = ", ".join(counts.preempted_pods) or "a trainer pod"
    return Actions(new_preemptions=counts.preemptions - recorded.preemptions,
                   events=(Event("Warning", "Preempted", f"{lost} lost (spot preemption, node drain or SIGTERM); "
                                                         "training resumes from the last committed checkpoint"),))


def _follow(run: Run, status: dict[str, Any], job: JobView, pods: list[PodView]) -> Step:
    """Judge the recorded Job; restart the slice, apply live edits."""
    recorded = Counts.recorded(status.get("restarts"))
    counts = attempts.count(job, pods, recorded)
    status = {**status, "jobName": job.name, "attempt": job.attempt, "restarts": counts.to_status(),
              "job": {"name": job.name, "uid": job.uid, "attempt": job.attempt, "stage": run.job_stage}}
    suspended, actions = _suspend(run, job)
    actions = _preempted(counts, recorded) + actions
    progress = run.obs.progress
    verdict = attempts.judge(job, pods, run.ft.spec, counts, suspended, run.queued,
                             run.obs.job_problems.get(job.name), retry=runs.retry_command(run.name),
                             trainer_message=progress.message if progress and progress.state == "failed" else None)
    if verdict.restart:
        counts = replace(counts, slice_restarts=counts.slice_restarts + 1)
        started = _start(run, {**status, "restarts": counts.to_status()}, job.attempt + 1, counts)
        stopped = Actions(delete=tuple(_stop(run, job)) if job.live else (), slice_restarts=1)
        message = (f"{verdict.message}: Job {started.status['jobName']} (attempt {job.attempt + 1}) replaces Job "
                   f"{job.name}")
        return Step(Verdict("Pending", verdict.reason, message), started.status, actions + started.actions + stopped)
    if job.start_time and not status.get("startTime"):
        status = {**status, "startTime": job.start_time}
    if verdict.phase in TERMINAL and not status.get("completionTime"):
        status = {**status, "completionTime": job.completion_time or run.obs.now}
    same_gen = run.prev.get("observedGeneration") == run.generation
    patch, updates, events = changes.job_updates(_desired_job(run), _template_hash(run), job,
                                                 run.prev.get("updates") or [], same_gen)
    edits = Actions(patch_jobs=((job.name, patch),) if patch else (), events=tuple(events))
    return Step(verdict, {**status, "updates": updates}, actions + edits)


def _suspend(run: Run, job: JobView) -> tuple[bool, Actions]:
    """Whether the Job is (or is being) suspended, and the patch when spec.runPolicy.suspend differs."""
    want = run.ft.spec.run_policy.suspend
    if run.queued or not job.live or job.finished or job.suspended == want:
        return job.suspended, Actions()
    what = "suspended: trainer pods stop after a checkpoint" if want else "resumed from the last checkpoint"
    return want, Actions(patch_jobs=((job.name, {"spec": {"suspend": want}}),),
                         events=(Event("Normal", "Suspending" if want else "Resuming", f"Job {job.name} {what}"),))


def _retry(run: Run, status: dict[str, Any], token: str) -> Step | None:
    """A failed run's next attempt, asked for by the retry annotation ``token`` (None when the run has not
    failed)."""
    if run.prev.get("phase") != "Failed":
        return None
    counts = replace(Counts.recorded(status.get("restarts")), failures=0)
    status = {k: v for k, v in status.items() if k != "completionTime"} | {"restarts": counts.to_status()}
    attempt = int(status.get("attempt") or 0) + 1
    return _start(run, status, attempt, counts, "Retry",
                  f"{runs.RETRY_ANNOTATION}={token}: attempt {{attempt}} of run {run.rid} starts as Job {{job}} "
                  "from the last committed checkpoint")


def _sticky(run: Run) -> Verdict:
    """A finished run stays finished; its reason is kept."""
    phase = run.prev["phase"]
    cond = next((c for c in run.prev.get("conditions") or [] if c.get("type") == phase), {})
    return Verdict(phase, cond.get("reason") or phase, run.prev.get("message") or "")


def _step(run: Run, status: dict[str, Any], new_run: bool) -> Step:
    """The verdict on this run's current Job (or on its absence), the status so far and the actions."""
    jobs = [job_view(j) for j in run.obs.jobs] + [job_view(j, gone=True) for j in run.obs.gone_jobs]
    pods = [pod_view(p) for p in run.obs.pods] + [pod_view(p, gone=True) for p in run.obs.gone_pods]
    record = status.get("job")
    if record is not None and record.get("stage", "train") != run.job_stage:  # the next stage: a new Job
        record = None
        status = {**{k: v for k, v in status.items() if k != "job"}, "attempt": 0}
    current = _locate(record, jobs)
    if current is None and record is None:
        mine = sorted((j for j in jobs if j.run_id == run.rid and j.stage == run.job_stage and j.live),
                      key=lambda j: j.attempt)
        current = mine[-1] if mine else None  # created before a crash, never recorded: adopt it
    newest = current.attempt if current else int((record or {}).get("attempt") or 0)
    stale = Actions(delete=tuple(  # other runs' Jobs and older attempts are stopped; their outputs stay in storage
        kind_and_name for job in jobs
        if job.live and (job.run_id != run.rid or (job.stage == run.job_stage and job.attempt < newest))
        for kind_and_name in _stop(run, job)))
    token = runs.retry_token(run.obs.body, run.prev)
    if token:
        status = {**status, "retry": token}
    step = _judged(run, status, new_run, current, record, pods, token)
    return step._replace(actions=stale + step.actions)


def _judged(run: Run, status: dict[str, Any], new_run: bool, current: JobView | None,
            record: dict[str, Any] | None, pods: list[PodView], token: str | None) -> Step:
    retried = _retry(run, status, token) if token else None
    if retried is not None:
        return retried
    if not new_run and run.prev.get("phase") in TERMINAL and run.prev.get("completionTime"):
        return Step(_sticky(run), status)
    if current is not None:
        return _follow(run, status, current, pods)
    if record is None:
        return _first(run, status, new_run)
    if record.get("name") in run.obs.awaited:
        return Step(attempts.waiting(record["name"], int(record.get("attempt") or 0)), status)
    return Step(_vanished(run, record), status)


def _finish(run: Run, status: dict[str, Any], verdict: Verdict, new_run: bool) -> Step:
    """The run's phase, conditions, progress, outputs and history in the status, and the transition's Event."""
    phase, reason, message = verdict.phase, verdict.reason, verdict.message
    status = {"restarts": Counts(0, 0).to_status(), **status}  # a copy, filled in below
    if phase == "Running" and not status.get("startTime"):
        status["startTime"] = run.obs.now
    if phase in TERMINAL and not status.get("completionTime"):
        status["completionTime"] = run.obs.now
    if run.obs.progress is not None:
        status["progress"] = runs.progress_fields(run.obs.progress)
        if run.obs.progress.inputs is not None:
            status["inputs"] = run.obs.progress.inputs.to_api()
        if run.obs.progress.last_checkpoint:
            status["lastCheckpoint"] = run.obs.progress.last_checkpoint
    if reason != "Reused":
        status["outputs"] = runs.outputs(run.ft, run.uri, run.obs.progress, phase == "Succeeded")
    status.update(phase=phase, message=message, observedGeneration=run.generation)
    status["conditions"] = kstatus_conditions(run.prev.get("conditions") or [], phase, reason, message,
                                              verdict.stalled, run.obs.now, run.generation)
    status["runs"] = runs.history(status, run.rid, run.generation, phase, reason, run.uri, run.policy.run_history)
    if not status.get("updates"):
        status.pop("updates", None)
    prev_reason = next((c.get("reason") for c in run.prev.get("conditions") or [] if c.get("type") == "Ready"), None)
    if not (new_run or phase != run.prev.get("phase") or (phase == "Pending" and reason != prev_reason)):
        return Step(verdict, status)
    warn = phase == "Failed" or verdict.stalled or reason in ("SliceRestart", "Unschedulable")
    event = Event("Warning" if warn else "Normal", reason if phase == "Pending" else phase, message)
    ended = phase in TERMINAL and reason not in ("Reused", "Finished")
    return Step(verdict, status, Actions(events=(event,), results=(phase.lower(),) if ended else ()))


def refuse(obs: Observed, prev: dict[str, Any], refusal: Refusal, now: str) -> Decision:
    gen = (obs.body.get("metadata") or {}).get("generation")
    status = phase_status(prev, "Failed", refusal.reason, refusal.message, True, now, gen)
    events = []
    if prev.get("phase") != "Failed" or prev.get("message") != refusal.message:
        events.append(Event("Warning", refusal.reason, refusal.message))
    return Actions(events=tuple(events)).decision(status)


def decide(obs: Observed, policy: OperatorSettings) -> Decision:
    """The new status and the actions for one GemmaFineTune, from what was observed (which it never changes)."""
    prev = {k: v for k, v in (obs.body.get("status") or {}).items() if k != "kopf"}
    staged = admit(obs.staged, policy)
    if isinstance(staged, Refusal):
        return refuse(obs, prev, staged, obs.now)
    stage = staged.current(obs.teacher_progress, prev)
    if stage is not None and stage.config is None:
        return stages.waiting(obs, prev, stage)
    leg = evaluation_leg(staged, prev)  # the evaluate stage of a trained run (reconcile.evaluation)
    run_prev = leg.prev if leg is not None else prev
    run = Run(obs, staged, policy, run_prev, leg.stage if leg else stage)
    status, events, new_run = runs.begin(run_prev, run.rid)
    step = _step(run, status, new_run)
    finished = _finish(run, step.status, stages.stage_verdict(stage, step.verdict) if stage else step.verdict, new_run)
    status, actions = finished.status, Actions(events=(*events, *leg_events(leg))) + step.actions + finished.actions
    if stage is not None:
        status, stage_events = stages.finish_stage(stage, prev, status, obs.teacher_progress, obs.progress, obs.now,
                                                   run.generation)
        actions += Actions(events=tuple(stage_events))
    if staged.evaluates:  # the evaluation stage's gate (reconcile.evaluation)
        gate = evaluated(run.ft.spec, status, run_prev, obs.progress, obs.now, run.generation)
        status, actions = gate.status, actions + Actions(events=tuple(gate.events))
    status, served = _serve(run, status)
    # Only storage changes what no watch sees: a running trainer's progress.json, a finished teacher's commit.
    verdict = finished.verdict
    active = verdict.phase == "Running" or verdict.reason == stages.AWAITING_TEACHER_COMMIT
    return (actions + served).decision(status, active)


def _serve(run: Run, status: dict[str, Any]) -> tuple[dict[str, Any], Actions]:
    """Keep spec.serving's Deployment on the run the gate chooses (``reconcile/serving.py``): the status with
    ``serving``, and the objects to create, apply and delete."""
    serve = serving.decide_serving(run.ft, run.obs.body, status, run.prev, run.policy, owner_reference(run.obs.body))
    actions = Actions(create=tuple(o for o in serve.apply if o["kind"] != "Deployment"),
                      apply=tuple(o for o in serve.apply if o["kind"] == "Deployment"),
                      delete=tuple(serve.delete), events=tuple(serve.events))
    rest = {k: v for k, v in status.items() if k != "serving"}
    return (rest if serve.status is None else {**rest, "serving": serve.status}), actions


__all__ = ["ANN_FAILURES", "ANN_PREEMPTIONS", "Decision", "Event", "Observed", "decide", "owner_reference"]

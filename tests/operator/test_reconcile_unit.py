"""Pure decisions: observed state in, actions and status out (no cluster, no operator)."""

from __future__ import annotations

import copy

import pytest
from gemma_api import parse_finetune, run_id
from gemma_api.run import RunProgress
from gemma_operator.reconcile import Observed, decide, set_condition
from gemma_operator.reconcile.attempts import ANN_SLICE_RESTARTS
from gemma_operator.reconcile.decide import ANN_PREEMPTIONS
from gemma_operator.settings import OperatorSettings

from tests.conftest import manifest

POLICY = OperatorSettings()


def body(**spec):
    obj = manifest(**spec)
    obj["metadata"].update(uid="uid-1", generation=1)
    return obj


def applied(obj, decision):
    """The body after the runtime carried out the decision: the created Job's uid recorded, the status written."""
    out = copy.deepcopy(obj)
    out["status"] = decision.wire_status
    if any(o["kind"] == "Job" for o in decision.create):
        out["status"]["job"]["uid"] = f"uid-{out['status']['job']['name']}"
    return out


def job_of(decision):
    (job,) = [o for o in decision.create if o["kind"] == "Job"]
    out = copy.deepcopy(job)
    out["metadata"]["uid"] = f"uid-{job['metadata']['name']}"
    return out


def pod(job, name, phase="Running", exit_code=None, disrupted=False, reason=None):
    labels = dict(job["spec"]["template"]["metadata"]["labels"], **{"job-name": job["metadata"]["name"]})
    status = {"phase": phase}
    if exit_code is not None:
        terminated = {"exitCode": exit_code, **({"reason": reason} if reason else {})}
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    if disrupted:
        status["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def test_new_valid_finetune_creates_configmap_and_job_with_owner_and_pending_status():
    d = decide(Observed(body(), now="T0"), POLICY)
    assert [o["kind"] for o in d.create] == ["ConfigMap", "Job"]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "uid-1" for o in d.create)
    assert d.wire_status["phase"] == "Pending" and d.wire_status["attempt"] == 0 and not d.delete
    assert [e.reason for e in d.events] == ["JobCreated"]  # one Event per transition
    assert d.wire_status["job"] == {"name": d.create[1]["metadata"]["name"], "attempt": 0, "stage": "train"}


def test_existing_job_is_never_created_twice():
    first = decide(Observed(body(), now="T0"), POLICY)
    job = job_of(first)
    again = decide(Observed(body(), jobs=[job], now="T1"), POLICY)  # status write was lost: adopt the Job
    assert again.create == [] and again.wire_status["jobName"] == job["metadata"]["name"]
    assert again.wire_status["job"]["uid"] == job["metadata"]["uid"]


def test_invalid_spec_is_refused_with_field_messages_and_creates_nothing():
    d = decide(Observed(body(training={"learningRate": -1}), now="T0"), POLICY)
    assert d.create == [] and d.wire_status["phase"] == "Failed"
    ready = next(c for c in d.wire_status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "spec.training.learningRate" in ready["message"]
    assert [e.type for e in d.events] == ["Warning"]
    again = decide(Observed(applied(body(training={"learningRate": -1}), d), now="T1"), POLICY)
    assert again.events == []  # no repeated Warning while nothing changes


def test_image_outside_allowed_prefixes_is_refused():
    policy = OperatorSettings(allowed_image_prefixes=("eu.gcr.io/team/",))
    d = decide(Observed(body(pod={"image": "quay.io/x/y:1"}), now="T0"), policy)
    assert d.create == [] and d.wire_status["conditions"][0]["reason"] == "ImageNotAllowed"
    ok = decide(Observed(body(pod={"image": "eu.gcr.io/team/trainer:2"}), now="T0"), policy)
    assert ok.create
    # Compared on path segments: a longer name that merely starts with the prefix is refused.
    sibling = decide(Observed(body(pod={"image": "eu.gcr.io/team-evil/trainer:2"}), now="T0"),
                     OperatorSettings(allowed_image_prefixes=("eu.gcr.io/team",)))
    assert sibling.create == [] and "spec.pod.image" in sibling.wire_status["message"]
    # The default allow-list is not empty: the default trainer images' repositories only.
    default = decide(Observed(body(pod={"image": "docker.io/evil/trainer:1"}), now="T0"), POLICY)
    assert default.create == [] and "gemmaft-trainer-gpu" in default.wire_status["message"]


def test_condition_transition_time_moves_only_when_status_changes():
    conds = set_condition([], "Running", "False", "Pending", "", "T0", 1)
    same = set_condition(conds, "Running", "False", "PodsPending", "waiting", "T1", 2)
    assert same[0]["lastTransitionTime"] == "T0" and same[0]["observedGeneration"] == 2
    moved = set_condition(same, "Running", "True", "Training", "", "T2", 2)
    assert moved[0]["lastTransitionTime"] == "T2"


def test_preempted_pod_is_counted_once_and_progress_fills_status():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    pods = [pod(job, "p1", "Failed", exit_code=143, disrupted=True), pod(job, "p2")]
    progress = RunProgress(state="training", step=10, total_steps=40, loss=1.5, updated_at="T1",
                           last_checkpoint="gs://out/runs/x/checkpoints/step-00000010")
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=pods, progress=progress, now="T1"), POLICY)
    assert d1.wire_status["restarts"]["preemptions"] == 1 and d1.new_preemptions == 1
    assert d1.wire_status["phase"] == "Running" and d1.wire_status["progress"]["percent"] == 25.0
    assert d1.wire_status["lastCheckpoint"].endswith("step-00000010")
    d2 = decide(Observed(applied(obj, d1), jobs=[job], pods=pods, progress=progress, now="T2"), POLICY)
    assert d2.new_preemptions == 0 and "Preempted" not in {e.reason for e in d2.events}


def test_lost_host_of_a_slice_starts_the_next_attempt_create_before_delete():
    obj = body(accelerator={"type": "tpu-v3", "topology": "4x4"})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    assert [o["kind"] for o in d0.create] == ["ConfigMap", "Service", "Job"]
    job = job_of(d0)
    pods = [pod(job, f"h{i}") for i in range(3)] + [pod(job, "h3", "Failed", exit_code=143)]
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=pods, now="T1"), POLICY)
    new_job = job_of(d1)
    assert new_job["metadata"]["name"] == job["metadata"]["name"] + "-a1"
    assert new_job["metadata"]["annotations"][ANN_PREEMPTIONS] == "1"
    assert ("Job", job["metadata"]["name"]) in d1.delete
    assert d1.wire_status["attempt"] == 1 and d1.wire_status["restarts"]["sliceRestarts"] == 1
    assert d1.wire_status["restarts"]["failures"] == 0  # a preemption spends no backoffLimit
    # A crash before the old Job went away: the next pass deletes it and creates nothing.
    d2 = decide(Observed(obj, jobs=[job, new_job], pods=pods, now="T2"), POLICY)
    assert d2.create == [] and ("Job", job["metadata"]["name"]) in d2.delete and d2.wire_status["attempt"] == 1


def test_slice_restarts_are_read_from_the_attempts_job_not_added_per_decision():
    """The count of whole-slice restarts comes from the annotation each attempt's Job is created with, so a
    decision repeated after an operator crash neither loses the restart (status write lost) nor counts it again."""
    obj = body(accelerator={"type": "tpu-v3", "topology": "4x4"})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    pods = [pod(job, f"h{i}") for i in range(3)] + [pod(job, "h3", "Failed", exit_code=143)]
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=pods, now="T1"), POLICY)
    new_job = job_of(d1)
    assert new_job["metadata"]["annotations"][ANN_SLICE_RESTARTS] == "1"
    lost_write = decide(Observed(obj, jobs=[job, new_job], pods=pods, now="T2"), POLICY)
    assert lost_write.wire_status["restarts"]["sliceRestarts"] == 1
    inflated = applied(obj, d1)
    inflated["status"]["restarts"]["sliceRestarts"] = 3  # as the old per-decision sum left it
    again = decide(Observed(inflated, jobs=[job, new_job], pods=pods, now="T3"), POLICY)
    assert again.wire_status["restarts"]["sliceRestarts"] == 1
    # The next lost host of attempt 1 makes it 2, carried by attempt 2's Job.
    pods1 = [pod(new_job, f"g{i}") for i in range(3)] + [pod(new_job, "g3", "Failed", exit_code=143)]
    d3 = decide(Observed(applied(obj, d1), jobs=[new_job], pods=pods1, now="T4"), POLICY)
    assert d3.wire_status["restarts"]["sliceRestarts"] == 2
    assert job_of(d3)["metadata"]["annotations"][ANN_SLICE_RESTARTS] == "2"


def test_training_edit_starts_a_new_run_and_stops_the_old_job():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    old_job = job_of(d0)
    edited = applied(obj, d0)
    edited["spec"]["training"] = {"learningRate": 0.0001}
    edited["metadata"]["generation"] = 2
    d1 = decide(Observed(edited, jobs=[old_job], now="T1"), POLICY)
    assert d1.wire_status["runId"] == run_id(parse_finetune(edited).spec) != d0.wire_status["runId"]
    assert ("Job", old_job["metadata"]["name"]) in d1.delete and job_of(d1)
    assert [r["runId"] for r in d1.wire_status["runs"]] == [d1.wire_status["runId"], d0.wire_status["runId"]]
    assert d1.wire_status["runs"][1]["reason"] == "Superseded"


def test_non_training_edit_keeps_the_run():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    edited = applied(obj, d0)
    edited["spec"]["runPolicy"] = {"backoffLimit": 9}
    edited["spec"]["pod"] = {"labels": {"a": "b"}}
    edited["metadata"]["generation"] = 2
    d1 = decide(Observed(edited, jobs=[job], now="T1"), POLICY)
    assert d1.create == [] and d1.delete == [] and d1.wire_status["runId"] == d0.wire_status["runId"]
    assert d1.patch_jobs == [(job["metadata"]["name"], {"spec": {"backoffLimit": 9}})]
    updates = {u["field"]: u["appliedTo"] for u in d1.wire_status["updates"]}
    assert updates == {"spec.runPolicy": "Job", "spec.pod": "NextAttempt"}


@pytest.mark.parametrize("queue", [None, "team-q"])
def test_suspend_patches_the_job_unless_kueue_owns_it(queue):
    spec_pod = {"queueName": queue} if queue else {}
    obj = body(pod=spec_pod)
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    assert job["spec"]["suspend"] is bool(queue)
    suspended = applied(obj, d0)
    suspended["spec"]["runPolicy"] = {"suspend": True}
    d1 = decide(Observed(suspended, jobs=[job], now="T1"), POLICY)
    if queue:
        assert d1.patch_jobs == [] and d1.wire_status["phase"] == "Pending"
    else:
        assert d1.patch_jobs == [(job["metadata"]["name"], {"spec": {"suspend": True}})]
        assert d1.wire_status["phase"] == "Suspended"


def test_finished_run_without_its_job_is_not_recreated():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "T2"}
    d1 = decide(Observed(applied(obj, d0), jobs=[job], now="T2"), POLICY)
    assert d1.wire_status["phase"] == "Succeeded" and d1.results == ["succeeded"]
    assert d1.wire_status["outputs"]["adapterUri"].endswith("/adapter")
    d2 = decide(Observed(applied(obj, d1), jobs=[], now="T3"), POLICY)  # ttlSecondsAfterFinished removed it
    assert d2.create == [] and d2.wire_status["phase"] == "Succeeded" and d2.results == []
    # The Job vanished before the operator saw it finish: progress.json says so.
    done = RunProgress(state="completed", step=5, updated_at="T2")
    d3 = decide(Observed(applied(obj, d0), jobs=[], progress=done, now="T3"), POLICY)
    assert d3.create == [] and d3.wire_status["phase"] == "Succeeded"


def test_run_history_is_bounded():
    policy = OperatorSettings(run_history=2)
    obj = body()
    for lr in (0.1, 0.2, 0.3):
        obj["spec"]["training"] = {"learningRate": lr}
        obj = applied(obj, decide(Observed(obj, now="T"), policy))
    assert len(obj["status"]["runs"]) == 2


def test_settings_from_env():
    s = OperatorSettings.from_env({"GEMMAFT_NAMESPACES": "a, b", "GEMMAFT_RUN_HISTORY": "3",
                                   "GEMMAFT_ALLOWED_IMAGE_PREFIXES": "x/,y/", "GEMMAFT_LOG_FORMAT": "plain"})
    assert s.namespaces == ("a", "b") and s.run_history == 3 and s.image_allowed("y/z") and not s.image_allowed("z")
    assert OperatorSettings.from_env({}).health_port == 8080
    with pytest.raises(ValueError, match="GEMMAFT_RUN_HISTORY"):
        OperatorSettings.from_env({"GEMMAFT_RUN_HISTORY": "0"})
    with pytest.raises(ValueError, match="GEMMAFT_LOG_FORMAT"):
        OperatorSettings.from_env({"GEMMAFT_LOG_FORMAT": "xml"})


def conds(decision):
    return {c["type"]: c for c in decision.wire_status["conditions"]}


def failed_job(job, reason="BackoffLimitExceeded"):
    out = copy.deepcopy(job)
    out["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": reason,
                                     "message": "Job has reached the specified backoff limit"}]}
    return out


def test_a_failed_run_is_not_ready_and_is_stalled():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    assert conds(d0)["Ready"]["status"] == "False" and conds(d0)["Reconciling"]["status"] == "True"
    job = job_of(d0)
    d1 = decide(Observed(applied(obj, d0), jobs=[failed_job(job)], now="T1"), POLICY)
    c = conds(d1)
    assert d1.wire_status["phase"] == "Failed" and c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "True"
    assert c["Reconciling"]["status"] == "False" and c["Failed"]["status"] == "True"
    running = decide(Observed(applied(obj, d0), jobs=[job], pods=[pod(job, "p")], now="T1"), POLICY)
    assert conds(running)["Ready"]["status"] == "True" and conds(running)["Stalled"]["status"] == "False"


@pytest.mark.parametrize(("reason", "fix"), [("BackoffLimitExceeded", "kubectl logs job/"),
                                              ("DeadlineExceeded", "spec.runPolicy.activeDeadlineSeconds")])
def test_a_failed_job_says_the_fix(reason, fix):
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    d1 = decide(Observed(applied(obj, d0), jobs=[failed_job(job_of(d0), reason)], now="T1"), POLICY)
    assert conds(d1)["Failed"]["reason"] == reason and "Fix: " in d1.wire_status["message"] and fix in d1.wire_status["message"]


def test_a_job_deleted_right_after_it_failed_is_judged_from_its_last_state_never_recreated():
    obj = body(runPolicy={"ttlSecondsAfterFinished": 0})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    last = [pod(job, "p", "Failed", exit_code=137, reason="OOMKilled")]
    d1 = decide(Observed(applied(obj, d0), gone_jobs=[failed_job(job)], gone_pods=last, now="T1"), POLICY)
    assert d1.create == [] and d1.wire_status["phase"] == "Failed" and d1.results == ["failed"]
    assert conds(d1)["Failed"]["reason"] == "OOMKilled" and "limits.memory" in d1.wire_status["message"]
    again = decide(Observed(applied(obj, d1), now="T2"), POLICY)  # tombstones expired too
    assert again.create == [] and again.events == [] and again.wire_status["phase"] == "Failed"


def test_a_recorded_job_not_in_the_cache_waits_if_just_created_else_is_judged_vanished():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    name = job_of(d0)["metadata"]["name"]
    waiting = decide(Observed(applied(obj, d0), awaited=frozenset({name}), now="T1"), POLICY)
    assert waiting.create == [] and waiting.wire_status["phase"] == "Pending"
    vanished = decide(Observed(applied(obj, d0), now="T1"), POLICY)  # e.g. deleted during an operator outage
    assert vanished.create == [] and vanished.wire_status["phase"] == "Failed"
    assert conds(vanished)["Failed"]["reason"] == "JobVanished" and "gemmaft.dev/retry" in vanished.wire_status["message"]


def test_a_watched_job_deleted_before_it_finished_is_stalled_and_says_the_retry_command():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    d1 = decide(Observed(applied(obj, d0), gone_jobs=[job], gone_pods=[pod(job, "p")], now="T1"), POLICY)
    assert d1.create == [] and d1.wire_status["phase"] == "Failed" and conds(d1)["Failed"]["reason"] == "JobDeleted"
    assert conds(d1)["Stalled"]["status"] == "True"
    assert "kubectl annotate gemmafinetune demo gemmaft.dev/retry=$(date +%s) --overwrite" in d1.wire_status["message"]


def test_a_crashed_host_restarts_the_slice_and_counts_one_failure_until_the_backoff_limit():
    obj = body(accelerator={"type": "tpu-v3", "topology": "4x4"}, runPolicy={"backoffLimit": 1})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    assert job["spec"]["backoffLimit"] == 0  # the first lost host fails the whole Job
    crashed = [pod(job, f"h{i}") for i in range(3)] + [pod(job, "h3", "Failed", exit_code=1)]
    d1 = decide(Observed(applied(obj, d0), jobs=[failed_job(job)], pods=crashed, now="T1"), POLICY)
    job1 = job_of(d1)
    assert d1.wire_status["attempt"] == 1 and d1.wire_status["restarts"]["failures"] == 1
    assert job1["metadata"]["annotations"]["gemmaft.dev/failures-before"] == "1"
    assert [e.reason for e in d1.events] == ["SliceRestart"] and d1.events[0].type == "Warning"
    crashed1 = [pod(job1, "g0", "Failed", exit_code=1)]
    d2 = decide(Observed(applied(obj, d1), jobs=[failed_job(job1)], pods=crashed1, now="T2"), POLICY)
    assert d2.create == [] and d2.wire_status["phase"] == "Failed" and d2.wire_status["restarts"]["failures"] == 2
    assert conds(d2)["Failed"]["reason"] == "BackoffLimitExceeded" and "backoffLimit 1" in d2.wire_status["message"]


@pytest.mark.parametrize(("state", "reason", "stalled"), [
    ({"containerStatuses": [{"name": "trainer", "state": {"waiting": {
        "reason": "ErrImagePull", "message": "manifest unknown"}}}]}, "ErrImagePull", True),
    ({"containerStatuses": [{"name": "trainer", "state": {"waiting": {
        "reason": "CreateContainerConfigError", "message": 'secret "hf" not found'}}}]},
     "CreateContainerConfigError", True),
    ({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/2 nodes are available: 2 node(s) didn't match node selector."}]},
     "Unschedulable", False),
])
def test_pod_problems_name_the_cause_and_the_fix(state, reason, stalled):
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    stuck = pod(job, "p", "Pending")
    stuck["status"].update(state)
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=[stuck], now="T1"), POLICY)
    c = conds(d1)
    assert d1.wire_status["phase"] == "Pending" and c["Ready"]["reason"] == reason and "Fix:" in c["Ready"]["message"]
    assert c["Stalled"]["status"] == ("True" if stalled else "False")
    assert c["Reconciling"]["status"] == ("False" if stalled else "True")
    assert [e.reason for e in d1.events] == [reason]


def test_retry_annotation_starts_the_next_attempt_of_a_failed_run_once():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    failed = applied(obj, decide(Observed(applied(obj, d0), jobs=[failed_job(job)], now="T1"), POLICY))
    assert failed["status"]["phase"] == "Failed"
    failed["metadata"]["annotations"] = {"gemmaft.dev/retry": "1"}
    d2 = decide(Observed(failed, jobs=[failed_job(job)], now="T2"), POLICY)
    assert job_of(d2)["metadata"]["name"] == job["metadata"]["name"] + "-a1" and d2.wire_status["attempt"] == 1
    assert d2.wire_status["retry"] == "1" and d2.wire_status["phase"] == "Pending" and "Retry" in {e.reason for e in d2.events}
    d3 = decide(Observed(applied(failed, d2), jobs=[failed_job(job), job_of(d2)], now="T3"), POLICY)
    assert d3.create == [] and ("Job", job["metadata"]["name"]) in d3.delete  # the same token: nothing new


def test_service_accounts_come_from_the_operators_allow_list():
    d = decide(Observed(body(pod={"serviceAccountName": "cluster-admin-sa"}), now="T0"), POLICY)
    assert d.create == [] and conds(d)["Ready"]["reason"] == "ServiceAccountNotAllowed"
    assert "spec.pod.serviceAccountName" in d.wire_status["message"] and "gemma-trainer" in d.wire_status["message"]
    policy = OperatorSettings(allowed_service_accounts=("gemma-trainer", "team-a-trainer"))
    ok = decide(Observed(body(pod={"serviceAccountName": "team-a-trainer"}), now="T0"), policy)
    assert job_of(ok)["spec"]["template"]["spec"]["serviceAccountName"] == "team-a-trainer"


def test_a_job_that_cannot_create_pods_says_why_from_its_failed_create_event():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    why = ('pods "demo-x" is forbidden: error looking up service account default/gemma-trainer: '
           'serviceaccount "gemma-trainer" not found')
    d1 = decide(Observed(applied(obj, d0), jobs=[job], job_problems={job["metadata"]["name"]: why}, now="T1"),
                POLICY)
    ready = conds(d1)["Ready"]
    assert ready["reason"] == "ServiceAccountNotFound" and "gemma-trainer" in ready["message"]
    assert conds(d1)["Stalled"]["status"] == "True" and d1.create == []
    # Once a pod exists the Event is history.
    d2 = decide(Observed(applied(obj, d1), jobs=[job], pods=[pod(job, "p")],
                         job_problems={job["metadata"]["name"]: why}, now="T2"), POLICY)
    assert d2.wire_status["phase"] == "Running" and conds(d2)["Stalled"]["status"] == "False"


def test_seeing_the_created_job_costs_no_write():
    """Writes to Pending stay at 4 (ConfigMap, Job, status, one Event): the Job's own watch event changes nothing."""
    from gemma_operator.runtime.reconciler import status_patch

    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    seen = decide(Observed(applied(obj, d0), jobs=[job_of(d0)], now="T1"), POLICY)
    assert seen.create == [] and seen.events == [] and seen.patch_jobs == []
    assert status_patch(applied(obj, d0)["status"], seen.wire_status) == {}


def test_a_finished_pod_before_its_job_completes_is_no_step_back_to_pending():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    running = decide(Observed(applied(obj, d0), jobs=[job], pods=[pod(job, "p")], now="T1"), POLICY)
    done = decide(Observed(applied(obj, running), jobs=[job], pods=[pod(job, "p", "Succeeded", exit_code=0)],
                           now="T2"), POLICY)
    assert done.wire_status["phase"] == "Running" and done.events == []


def test_a_preempted_slice_counts_one_preemption_however_many_hosts_the_job_controller_stopped():
    obj = body(accelerator={"type": "tpu-v3", "topology": "4x4", "spot": True})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    lost = [pod(job, "h0", "Failed", exit_code=143, disrupted=True)] + [
        pod(job, f"h{i}", "Failed", exit_code=143) for i in range(1, 4)]  # SIGTERMed when the Job failed
    d1 = decide(Observed(applied(obj, d0), jobs=[failed_job(job)], pods=lost, now="T1"), POLICY)
    assert d1.wire_status["restarts"] == {"preemptions": 1, "failures": 0, "sliceRestarts": 1}


def test_only_a_running_trainer_is_polled():
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    running = decide(Observed(applied(obj, d0), jobs=[job], pods=[pod(job, "p")], now="T1"), POLICY)
    assert (d0.active, running.active) == (False, True)  # Pending changes only through watched objects
    done = decide(Observed(applied(obj, running), jobs=[{**job, "status": {"conditions": [
        {"type": "Complete", "status": "True"}]}}], now="T2"), POLICY)
    assert done.active is False

"""Preemptions, slice restarts, trainer failures, suspend and resume."""

from __future__ import annotations

import time

import pytest
from gemma_api import parse_finetune, run_id

from tests.conftest import manifest

from .harness import active_pods, apply, wait_for, write_progress
from .test_lifecycle import conditions, ft_status, phase_is

pytestmark = pytest.mark.slow


def test_preempted_pod_is_counted_replaced_and_the_run_completes(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(accelerator={"type": "nvidia-tesla-t4", "spot": True}))
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (first,) = active_pods(cluster, job)
    cluster.preempt_pod(first["metadata"]["name"])
    status = wait_for(lambda: ft_status(cluster)["restarts"]["preemptions"] == 1 and ft_status(cluster),
                      what="preemption counted")
    assert status["restarts"]["failures"] == 0 and status["attempt"] == 0
    (second,) = wait_for(lambda: active_pods(cluster, job), what="replacement pod")
    assert second["metadata"]["name"] != first["metadata"]["name"]
    cluster.succeed_pod(second["metadata"]["name"])
    done = wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    assert done["restarts"]["preemptions"] == 1 and len(cluster.list("Job")) == 1
    assert "Preempted" in {e["reason"] for e in cluster.events_for("demo")}
    assert "gemmaft_preemptions_total 1.0" in operator.metrics()


def test_multi_host_slice_restarts_as_a_whole(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(model="gemma-2-2b", accelerator={"type": "tpu-v3", "topology": "4x4", "spot": True}))
    status = wait_for(phase_is(cluster, "Running"), what="Running")
    job0 = status["jobName"]
    pods = wait_for(lambda: len(active_pods(cluster, job0)) == 4 and active_pods(cluster, job0), what="4 hosts")
    assert cluster.list("Service") and cluster.get("Job", job0)["spec"]["completionMode"] == "Indexed"
    cluster.preempt_pod(pods[2]["metadata"]["name"])
    status = wait_for(lambda: ft_status(cluster).get("attempt") == 1 and ft_status(cluster), what="attempt 1")
    job1 = status["jobName"]
    assert job1 == f"{job0}-a1" and status["restarts"]["sliceRestarts"] == 1
    assert status["restarts"]["preemptions"] == 1
    wait_for(lambda: cluster.get("Job", job0) is None and not cluster.pods_of(job0), what="old slice gone")
    new_pods = wait_for(lambda: len(active_pods(cluster, job1)) == 4 and active_pods(cluster, job1), what="new slice")
    assert {p["metadata"]["labels"]["gemmaft.dev/attempt"] for p in new_pods} == {"1"}
    for pod in new_pods:
        cluster.succeed_pod(pod["metadata"]["name"])
    done = wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    assert done["restarts"] == {"preemptions": 1, "failures": 0, "sliceRestarts": 1}
    assert [j["metadata"]["name"] for j in cluster.list("Job")] == [job1]
    assert "SliceRestart" in {e["reason"] for e in cluster.events_for("demo")}


def test_exit_code_2_fails_the_run_at_once(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest())
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = active_pods(cluster, job)
    cluster.fail_pod(pod["metadata"]["name"], exit_code=2)
    status = wait_for(phase_is(cluster, "Failed"), what="Failed")
    assert conditions(status)["Failed"]["reason"] == "InvalidInput"
    assert status["restarts"]["failures"] == 1
    assert "Failed" in {e["reason"] for e in cluster.events_for("demo") if e["type"] == "Warning"}
    time.sleep(1.0)
    assert len(cluster.list("Job")) == 1


def test_suspend_and_resume(cluster, kubeconfig, operator):
    obj = manifest()
    apply(kubeconfig, obj)
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    obj["spec"]["runPolicy"] = {"suspend": True}
    apply(kubeconfig, obj)
    status = wait_for(phase_is(cluster, "Suspended"), what="Suspended")
    assert cluster.get("Job", job)["spec"]["suspend"] is True and status["jobName"] == job
    wait_for(lambda: not active_pods(cluster, job), what="pods stopped")
    obj["spec"]["runPolicy"] = {"suspend": False}
    apply(kubeconfig, obj)
    wait_for(phase_is(cluster, "Running"), what="Running again")
    assert cluster.get("Job", job)["spec"]["suspend"] is False and len(cluster.list("Job")) == 1


def test_with_a_kueue_queue_the_job_is_created_suspended_and_left_to_kueue(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(pod={"queueName": "team-a"}))
    status = wait_for(lambda: ft_status(cluster).get("jobName") and ft_status(cluster), what="Job")
    job = cluster.get("Job", status["jobName"])
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    time.sleep(1.0)
    assert ft_status(cluster)["phase"] == "Pending"
    assert cluster.requests("PATCH", "Job") == 0  # admission is Kueue's: the operator never flips suspend


def test_non_finite_loss_fails_the_run_at_once_with_the_trainers_message(cluster, kubeconfig, operator, bucket):
    """The trainer's guard stopped on a NaN loss: progress.json says failed (with the step and value) and the pod
    exits 3. The Job fails at once (podFailurePolicy FailJob: the same arithmetic fails the same way) and the run
    is Failed with reason NonFiniteLoss and the trainer's words, never Succeeded, never a loss of 0."""
    obj = manifest(output={"uri": f"gs://{bucket.name}/runs"})
    rid = run_id(parse_finetune(obj).spec)
    apply(kubeconfig, obj)
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    message = "step 3: the training loss is nan; stopped without committing this state. Likely cause: ..."
    write_progress(bucket, f"runs/{rid}", state="failed", step=3, totalSteps=10, loss=None, message=message)
    (pod,) = active_pods(cluster, job)
    cluster.fail_pod(pod["metadata"]["name"], exit_code=3)
    status = wait_for(phase_is(cluster, "Failed"), what="Failed")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "NonFiniteLoss" and message in failed["message"]
    assert conditions(status)["Ready"]["status"] == "False"
    assert status["restarts"]["failures"] == 1 and status["progress"].get("loss") is None
    job_failed = {c["type"]: c for c in cluster.get("Job", job)["status"].get("conditions") or []}["Failed"]
    assert job_failed["reason"] == "PodFailurePolicy"
    assert "Failed" in {e["reason"] for e in cluster.events_for("demo") if e["type"] == "Warning"}
    time.sleep(1.0)
    assert len(cluster.list("Job")) == 1  # not retried

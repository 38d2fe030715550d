"""Runs as a real cluster runs them: TTL-deleted Jobs, whole-slice restarts, live runPolicy edits, retries.

Every wait is on a status the operator writes (conditions, attempt, counters), never on a fixed sleep, except
where a test proves that nothing more happens.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import manifest

from .harness import active_pods, apply, kubectl, wait_for
from .test_lifecycle import conditions, ft_status, phase_is

pytestmark = pytest.mark.slow


def test_ttl_zero_ends_failed_once_and_never_recreates_the_job(cluster, kubeconfig, operator):
    """Before: the Job was deleted before its failure was seen; the operator re-created it forever (Pending)."""
    apply(kubeconfig, manifest(runPolicy={"ttlSecondsAfterFinished": 0, "backoffLimit": 0}))
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = active_pods(cluster, job)
    cluster.fail_pod(pod["metadata"]["name"], exit_code=1)
    status = wait_for(phase_is(cluster, "Failed"), what="Failed")
    conds = conditions(status)
    assert conds["Ready"]["status"] == "False" and conds["Stalled"]["status"] == "True"
    assert conds["Failed"]["status"] == "True" and conds["Reconciling"]["status"] == "False"
    assert status["job"]["name"] == job and status["job"]["uid"]
    wait_for(lambda: cluster.get("Job", job) is None, what="TTL removed the Job")
    time.sleep(1.5)  # three poll intervals: nothing may come back
    assert cluster.list("Job") == [] and cluster.requests("POST", "Job") == 1
    assert ft_status(cluster)["phase"] == "Failed"
    failed_events = [e for e in cluster.events_for("demo") if e["reason"] == "Failed"]
    assert len(failed_events) == 1 and failed_events[0]["type"] == "Warning"
    # What docs/operations.md tells users to run: kubectl waits on the conditions.
    waited = kubectl(kubeconfig, "wait", "gemmafinetune/demo", "--for=condition=Failed", "--timeout=20s")
    assert "condition met" in waited.stdout
    not_ready = kubectl(kubeconfig, "wait", "gemmafinetune/demo", "--for=condition=Ready", "--timeout=1s", check=False)
    assert not_ready.returncode != 0


def test_ttl_zero_success_ends_succeeded(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(runPolicy={"ttlSecondsAfterFinished": 0}))
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = active_pods(cluster, job)
    cluster.succeed_pod(pod["metadata"]["name"])
    waited = kubectl(kubeconfig, "wait", "gemmafinetune/demo", "--for=condition=Succeeded", "--timeout=30s")
    assert "condition met" in waited.stdout
    status = ft_status(cluster)
    assert status["phase"] == "Succeeded" and conditions(status)["Ready"]["status"] == "True"
    wait_for(lambda: cluster.get("Job", job) is None, what="TTL removed the Job")
    time.sleep(1.0)
    assert cluster.requests("POST", "Job") == 1 and ft_status(cluster)["phase"] == "Succeeded"


def test_a_crashed_host_restarts_the_whole_slice_and_spends_the_backoff_limit(cluster, kubeconfig, operator):
    """Before: only the crashed index was replaced while the other hosts waited in collectives."""
    apply(kubeconfig, manifest(model="gemma-2-2b", accelerator={"type": "tpu-v3", "topology": "4x4"},
                               runPolicy={"backoffLimit": 1}))
    job0 = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    pods = wait_for(lambda: len(active_pods(cluster, job0)) == 4 and active_pods(cluster, job0), what="4 hosts")
    cluster.fail_pod(pods[1]["metadata"]["name"], exit_code=1)
    status = wait_for(lambda: ft_status(cluster).get("attempt") == 1 and ft_status(cluster), what="attempt 1")
    job1 = status["jobName"]
    assert job1 == f"{job0}-a1" and status["restarts"]["failures"] == 1 and status["restarts"]["preemptions"] == 0
    wait_for(lambda: cluster.get("Job", job0) is None and not active_pods(cluster, job0), what="old slice gone")
    pods = wait_for(lambda: len(active_pods(cluster, job1)) == 4 and active_pods(cluster, job1), what="new slice")
    cluster.fail_pod(pods[3]["metadata"]["name"], exit_code=1)
    status = wait_for(phase_is(cluster, "Failed"), what="Failed after backoffLimit")
    assert status["restarts"]["failures"] == 2 and status["attempt"] == 1
    assert conditions(status)["Failed"]["reason"] == "BackoffLimitExceeded"
    time.sleep(1.0)
    assert cluster.requests("POST", "Job") == 2


def test_run_policy_edits_reach_the_live_job_and_pod_edits_wait_for_the_next_attempt(cluster, kubeconfig, operator):
    """Before: observedGeneration advanced and nothing changed."""
    obj = manifest()
    apply(kubeconfig, obj)
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    obj["spec"]["runPolicy"] = {"backoffLimit": 5, "activeDeadlineSeconds": 7200, "ttlSecondsAfterFinished": 600}
    obj["spec"]["pod"] = {"labels": {"cost-center": "42"}}
    apply(kubeconfig, obj)
    wait_for(lambda: cluster.get("Job", job)["spec"].get("backoffLimit") == 5, what="backoffLimit on the Job")
    live = cluster.get("Job", job)["spec"]
    assert live["activeDeadlineSeconds"] == 7200 and live["ttlSecondsAfterFinished"] == 600
    status = wait_for(lambda: ft_status(cluster).get("observedGeneration") == 2 and ft_status(cluster),
                      what="generation 2")
    updates = {u["field"]: u for u in status["updates"]}
    assert updates["spec.runPolicy"]["appliedTo"] == "Job"
    assert updates["spec.pod"]["appliedTo"] == "NextAttempt" and "next attempt" in updates["spec.pod"]["message"]
    assert status["phase"] == "Running" and status["attempt"] == 0 and cluster.requests("POST", "Job") == 1


def test_retry_annotation_starts_a_new_attempt_of_a_failed_run(cluster, kubeconfig, operator):
    """Before: a Failed run could only be retried by changing a training field."""
    apply(kubeconfig, manifest())
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = active_pods(cluster, job)
    cluster.fail_pod(pod["metadata"]["name"], exit_code=2)
    failed = wait_for(phase_is(cluster, "Failed"), what="Failed")
    kubectl(kubeconfig, "annotate", "gemmafinetunes.gemmaft.dev", "demo", "gemmaft.dev/retry=first")
    status = wait_for(lambda: ft_status(cluster).get("attempt") == 1 and ft_status(cluster).get("phase") in (
        "Pending", "Running") and ft_status(cluster), what="retried attempt")
    assert status["runId"] == failed["runId"] and status["jobName"] == f"{job}-a1"
    assert status["restarts"]["failures"] == 0 and status["retry"] == "first"
    status = wait_for(phase_is(cluster, "Running"), what="Running again")
    assert conditions(status)["Ready"]["status"] == "True" and conditions(status)["Failed"]["status"] == "False"
    assert "Retry" in {e["reason"] for e in cluster.events_for("demo")}
    # The same token again does nothing; the retried attempt runs to the end.
    (pod,) = active_pods(cluster, status["jobName"])
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    assert cluster.requests("POST", "Job") == 2

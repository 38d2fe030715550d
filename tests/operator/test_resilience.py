"""Operator restarts at several points of a reconcile, and an API that answers 409, 429 and 500."""

from __future__ import annotations

import time

import pytest
from gemma_api import parse_finetune, run_id

from tests.conftest import manifest

from .harness import apply, wait_for
from .test_lifecycle import ft_status, phase_is

pytestmark = pytest.mark.slow


def jobs_named(cluster):
    return sorted(j["metadata"]["name"] for j in cluster.list("Job"))


def test_killed_operator_at_several_points_makes_exactly_one_job_per_run(cluster, kubeconfig, operator_factory):
    op = operator_factory()
    rid = run_id(parse_finetune(manifest()).spec)
    # 1. Killed after the ConfigMap, before the Job exists (Job creation keeps failing).
    cluster.inject("POST", "Job", 500, times=None)
    op.start()
    apply(kubeconfig, manifest())
    wait_for(lambda: cluster.get("ConfigMap", f"demo-{rid}-config"), what="ConfigMap")
    wait_for(lambda: cluster.requests("POST", "Job") >= 1, what="a refused Job creation")
    op.kill()
    cluster.clear_faults()
    assert jobs_named(cluster) == []
    # 2. Killed after the Job was created but before the status says so (the status write keeps failing).
    cluster.inject("PATCH", "GemmaFineTune", 500, times=None, subresource="status")
    op.start()
    wait_for(lambda: jobs_named(cluster), what="Job")
    time.sleep(0.5)
    op.kill()
    cluster.clear_faults()
    assert ft_status(cluster) == {}
    # 3. A fresh operator converges on the Job that exists; killed again while running, then restarted.
    op.start()
    status = wait_for(phase_is(cluster, "Running"), what="Running")
    op.kill()
    op.start()
    (pod,) = [p for p in cluster.pods_of(status["jobName"]) if p["status"]["phase"] == "Running"]
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    assert jobs_named(cluster) == [f"demo-{rid}"]
    assert cluster.requests("POST", "Job") >= 2  # the restarted operators did try, and found it existing


def test_a_slice_restart_interrupted_by_a_crash_still_gives_one_slice(cluster, kubeconfig, operator_factory):
    op = operator_factory().start()
    apply(kubeconfig, manifest(accelerator={"type": "tpu-v3", "topology": "4x4"}))
    job0 = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    pods = wait_for(lambda: len(cluster.pods_of(job0)) == 4 and cluster.pods_of(job0), what="4 hosts")
    cluster.inject("DELETE", "Job", 500, times=None)  # crash between creating attempt 1 and deleting attempt 0
    cluster.preempt_pod(pods[0]["metadata"]["name"])
    wait_for(lambda: cluster.get("Job", f"{job0}-a1"), what="attempt 1")
    op.kill()
    cluster.clear_faults()
    op.start()
    wait_for(lambda: jobs_named(cluster) == [f"{job0}-a1"], what="only attempt 1 left")
    status = wait_for(lambda: ft_status(cluster).get("attempt") == 1 and ft_status(cluster), what="status attempt 1")
    assert status["restarts"]["sliceRestarts"] == 1 and status["restarts"]["preemptions"] == 1, status["restarts"]


def test_an_event_whose_answer_was_lost_is_posted_exactly_once(cluster, kubeconfig, operator_factory):
    """Events have deterministic names: the API stored the Event but its answer was lost; the repeat finds it
    (409) instead of posting a second one, and a restarted operator posts nothing again."""
    op = operator_factory()
    lost = cluster.inject("POST", "Event", 500, times=1, apply=True)
    op.start()
    apply(kubeconfig, manifest(runPolicy={"suspend": True}))  # no pods: the observation stays the same
    wait_for(phase_is(cluster, "Suspended"), what="Suspended")
    assert lost.seen == 1
    op.kill()
    op.start()
    wait_for(lambda: op.healthy(), what="restarted operator")
    time.sleep(1.0)
    assert [e["reason"] for e in cluster.events_for("demo")] == ["Suspended"]


@pytest.mark.parametrize("status_code", [409, 429, 500])
def test_api_errors_are_retried_and_the_operator_converges(cluster, kubeconfig, operator_factory, status_code):
    # Lost answers: the request takes effect but the operator sees an error, then more errors on reads and writes.
    cluster.inject("POST", "Job", status_code if status_code != 409 else 500, times=2, apply=True)
    cluster.inject("POST", "ConfigMap", status_code, times=2, apply=status_code == 409)
    read_code = 500 if status_code == 409 else status_code  # the API answers 409 to writes only
    cluster.inject("GET", "Job", read_code, times=3)
    cluster.inject("PATCH", "GemmaFineTune", status_code, times=3, subresource="status")
    operator_factory().start()
    apply(kubeconfig, manifest())
    status = wait_for(phase_is(cluster, "Running"), timeout=40, what="Running despite errors")
    assert len(cluster.list("Job")) == 1 and status["jobName"] == jobs_named(cluster)[0]
    (pod,) = cluster.pods_of(status["jobName"])
    cluster.inject("GET", "GemmaFineTune", read_code, times=2)
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), timeout=40, what="Succeeded despite errors")
    assert len(cluster.list("Job")) == 1
    # Failed status writes were repeated: each transition's Event still exists exactly once.
    reasons = wait_for(lambda: "Succeeded" in {e["reason"] for e in cluster.events_for("demo")} and [
        e["reason"] for e in cluster.events_for("demo")], what="Succeeded Event")
    assert sorted(reasons) == ["JobCreated", "Running", "Succeeded"], reasons

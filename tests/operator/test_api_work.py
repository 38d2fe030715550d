"""What the operator asks of the API server: reads from its watch-fed cache, nothing while runs are finished,
Events posted from anywhere, and pod problems turned into conditions."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import manifest

from .harness import apply, wait_for
from .test_lifecycle import conditions, ft_status, phase_is

pytestmark = pytest.mark.slow

def operator_requests(cluster, since: int = 0) -> list:
    """Requests after request number ``since`` that kubectl did not make: the operator's (the test itself talks
    to the emulator directly, not over HTTP)."""
    def pick():
        return [r for r in cluster.emulator._requests[since:]
                if not str(r.headers.get("User-Agent", "")).startswith("kubectl")]
    return cluster._sync(pick)


def by_action(requests) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in requests:
        out[str(r.action)] = out.get(str(r.action), 0) + 1
    return out


def request_count(cluster) -> int:
    return cluster._sync(lambda: len(cluster.emulator._requests))


def settle(cluster, quiet: float = 1.0, timeout: float = 20.0) -> None:
    """Wait until the operator made no request other than its watches for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mark = request_count(cluster)
        time.sleep(quiet)
        if not [r for r in operator_requests(cluster, mark) if str(r.action) != "watch"]:
            return
    raise AssertionError(f"the operator kept making requests for {timeout}s")


def test_reconciles_read_from_the_cache_and_finished_runs_cost_nothing(cluster, kubeconfig, operator):
    """Before: every reconcile LISTed Jobs and Pods, and every fine-tune was re-read every interval forever."""
    apply(kubeconfig, manifest())
    wait_for(phase_is(cluster, "Running"), what="Running")
    start = request_count(cluster)  # watches are up: from here on no LIST at all
    job = ft_status(cluster)["jobName"]
    (pod,) = cluster.pods_of(job)
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    during = operator_requests(cluster, start)
    lists = [r for r in during if str(r.action) == "list"]
    assert lists == [], [(str(r.resource), r.params) for r in lists]
    gets = [r for r in during if str(r.action) == "fetch"]
    assert all(r.name == "demo" for r in gets), [str(r.resource) for r in gets]  # only the fine-tune itself
    wait_for(lambda: "Succeeded" in {e["reason"] for e in cluster.events_for("demo")}, what="Succeeded Event")
    settle(cluster)  # the last watch events (Job and pod updates after Succeeded) are reconciled
    idle_from = request_count(cluster)
    time.sleep(2.0)  # four poll intervals of 0.5 s
    idle = [r for r in operator_requests(cluster, idle_from) if str(r.action) != "watch"]
    assert idle == [], by_action(idle)


def test_events_are_posted_outside_kopf_handlers_and_once_per_transition(cluster, kubeconfig, operator):
    """Before: the periodic re-read ran outside kopf's context and lost its Events (LookupError)."""
    from gemma_operator.runtime.events import EventPoster
    from gemma_operator.runtime.kube import Kube

    body = {"apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
            "metadata": {"name": "x", "namespace": "default", "uid": "u-1"}}

    async def post():
        import kubernetes

        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        poster = EventPoster(Kube(client))
        await poster.post(body, "Normal", "Tested", "posted from a plain task")
        await poster.post(body, "Normal", "Tested", "posted from a plain task")  # a repeat: "exists" is done

    asyncio.run(post())
    (event,) = cluster.events_for("x")
    assert event["reason"] == "Tested" and event["involvedObject"]["uid"] == "u-1"

    apply(kubeconfig, manifest())
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = cluster.pods_of(job)
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    reasons = wait_for(lambda: "Succeeded" in {e["reason"] for e in cluster.events_for("demo")} and [
        e["reason"] for e in cluster.events_for("demo")], what="Succeeded Event")
    time.sleep(1.0)
    reasons = sorted(e["reason"] for e in cluster.events_for("demo"))
    assert reasons == ["JobCreated", "Running", "Succeeded"], reasons
    metrics = operator.metrics()
    assert 'gemmaft_runs_finished_total{result="succeeded"} 1.0' in metrics
    assert "gemmaft_reconcile_errors_total 0.0" in metrics


def _set_pod_status(cluster, name, status):
    cluster.call(cluster.emulator.set_pod_status("default", name, status))


@pytest.mark.parametrize(("status", "reason", "says"), [
    ({"phase": "Pending", "containerStatuses": [{"name": "trainer", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "gemmaft-trainer-gpu:0.1.0"'}}}]},
     "ImagePullBackOff", "gemmaft-trainer-gpu:0.1.0"),
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]},
     "Unschedulable", "3 Insufficient nvidia.com/gpu"),
])
def test_pod_problems_become_conditions_a_user_can_act_on(cluster, kubeconfig, operator, status, reason, says):
    """Before: every one of these read "waits for its pods to be scheduled"."""
    apply(kubeconfig, manifest())
    job = wait_for(lambda: ft_status(cluster).get("jobName"), what="Job")
    (pod,) = wait_for(lambda: cluster.pods_of(job), what="pod")
    _set_pod_status(cluster, pod["metadata"]["name"], status)
    got = wait_for(lambda: conditions(ft_status(cluster)).get("Ready", {}).get("reason") == reason and ft_status(
        cluster), what=reason)
    ready = conditions(got)["Ready"]
    assert ready["status"] == "False" and says in ready["message"] and pod["metadata"]["name"] in ready["message"]
    assert got["phase"] == "Pending"


def test_a_missing_service_account_is_reported_from_the_job_controllers_event(cluster, kubeconfig, operator_factory):
    """Before: a Job whose pods admission refused read "waits for its pods to be scheduled"."""
    from gemma_operator.local import cluster as local_cluster

    if "ServiceAccount" not in getattr(local_cluster, "RESOURCES", {}):
        pytest.skip("this local cluster layer does not refuse pods of a missing ServiceAccount yet (#12b)")
    operator_factory(GEMMAFT_ALLOWED_SERVICE_ACCOUNTS="gemma-trainer,team-trainer").start()
    apply(kubeconfig, manifest(pod={"serviceAccountName": "team-trainer"}))
    got = wait_for(lambda: conditions(ft_status(cluster)).get("Ready", {}).get("reason") == "ServiceAccountNotFound"
                   and ft_status(cluster), what="ServiceAccountNotFound")
    assert 'serviceaccount "team-trainer" not found' in conditions(got)["Ready"]["message"]
    assert conditions(got)["Stalled"]["status"] == "True" and got["phase"] == "Pending"

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
    wait_for(lambda: "Succeeded" in {e["reason"] for e in cluster.events_for("demo")}, what="Succeeded Event")
    time.sleep(1.0)
    events = cluster.events_for("demo")
    reasons = sorted(e["reason"] for e in events)
    assert reasons == ["JobCreated", "Running", "Succeeded"], "\n".join(
        f"{e['metadata']['name']} {e['reason']}: {e['message']}" for e in events)
    metrics = operator.metrics()
    assert 'gemmaft_runs_finished_total{result="succeeded"} 1.0' in metrics
    assert "gemmaft_reconcile_errors_total 0.0" in metrics


def _no_gpu_nodes(cluster):
    from gemma_local.cluster import NodePool

    cluster.set_node_pools([NodePool("cpu-pool", nodes=3)])


@pytest.mark.parametrize(("setup", "spec", "reasons", "says", "stalled"), [
    (lambda c: c.fail_image_pull("gemmaft-trainer-gpu"), {}, ("ErrImagePull", "ImagePullBackOff"),
     "gemmaft-trainer-gpu:0.1.0", True),
    (_no_gpu_nodes, {}, ("Unschedulable",), "0/3 nodes are available", False),
    (lambda c: None, {"pod": {"hfTokenSecretRef": {"name": "hf-missing"}}}, ("CreateContainerConfigError",),
     'secret "hf-missing" not found', True),
], ids=["image-pull", "unschedulable", "missing-secret"])
def test_pod_problems_become_conditions_a_user_can_act_on(cluster, kubeconfig, operator, setup, spec, reasons, says,
                                                         stalled):
    """Before: every one of these read "waits for its pods to be scheduled"."""
    setup(cluster)
    apply(kubeconfig, manifest(**spec))
    got = wait_for(lambda: conditions(ft_status(cluster)).get("Ready", {}).get("reason") in reasons and ft_status(
        cluster), what=" or ".join(reasons))
    ready = conditions(got)["Ready"]
    (pod,) = cluster.pods_of(got["jobName"])
    assert ready["status"] == "False" and says in ready["message"] and pod["metadata"]["name"] in ready["message"]
    assert "Fix:" in ready["message"] and got["phase"] == "Pending"
    assert conditions(got)["Stalled"]["status"] == ("True" if stalled else "False")


def test_an_oom_killed_trainer_fails_the_run_with_the_reason_and_the_fix(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(runPolicy={"backoffLimit": 0}))
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    (pod,) = cluster.pods_of(job)
    cluster.oom(pod["metadata"]["name"])
    status = wait_for(phase_is(cluster, "Failed"), what="Failed")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "OOMKilled" and pod["metadata"]["name"] in failed["message"]
    assert "spec.pod.resources.limits.memory" in failed["message"]


def test_a_missing_service_account_is_reported_from_the_job_controllers_event(cluster, kubeconfig, operator_factory):
    """Before: a Job whose pods admission refused read "waits for its pods to be scheduled"."""
    operator_factory(GEMMAFT_ALLOWED_SERVICE_ACCOUNTS="gemma-trainer,team-trainer").start()
    apply(kubeconfig, manifest(pod={"serviceAccountName": "team-trainer"}))
    got = wait_for(lambda: conditions(ft_status(cluster)).get("Ready", {}).get("reason") == "ServiceAccountNotFound"
                   and ft_status(cluster), what="ServiceAccountNotFound")
    assert 'serviceaccount "team-trainer" not found' in conditions(got)["Ready"]["message"]
    assert conditions(got)["Stalled"]["status"] == "True" and got["phase"] == "Pending"

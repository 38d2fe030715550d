"""The operator keeps spec.serving's vLLM Deployment on the newest run that passed, through the local cluster."""

from __future__ import annotations

import pytest

from tests.conftest import manifest

from .harness import active_pods, apply, kubectl, wait_for
from .test_lifecycle import ft_status, phase_is

pytestmark = pytest.mark.slow

SERVE = "demo-serve"


def finetune(learning_rate: float) -> dict:
    return manifest(training={"learningRate": learning_rate, "maxSteps": 5},
                    serving={"accelerator": {"type": "nvidia-l4"}, "replicas": 1})


def run_to_end(cluster, kubeconfig, learning_rate: float, succeed: bool = True) -> str:
    """Apply the spec, wait for its run's trainer pod, end it; the run id."""
    apply(kubeconfig, finetune(learning_rate))
    before = ft_status(cluster).get("runId") if cluster.get("GemmaFineTune", "demo") else None
    status = wait_for(lambda: (s := ft_status(cluster)).get("phase") == "Running" and s.get("runId") != before and s,
                      what="the new run Running")
    (pod,) = wait_for(lambda: active_pods(cluster, status["jobName"]), what="trainer pod")
    if succeed:
        cluster.succeed_pod(pod["metadata"]["name"])
        wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    else:
        cluster.fail_pod(pod["metadata"]["name"], exit_code=2)  # bad input: permanent, the run fails
        wait_for(phase_is(cluster, "Failed"), what="Failed")
    return status["runId"]


def served_run(cluster) -> str | None:
    deployment = cluster.get("Deployment", SERVE)
    return deployment and deployment["spec"]["template"]["metadata"]["labels"]["gemmaft.dev/served-run"]


def serves(cluster, rid: str):
    return lambda: served_run(cluster) == rid and (ft_status(cluster).get("serving") or {}).get("runId") == rid


def test_deployment_follows_the_newest_passing_run_stays_on_failure_and_honours_a_pin(cluster, kubeconfig, operator):
    first = run_to_end(cluster, kubeconfig, 1e-4)
    wait_for(serves(cluster, first), what=f"serving {first}")
    deployment, service = cluster.get("Deployment", SERVE), cluster.get("Service", SERVE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1] == "demo=/models/run"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    owner = deployment["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "GemmaFineTune" and owner["name"] == "demo"
    serving = ft_status(cluster)["serving"]
    assert serving["deployment"] == serving["service"] == SERVE and serving["pinned"] is False

    second = run_to_end(cluster, kubeconfig, 2e-4)
    assert second != first
    wait_for(serves(cluster, second), what=f"rolled to {second}")
    volume = next(v for v in cluster.get("Deployment", SERVE)["spec"]["template"]["spec"]["volumes"] if "csi" in v)
    assert volume["csi"]["volumeAttributes"]["mountOptions"].endswith(f"only-dir=runs/{second}/adapter")

    third = run_to_end(cluster, kubeconfig, 3e-4, succeed=False)
    assert ft_status(cluster)["runId"] == third
    assert served_run(cluster) == second and ft_status(cluster)["serving"]["runId"] == second

    kubectl(kubeconfig, "annotate", "gemmafinetune/demo", f"gemmaft.dev/serve-run={first}", "--overwrite")
    wait_for(serves(cluster, first), what=f"pinned back to {first}")
    assert ft_status(cluster)["serving"]["pinned"] is True
    rolled = [e for e in cluster.events_for("demo") if e["reason"] == "Serving"]
    assert [e["message"].split(":")[0] for e in rolled] == [
        f"Deployment {SERVE} serves run {first}", f"Deployment {SERVE} serves run {second} (was run {first})",
        f"Deployment {SERVE} serves run {first} (was run {second})"]

    kubectl(kubeconfig, "annotate", "gemmafinetune/demo", "gemmaft.dev/serve-run-")
    wait_for(serves(cluster, second), what="the pin removed: back to the newest passing run")

    apply(kubeconfig, manifest(training={"learningRate": 3e-4, "maxSteps": 5}))  # serving removed
    wait_for(lambda: cluster.get("Deployment", SERVE) is None and cluster.get("Service", SERVE) is None
             and "serving" not in ft_status(cluster), what="serving objects deleted")

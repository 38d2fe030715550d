"""The operator's Deployment: one replica with probes, ports and resources, the operator settings in its
environment, and the custom image, scheduling and pod metadata values."""

from __future__ import annotations

from gemma_api.accelerators import ACCELERATORS
from gemma_operator.settings import OperatorSettings

from tests.chart.rendering import CASES, DIGEST, FULLNAME, container, env_of, objects_of, only, render_raw

ENV_NAMES = {
    "GEMMAFT_NAMESPACES", "GEMMAFT_IMAGE_GPU", "GEMMAFT_IMAGE_TPU", "GEMMAFT_IMAGE_CPU",
    "GEMMAFT_ALLOWED_IMAGE_PREFIXES", "GEMMAFT_TRAINER_SERVICE_ACCOUNT", "GEMMAFT_ALLOWED_SERVICE_ACCOUNTS",
    "GEMMAFT_SERVING_IMAGE", "GEMMAFT_SERVING_SERVICE_ACCOUNT", "GEMMAFT_METRICS_PORT",
    "GEMMAFT_HEALTH_PORT", "GEMMAFT_LOG_FORMAT", "GEMMAFT_RUN_HISTORY", "GEMMAFT_PROGRESS_INTERVAL_SECONDS",
}


def test_deployment_runs_one_operator_with_probes_ports_and_resources(objects):
    deploy = only(objects["defaults"], "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["gemmaft", "operator"]
    assert c["image"] == "gemmaft-operator:0.1.0"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == FULLNAME
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_operator_settings_reach_the_environment(objects):
    env = env_of(objects["defaults"])
    assert set(env) - {"POD_NAMESPACE"} == ENV_NAMES
    assert env["GEMMAFT_NAMESPACES"] == ""
    # Never "any image": by default the repositories of the three trainer images, compared on path segments.
    assert env["GEMMAFT_ALLOWED_IMAGE_PREFIXES"] == "gemmaft-trainer-gpu,gemmaft-trainer-tpu,gemmaft-trainer-cpu"
    settings = OperatorSettings.from_env(env)
    assert settings.image_allowed("gemmaft-trainer-gpu:0.2.0") and not settings.image_allowed("docker.io/x/y:1")
    assert not settings.image_allowed("gemmaft-trainer-gpu-evil:1")
    assert env["GEMMAFT_ALLOWED_SERVICE_ACCOUNTS"] == "gemma-trainer"
    assert settings.service_accounts() == ("gemma-trainer",)
    assert env["GEMMAFT_IMAGE_GPU"] == "gemmaft-trainer-gpu:0.1.0"
    assert env["GEMMAFT_TRAINER_SERVICE_ACCOUNT"] == "gemma-trainer"
    assert (env["GEMMAFT_METRICS_PORT"], env["GEMMAFT_HEALTH_PORT"]) == ("9090", "8080")
    assert (env["GEMMAFT_LOG_FORMAT"], env["GEMMAFT_RUN_HISTORY"], env["GEMMAFT_PROGRESS_INTERVAL_SECONDS"]) == (
        "json", "10", "30")
    assert env_of(objects["namespaced"])["GEMMAFT_NAMESPACES"] == "a,b"
    custom = env_of(objects["custom"])
    values = CASES["custom"]
    assert custom["GEMMAFT_IMAGE_GPU"] == values["trainerImages"]["gpu"]
    assert custom["GEMMAFT_IMAGE_TPU"] == values["trainerImages"]["tpu"]
    assert custom["GEMMAFT_IMAGE_CPU"] == values["trainerImages"]["cpu"]
    assert custom["GEMMAFT_ALLOWED_IMAGE_PREFIXES"] == "us-central1-docker.pkg.dev/proj/,ghcr.io/me/"
    assert custom["GEMMAFT_TRAINER_SERVICE_ACCOUNT"] == "trainer"
    assert (custom["GEMMAFT_LOG_FORMAT"], custom["GEMMAFT_RUN_HISTORY"]) == ("plain", "25")
    assert (custom["GEMMAFT_METRICS_PORT"], custom["GEMMAFT_HEALTH_PORT"]) == ("9191", "8081")
    ports = {p["name"]: p["containerPort"] for p in container(objects["custom"])["ports"]}
    assert ports == {"health": 8081, "metrics": 9191}


def test_custom_image_scheduling_and_pod_metadata(objects, chart):
    objs = objects["custom"]
    c = container(objs)
    assert c["image"] == f"us-central1-docker.pkg.dev/proj/gemmaft/operator@{DIGEST}"
    assert c["imagePullPolicy"] == "Always"
    pod = only(objs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "system"} and spec["priorityClassName"] == "system-cluster-critical"
    assert spec["tolerations"] == CASES["custom"]["tolerations"] and spec["affinity"] == CASES["custom"]["affinity"]
    assert pod["metadata"]["labels"]["tier"] == "control" and pod["metadata"]["annotations"] == {"note": "x"}
    assert all(o["metadata"]["labels"]["team"] == "ml" for o in objs)
    tagged = objects_of(render_raw(chart, {"image": {"registry": "r.example/x/", "tag": "9.9.9"}}))
    assert container(tagged)["image"] == "r.example/x/gemmaft-operator:9.9.9"


def test_every_accelerator_gets_its_kinds_image_from_the_chart_values(objects):
    """A new accelerator needs no chart change unless it brings a new kind: its image is the kind's value."""
    values = CASES["custom"]
    settings = OperatorSettings.from_env(env_of(objects["custom"])).render_settings()
    for name, record in ACCELERATORS.items():
        assert settings.image_for(name) == values["trainerImages"][record.kind], name

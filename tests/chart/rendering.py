"""The Helm chart rendered by the real Helm engine (helm-python-sdk): the value cases every test module renders,
the render call, and lookups in the rendered objects."""

from __future__ import annotations

import copy

import yaml

from tests.conftest import REPO

CHART = REPO / "charts" / "gemma-finetune-operator"
K8S_VERSION = "1.32"
RELEASE, NAMESPACE = "gft", "gemmaft-system"
FULLNAME = f"{RELEASE}-gemma-finetune-operator"
DIGEST = "sha256:" + "ab" * 32

CASES: dict[str, dict] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["a", "b"]},
    "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "scrapeTimeout": "10s"}},
    "custom": {
        "image": {"registry": "us-central1-docker.pkg.dev/proj/gemmaft", "repository": "operator",
                  "digest": DIGEST, "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "trainerImages": {"gpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-gpu:1.2.3",
                          "tpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-tpu:1.2.3",
                          "cpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-cpu@" + DIGEST},
        "allowedImagePrefixes": ["us-central1-docker.pkg.dev/proj/", "ghcr.io/me/"],
        "logFormat": "plain", "runHistory": 25, "progressIntervalSeconds": 15,
        "health": {"port": 8081}, "metrics": {"port": 9191},
        "trainerServiceAccount": {"name": "trainer",
                                  "annotations": {"iam.gke.io/gcp-service-account": "t@proj.iam.gserviceaccount.com"}},
        "commonLabels": {"team": "ml"}, "podLabels": {"tier": "control"}, "podAnnotations": {"note": "x"},
        "nodeSelector": {"pool": "system"}, "priorityClassName": "system-cluster-critical",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
        "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}]},
    },
}


def render_raw(chart, values: dict) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


def objects_of(rendered: dict[str, str]) -> list[dict]:
    objs = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            objs += [doc for doc in yaml.safe_load_all(text) if doc]
    return objs


def only(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def of_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def rule_map(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                assert key not in out, f"{key} granted by two rules"
                out[key] = set(rule["verbs"])
    return out


def container(objs: list[dict]) -> dict:
    return only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(objs: list[dict]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(objs)["env"]}

"""The chart rendered and linted by the real Helm engine, every object checked against the real Kubernetes schemas
(kubernetes-validate, strict), the chart's metadata, its CRD copy, and its NOTES."""

from __future__ import annotations

import copy

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.chart.rendering import CASES, CHART, K8S_VERSION, NAMESPACE
from tests.conftest import REPO

# Kinds the installed kubernetes-validate has no schema for (CRDs of other projects); the only ones skipped.
NO_SCHEMA_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean_in_strict_mode(case):
    report = helm_python.lint(str(CHART), copy.deepcopy(CASES[case]), strict=True, namespace=NAMESPACE,
                              kube_version=f"v{K8S_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("case", CASES)
def test_every_object_passes_the_kubernetes_schema_strictly(objects, case):
    skipped = set()
    for obj in objects[case]:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            skipped.add((obj["apiVersion"], obj["kind"]))
    assert skipped <= NO_SCHEMA_KINDS
    if case == "monitoring":
        assert skipped == NO_SCHEMA_KINDS


def test_each_case_renders_the_expected_objects(objects):
    kinds = {case: sorted(o["kind"] for o in objs) for case, objs in objects.items()}
    # ServiceAccounts: the operator's, and the trainer's and the serving pods' in each trainer namespace.
    assert kinds["defaults"] == sorted(["ServiceAccount"] * 3 + ["ClusterRole", "ClusterRoleBinding",
                                        "Deployment", "Service", "NetworkPolicy"])
    assert kinds["namespaced"] == sorted(["ServiceAccount"] * 5 + ["Role", "RoleBinding"] * 2 + [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "NetworkPolicy"])
    assert kinds["monitoring"] == sorted(kinds["defaults"] + ["ServiceMonitor"])
    for objs in objects.values():
        for obj in objs:
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                assert obj["metadata"]["namespace"], obj["kind"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_chart_metadata():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["appVersion"] == "0.1.0" and meta["type"] == "application"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{meta["appVersion"]}"' in pyproject


def test_chart_crd_is_byte_identical_to_the_generated_one(chart):
    chart_crd = (CHART / "crds" / "gemmafinetunes.yaml").read_bytes()
    assert chart_crd == (REPO / "crds" / "gemmafinetunes.yaml").read_bytes(), (
        "charts/gemma-finetune-operator/crds/gemmafinetunes.yaml differs from crds/gemmafinetunes.yaml: "
        "run `make crd` and copy it into the chart")
    assert [c["name"] for c in chart.crds] == ["crds/gemmafinetunes.yaml"]


def test_notes_tell_the_next_commands(rendered):
    notes = rendered["defaults"]["gemma-finetune-operator/templates/NOTES.txt"]
    for needle in ("kubectl apply -f examples/", "kubectl get gft", "adapter", "gsutil ls",
                   "kubectl apply --server-side -f crds/gemmafinetunes.yaml"):
        assert needle in notes
    assert "a, b" in rendered["namespaced"]["gemma-finetune-operator/templates/NOTES.txt"]

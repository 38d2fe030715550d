"""The GitOps examples (Argo CD and Flux) point at real paths and their values render, and the chart's Argo CD
health check (Lua) reads the operator's conditions."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from tests.chart.rendering import CHART, K8S_VERSION, env_of, objects_of, render_raw
from tests.conftest import REPO

GITOPS = REPO / "examples" / "gitops"


def _gitops_docs() -> dict[str, dict]:
    return {p.relative_to(GITOPS).as_posix(): yaml.safe_load(p.read_text())
            for p in sorted(GITOPS.glob("*/*.yaml"))}


def test_gitops_finetunes_are_valid_per_the_crd_and_the_operator():
    from gemma_api import parse_finetune

    from tests.support.crd_schema import validate

    finetunes = sorted((GITOPS / "finetunes").glob("*.yaml"))
    assert len(finetunes) >= 2
    for path in finetunes:
        doc = yaml.safe_load(path.read_text())
        assert validate(doc) == [], path.name
        assert parse_finetune(doc).spec.output.uri.startswith("gs://")


def test_gitops_sources_point_at_real_paths_and_their_values_render(chart):
    docs = _gitops_docs()
    argo = {k: d for k, d in docs.items() if d["kind"] == "Application"}
    assert {d["spec"]["source"]["path"] for d in argo.values()} == {
        "charts/gemma-finetune-operator", "examples/gitops/finetunes"}
    for app in argo.values():
        assert (REPO / app["spec"]["source"]["path"]).is_dir()
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    release = next(d for d in docs.values() if d["kind"] == "HelmRelease")
    assert (REPO / release["spec"]["chart"]["spec"]["chart"]).resolve() == CHART
    kustomization = next(d for d in docs.values() if d["kind"] == "Kustomization")
    assert (REPO / kustomization["spec"]["path"]).resolve() == GITOPS / "finetunes"
    source = next(d for d in docs.values() if d["kind"] == "GitRepository")["metadata"]["name"]
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == kustomization["spec"]["sourceRef"]["name"] == source
    argo_values = next(a for a in argo.values() if "helm" in a["spec"]["source"])["spec"]["source"]["helm"]["valuesObject"]
    for values in (argo_values, release["spec"]["values"]):
        objs = objects_of(render_raw(chart, values))
        assert env_of(objs)["GEMMAFT_NAMESPACES"] == "ml"
        for obj in objs:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# ---------------------------------------------------------------------------------------------- Argo CD health


def _argocd_health(obj: dict) -> dict:
    """Run the chart's Lua health check the way Argo CD does: ``obj`` in, a {status, message} table out."""
    lupa = pytest.importorskip("lupa")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (REPO / "charts/gemma-finetune-operator/argocd/health.lua").read_text()
    check = lua.eval(f"function(obj) {script} end")
    result = check(lua.table_from(json.loads(json.dumps(obj)), recursive=True))
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize(("phase", "stalled", "health"), [
    ("Pending", False, "Progressing"), ("Running", False, "Healthy"), ("Suspended", False, "Suspended"),
    ("Succeeded", False, "Healthy"), ("Failed", True, "Degraded"), ("Pending", True, "Degraded"),
])
def test_argocd_health_check_reads_the_operators_conditions(phase, stalled, health):
    from gemma_operator.reconcile import kstatus_conditions

    conditions = kstatus_conditions([], phase, "Why", f"{phase} because", stalled, "T", 3)
    obj = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "phase": phase,
                                                     "conditions": conditions}}
    got = _argocd_health(obj)
    assert got["status"] == health and (got["message"] == f"{phase} because" or health == "Progressing")
    obj["metadata"]["generation"] = 4  # an edit the operator has not seen yet is never Healthy
    assert _argocd_health(obj)["status"] == "Progressing"

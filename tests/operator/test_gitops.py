"""GitOps edits: training fields start a new run; everything else restarts nothing."""

from __future__ import annotations

import time

import pytest
from gemma_api import parse_finetune, run_id
from gemma_local.crd_schema import with_defaults

from tests.conftest import manifest

from .harness import apply, wait_for
from .test_lifecycle import ft_status, phase_is

pytestmark = pytest.mark.slow


def test_training_edit_starts_a_new_run_and_stops_the_old_one(cluster, kubeconfig, operator):
    obj = manifest()
    apply(kubeconfig, obj)
    first = wait_for(phase_is(cluster, "Running"), what="Running")
    obj["spec"]["training"] = {"learningRate": 0.0001}
    new_rid = run_id(parse_finetune(obj).spec)
    apply(kubeconfig, obj)
    status = wait_for(lambda: ft_status(cluster).get("runId") == new_rid and ft_status(cluster), what="new run")
    assert status["observedGeneration"] == 2
    wait_for(lambda: cluster.get("Job", first["jobName"]) is None, what="old Job deleted")
    wait_for(phase_is(cluster, "Running"), what="new run Running")
    runs = ft_status(cluster)["runs"]
    assert [r["runId"] for r in runs] == [new_rid, first["runId"]]
    assert runs[1]["phase"] == "Suspended" and runs[1]["reason"] == "Superseded"
    assert [j["metadata"]["labels"]["gemmaft.dev/run-id"] for j in cluster.list("Job")] == [new_rid]
    wait_for(lambda: "NewRun" in {e["reason"] for e in cluster.events_for("demo")}, what="NewRun event")
    # The operator never writes spec: what is stored is what was applied, plus the CRD's defaults.
    assert cluster.get("GemmaFineTune", "demo")["spec"] == with_defaults(obj)["spec"]


def test_label_and_run_policy_edits_restart_nothing(cluster, kubeconfig, operator):
    obj = manifest()
    apply(kubeconfig, obj)
    first = wait_for(phase_is(cluster, "Running"), what="Running")
    obj["metadata"]["labels"] = {"team": "support"}
    obj["spec"]["pod"] = {"labels": {"cost-center": "42"}}
    obj["spec"]["runPolicy"] = {"backoffLimit": 5}
    apply(kubeconfig, obj)
    wait_for(lambda: ft_status(cluster).get("observedGeneration") == 2, what="generation 2 observed")
    time.sleep(1.0)
    status = ft_status(cluster)
    assert status["runId"] == first["runId"] and status["phase"] == "Running" and status["attempt"] == 0
    assert len(cluster.list("Job")) == 1 and cluster.requests("POST", "Job") == 1
    assert cluster.requests("DELETE", "Job") == 0

"""A fine-tune through the real operator: kubectl apply, Job, pods, progress from GCS, outputs, Events."""

from __future__ import annotations

import time

import pytest
from gemma_api import parse_finetune, run_id

from tests.conftest import manifest

from .harness import apply, kubectl, wait_for, write_progress

pytestmark = pytest.mark.slow


def ft_status(cluster, name="demo"):
    return (cluster.get("GemmaFineTune", name) or {}).get("status") or {}


def phase_is(cluster, phase, name="demo"):
    return lambda: ft_status(cluster, name).get("phase") == phase and ft_status(cluster, name)


def conditions(status):
    return {c["type"]: c for c in status.get("conditions", [])}


def test_apply_runs_to_success_with_progress_outputs_conditions_and_events(cluster, kubeconfig, operator, bucket):
    obj = manifest(output={"uri": f"gs://{bucket.name}/runs"})
    rid = run_id(parse_finetune(obj).spec)
    apply(kubeconfig, obj)

    running = wait_for(phase_is(cluster, "Running"), what="phase Running")
    assert running["runId"] == rid and running["jobName"].endswith(rid)
    assert conditions(running)["Running"]["status"] == "True"
    assert conditions(running)["Ready"]["status"] == "True" and conditions(running)["Ready"]["reason"] == "Training"
    assert running["job"]["name"] == running["jobName"] and running["job"]["uid"]
    assert running["observedGeneration"] == 1 and running["startTime"]
    job = cluster.get("Job", running["jobName"])
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "GemmaFineTune" and owner["uid"] == cluster.get("GemmaFineTune", "demo")["metadata"]["uid"]
    assert cluster.get("ConfigMap", f"demo-{rid}-config") is not None

    ckpt = f"gs://{bucket.name}/runs/{rid}/checkpoints/step-00000005"
    write_progress(bucket, f"runs/{rid}", step=5, totalSteps=20, loss=1.25, epoch=0.5, lastCheckpoint=ckpt)
    status = wait_for(lambda: ft_status(cluster).get("progress", {}).get("step") == 5 and ft_status(cluster),
                      what="progress from progress.json")
    assert status["progress"]["percent"] == 25.0 and status["progress"]["loss"] == 1.25
    assert status["lastCheckpoint"] == ckpt
    running_since = conditions(status)["Running"]["lastTransitionTime"]

    write_progress(bucket, f"runs/{rid}", state="completed", step=20, totalSteps=20, loss=0.5,
                   adapterUri=f"gs://{bucket.name}/runs/{rid}/adapter")
    (pod,) = cluster.pods_of(running["jobName"])
    cluster.succeed_pod(pod["metadata"]["name"])
    done = wait_for(phase_is(cluster, "Succeeded"), what="phase Succeeded")
    base = f"gs://{bucket.name}/runs/{rid}"
    assert done["outputs"] == {"runUri": base, "adapterUri": f"{base}/adapter", "metricsUri": f"{base}/metrics.jsonl",
                               "lossPlotUri": f"{base}/loss.png"}
    conds = conditions(done)
    assert conds["Succeeded"]["status"] == "True" and conds["Running"]["status"] == "False"
    assert conds["Ready"]["status"] == "True"
    assert conds["Running"]["lastTransitionTime"] >= running_since
    assert done["completionTime"] and done["runs"][0]["phase"] == "Succeeded"
    wait_for(lambda: {"JobCreated", "Running", "Succeeded"} <= {e["reason"] for e in cluster.events_for("demo")},
             what="Events")
    assert 'gemmaft_runs_finished_total{result="succeeded"} 1.0' in operator.metrics()
    assert operator.healthy()
    # The operator writes status only: spec and metadata are as kubectl applied them.
    stored = cluster.get("GemmaFineTune", "demo")
    assert not stored["metadata"].get("finalizers")
    assert not [k for k in stored["metadata"].get("annotations", {}) if "kopf" in k]
    assert "kopf" not in stored["status"]


def test_invalid_spec_and_disallowed_image_are_refused_with_nothing_created(cluster, kubeconfig, operator_factory):
    operator_factory(GEMMAFT_ALLOWED_IMAGE_PREFIXES="registry.example/gemmaft/").start()
    # The CRD schema (the API server) refuses what it can check; the operator what only the model knows.
    schema_bad = manifest(training={"learningRate": -1, "batchSize": 2})
    refused = kubectl(kubeconfig, "apply", "-f", "-", input_obj=schema_bad, check=False)
    assert refused.returncode != 0 and "spec.training.learningRate: Invalid value: -1" in refused.stderr
    bad = manifest(model="gemma-2-9b", method="lora")  # schema-valid; does not fit a T4
    apply(kubeconfig, bad)
    status = wait_for(phase_is(cluster, "Failed"), what="InvalidSpec")
    ready = conditions(status)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.method" in ready["message"] and "does not fit" in ready["message"]

    image = manifest(pod={"image": "docker.io/evil/trainer:1"})
    image["metadata"]["name"] = "other"
    apply(kubeconfig, image)
    status = wait_for(phase_is(cluster, "Failed", "other"), what="ImageNotAllowed")
    assert conditions(status)["Ready"]["reason"] == "ImageNotAllowed"
    assert "registry.example/gemmaft/" in status["message"] and "docker.io/evil/trainer:1" in status["message"]

    warnings = wait_for(lambda: len([e for e in cluster.list("Event") if e.get("type") == "Warning"]) >= 2 and [
        e["reason"] for e in cluster.list("Event") if e.get("type") == "Warning"], what="Warning events")
    assert {"InvalidSpec", "ImageNotAllowed"} <= set(warnings)
    time.sleep(1.0)
    assert cluster.list("Job") == [] and cluster.list("ConfigMap") == []


def test_ttl_removes_the_finished_job_and_it_is_not_recreated(cluster, kubeconfig, operator):
    apply(kubeconfig, manifest(runPolicy={"ttlSecondsAfterFinished": 1}))
    status = wait_for(phase_is(cluster, "Running"), what="Running")
    (pod,) = cluster.pods_of(status["jobName"])
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="Succeeded")
    wait_for(lambda: cluster.get("Job", status["jobName"]) is None, what="ttl removal")
    time.sleep(2.0)  # several reconciles (interval 0.5 s)
    assert cluster.list("Job") == [] and cluster.requests("POST", "Job") == 1
    assert ft_status(cluster)["phase"] == "Succeeded"

"""Stock kubectl (v1.32, /usr/bin/kubectl) against the local API server: what a user types."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import pytest
from gemma_local.cluster import LocalCluster
from gemma_local.pods import ProcessRunner

from tests.conftest import manifest
from tests.operator.harness import KUBECTL, kubectl, kubectl_command, wait_for

from .conftest import api, job, running_pods

FT = "/apis/gemmaft.dev/v1alpha1/namespaces/default/gemmafinetunes"


def set_status(cluster, name: str, **status) -> None:
    code, body = api(cluster, "PATCH", f"{FT}/{name}/status", {"status": status})
    assert code == 200, body


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_core_discovery_and_api_resources(cluster, kubeconfig):
    code, answer = api(cluster, "GET", "/api/v1")
    assert code == 200 and answer["groupVersion"] == "v1"
    out = kubectl(kubeconfig, "api-resources")
    assert not out.stderr, out.stderr  # no "short name gft could also match ..." warnings
    found = [r for r in rows(out.stdout) if r[0] == "gemmafinetunes"]
    assert found and found[0][1] == "gft" and found[0][2] == "gemmaft.dev/v1alpha1"


def test_get_gft_shows_the_crd_printer_columns(cluster, kubeconfig):
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest())
    set_status(cluster, "demo", phase="Running", runId="a1b2c3d4e5", progress={"percent": 40, "loss": 1.25})
    plain = rows(kubectl(kubeconfig, "get", "gft").stdout)
    assert plain[0] == ["NAME", "MODEL", "ACCELERATOR", "PHASE", "PROGRESS", "LOSS", "AGE"]
    assert plain[1][:6] == ["demo", "gemma-2-2b", "nvidia-tesla-t4", "Running", "40", "1.25"]
    wide = rows(kubectl(kubeconfig, "get", "gemmafinetunes", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "MODEL", "METHOD", "ACCELERATOR", "TOPOLOGY", "PHASE", "STAGE", "PROGRESS", "LOSS",
                       "RUN", "AGE"]
    assert "a1b2c3d4e5" in wide[1] and "lora" in wide[1]
    listed = json.loads(kubectl(kubeconfig, "get", "gft", "-o", "json").stdout)
    assert (listed["kind"], listed["apiVersion"]) == ("List", "v1")  # kubectl's own wrapper of a ...List answer
    _, raw = api(cluster, "GET", FT)
    assert (raw["kind"], raw["apiVersion"]) == ("GemmaFineTuneList", "gemmaft.dev/v1alpha1")
    assert int(raw["metadata"]["resourceVersion"]) > 0


def test_get_jobs_and_pods_with_their_standard_columns(cluster, kubeconfig):
    cluster.create("Job", job(completions=2, parallelism=2, completionMode="Indexed"))
    cluster.fail_image_pull("registry.example/broken")
    cluster.create("Job", job("broken", image="registry.example/broken:1"))
    wait_for(lambda: len(running_pods(cluster, "train")) == 2, what="pods")
    jobs = rows(kubectl(kubeconfig, "get", "jobs").stdout)
    assert jobs[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert next(r for r in jobs if r[0] == "train")[:3] == ["train", "Running", "0/2"]
    statuses = wait_for(lambda: {r[2] for r in rows(kubectl(kubeconfig, "get", "pods").stdout)[1:]} >= {
        "Running", "ImagePullBackOff"} and rows(kubectl(kubeconfig, "get", "pods").stdout), what="pod statuses")
    assert statuses[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sorted(r[1] for r in statuses[1:] if r[2] == "Running") == ["1/1", "1/1"]
    assert [r[1] for r in statuses[1:] if r[2] == "ImagePullBackOff"] == ["0/1"]


def test_a_stale_discovery_cache_left_for_the_same_port_is_not_used(cluster, kubeconfig, tmp_path, monkeypatch):
    """kubectl caches discovery per host:port for hours ($HOME/.kube/cache). Loopback ports are reused, so a
    cache written for an earlier server on this port (here: core answered ``groupVersion: /v1``, as kmock once
    did) made ``kubectl get pods`` list ``metrics.k8s.io`` PodMetrics instead of Pods: CI failed on it."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    default_cache = home / ".kube" / "cache"
    subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(default_cache), "get", "pods"],
                   check=True, capture_output=True)
    port = cluster.url.rsplit(":", 1)[1]
    (core,) = default_cache.glob(f"discovery/127.0.0.1_{port}/v1/serverresources.json")
    core.write_text(json.dumps({**json.loads(core.read_text()), "groupVersion": "/v1"}))
    cluster.create("Job", job())
    wait_for(lambda: running_pods(cluster, "train"), what="a running pod")
    listed = rows(kubectl(kubeconfig, "get", "pods").stdout)
    assert listed[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], listed


@pytest.mark.parametrize(("selector", "expected"), [
    ("team=ml", ["a", "b"]), ("team!=ml", ["c", "d"]), ("tier in (gold,silver)", ["a", "c"]),
    ("tier notin (gold)", ["b", "c", "d"]), ("tier", ["a", "b", "c"]), ("!tier", ["d"]),
    ("team=ml,tier=gold", ["a"])])
def test_label_selectors(cluster, kubeconfig, selector, expected):
    labels = {"a": {"team": "ml", "tier": "gold"}, "b": {"team": "ml", "tier": "bronze"},
              "c": {"team": "web", "tier": "silver"}, "d": {}}
    for name, found in labels.items():
        cluster.create("ConfigMap", {"metadata": {"name": name, "namespace": "default", "labels": found}})
    out = kubectl(kubeconfig, "get", "configmaps", "-l", selector, "-o", "name")
    assert out.stdout.split() == [f"configmap/{n}" for n in expected]


def test_field_selector_on_list_and_watch(cluster, kubeconfig):
    for name in ("x", "y"):
        cluster.create("ConfigMap", {"metadata": {"name": name, "namespace": "default"}})
    out = kubectl(kubeconfig, "get", "configmaps", "--field-selector", "metadata.name=y", "-o", "name")
    assert out.stdout.split() == ["configmap/y"]
    out = kubectl(kubeconfig, "get", "configmaps", "--field-selector", "metadata.name!=y", "-o", "name")
    assert out.stdout.split() == ["configmap/x"]


def test_get_gft_watch_prints_each_change(cluster, kubeconfig):
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest())
    watch = subprocess.Popen(kubectl_command(kubeconfig, "get", "gft", "-w"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        set_status(cluster, "demo", phase="Running", progress={"percent": 50, "loss": 2.0})
        time.sleep(0.5)
        set_status(cluster, "demo", phase="Succeeded", progress={"percent": 100, "loss": 0.5})
        time.sleep(1.0)
    finally:
        watch.terminate()
    out, err = watch.communicate(timeout=10)
    lines = rows(out)
    assert lines[0][:4] == ["NAME", "MODEL", "ACCELERATOR", "PHASE"], (out, err)
    assert lines.count(lines[0]) == 1  # one header
    phases = [line[3] for line in lines[1:] if line[0] == "demo" and len(line) >= 6]
    assert phases[-2:] == ["Running", "Succeeded"], out
    assert ["demo", "gemma-2-2b", "nvidia-tesla-t4", "Succeeded", "100", "0.5"] == lines[-1][:6]


def test_describe_gft_shows_its_events(cluster, kubeconfig):
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest())
    ft = cluster.get("GemmaFineTune", "demo")
    cluster.call(cluster.emulator.record_event(ft, "GemmaFineTune", "Normal", "Created", "Job demo-1 created",
                                               "gemmaft-operator"))
    cluster.create("ConfigMap", {"metadata": {"name": "demo", "namespace": "default"}})
    other = cluster.get("ConfigMap", "demo")
    cluster.call(cluster.emulator.record_event(other, "ConfigMap", "Normal", "Unrelated", "not about the gft", "x"))
    out = kubectl(kubeconfig, "describe", "gft", "demo").stdout
    assert "Kind:         GemmaFineTune" in out and "Model:" in out
    events = out.split("Events:")[1]
    assert "Created" in events and "Job demo-1 created" in events and "Unrelated" not in events


def test_wait_for_a_condition_and_a_jsonpath(cluster, kubeconfig):
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest())

    def finish():
        time.sleep(1.0)
        set_status(cluster, "demo", phase="Succeeded", conditions=[
            {"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}])

    threading.Thread(target=finish, daemon=True).start()
    out = kubectl(kubeconfig, "wait", "--for=condition=Succeeded", "gft/demo", "--timeout=20s")
    assert "gemmafinetune.gemmaft.dev/demo condition met" in out.stdout
    out = kubectl(kubeconfig, "wait", "--for=jsonpath={.status.phase}=Succeeded", "gft/demo", "--timeout=5s")
    assert "condition met" in out.stdout
    late = kubectl(kubeconfig, "wait", "--for=condition=Failed", "gft/demo", "--timeout=1s", check=False)
    assert late.returncode != 0 and "timed out" in late.stderr


def test_logs_of_a_pod_run_as_a_local_process(tmp_path):
    with LocalCluster(runner=ProcessRunner(tmp_path / "pods"), service_accounts=("trainer",)) as cluster:
        config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        body = job("hello")
        body["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "python3", "-c", "print('step 1 loss 2.5'); print('step 2 loss 1.9')"]
        cluster.create("Job", body)
        wait_for(lambda: [p for p in cluster.pods_of("hello") if p["status"]["phase"] == "Succeeded"], what="ran")
        out = kubectl(config, "logs", "job/hello")
        assert out.stdout.splitlines() == ["step 1 loss 2.5", "step 2 loss 1.9"]
        out = kubectl(config, "logs", "job/hello", "--tail=1")
        assert out.stdout.splitlines() == ["step 2 loss 1.9"]


def test_logs_follow_a_running_pod_to_its_end(tmp_path):
    with LocalCluster(runner=ProcessRunner(tmp_path / "pods"), service_accounts=("trainer",)) as cluster:
        config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        body = job("slow")
        body["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "python3", "-u", "-c", "import time; print('first'); time.sleep(1.5); print('second')"]
        cluster.create("Job", body)
        wait_for(lambda: running_pods(cluster, "slow"), what="running")
        out = kubectl(config, "logs", "-f", "job/slow")
        assert out.stdout.splitlines() == ["first", "second"]


SPLIT_BAR = """import os, sys, time
out = sys.stdout.buffer
out.write("first \u2588".encode()[:-1]); out.flush()  # the bar character's last byte not written yet
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
out.write("\u2588".encode()[-1:] + b" done\\n"); out.flush()
for i in range(40):
    out.write(f"line {i}\\n".encode()); out.flush(); time.sleep(0.01)
"""


def test_logs_follow_sends_each_appended_byte_once_a_character_split_between_reads_included(tmp_path):
    """``logs -f`` re-read the whole log as text every poll and sent the characters past the count already sent:
    a character whose bytes were split between two reads (tqdm's bars, any non-ASCII output) went out as U+FFFD,
    and its real value never did."""
    runner, go = ProcessRunner(tmp_path / "pods"), tmp_path / "go"
    with LocalCluster(runner=runner, service_accounts=("trainer",)) as cluster:
        body = job("bar")
        body["spec"]["template"]["spec"]["containers"][0]["command"] = ["python3", "-c", SPLIT_BAR, str(go)]
        cluster.create("Job", body)
        name = wait_for(lambda: running_pods(cluster, "bar"), what="running")[0]["metadata"]["name"]
        half = len("first \u2588".encode()) - 1
        wait_for(lambda: name in runner.logs and runner.logs[name].stat().st_size == half, what="half a character")
        url = f"{cluster.url}/api/v1/namespaces/default/pods/{name}/log?follow=true"
        with urllib.request.urlopen(url, timeout=30) as stream:
            time.sleep(0.5)  # polls that find nothing new
            go.touch()
            text = stream.read().decode()  # to the end of the stream: the pod's end
        assert text.splitlines() == ["first \u2588 done", *(f"line {i}" for i in range(40))]
        assert cluster.get("Pod", name)["status"]["phase"] == "Succeeded"


def test_logs_say_clearly_when_the_runner_records_none(cluster, kubeconfig):
    cluster.create("Job", job())
    (pod,) = wait_for(lambda: running_pods(cluster, "train"), what="pod")
    out = kubectl(kubeconfig, "logs", pod["metadata"]["name"], check=False)
    assert out.returncode != 0 and "are not available" in out.stderr and "SchedulingOnly" in out.stderr


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"training": {"learningRate": -1}}, "spec.training.learningRate", "Invalid value: -1"),
    ({"method": "qlora", "accelerator": {"type": "tpu-v3", "topology": "2x2"}}, "spec.method", "qlora"),
    ({"bogus": 1}, "spec.bogus", "unknown field"),
])
def test_an_invalid_spec_is_refused_with_its_field(cluster, kubeconfig, change, field, message):
    out = kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest(**change), check=False)
    assert out.returncode != 0
    assert field in out.stderr and message in out.stderr, out.stderr
    assert cluster.list("GemmaFineTune") == []


def test_generation_status_subresource_and_stale_writes(cluster, kubeconfig):
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=manifest())
    first = cluster.get("GemmaFineTune", "demo")
    code, body = api(cluster, "PATCH", f"{FT}/demo", {"metadata": {"labels": {"a": "b"}}})
    assert code == 200 and body["metadata"]["generation"] == 1  # metadata only
    code, body = api(cluster, "PATCH", f"{FT}/demo/status", {"status": {"phase": "Running"},
                                                             "spec": {"model": "gemma-2-9b"}})
    assert body["spec"]["model"] == "gemma-2-2b" and body["status"]["phase"] == "Running"
    assert body["metadata"]["generation"] == 1
    code, body = api(cluster, "PATCH", f"{FT}/demo", {"status": {"phase": "Failed"},
                                                      "spec": {"training": {"learningRate": 0.001}}})
    assert body["status"]["phase"] == "Running" and body["metadata"]["generation"] == 2
    stale = {**first, "spec": {**first["spec"], "model": "gemma-2-9b"}}
    code, body = api(cluster, "PUT", f"{FT}/demo", stale, "application/json")
    assert code == 409 and "the object has been modified" in body["message"]
    before = cluster.get("GemmaFineTune", "demo")["metadata"]["resourceVersion"]
    code, body = api(cluster, "PATCH", f"{FT}/demo", {"metadata": {"labels": {"a": "b"}}})
    assert body["metadata"]["resourceVersion"] == before  # nothing changed: no write


def test_a_missing_namespace_and_a_pod_spec_change_are_refused(cluster, kubeconfig):
    elsewhere = manifest()
    elsewhere["metadata"]["namespace"] = "ml"
    out = kubectl(kubeconfig, "apply", "-f", "-", input_obj=elsewhere, check=False)
    assert out.returncode != 0 and 'namespaces "ml" not found' in out.stderr
    kubectl(kubeconfig, "apply", "-f", "-", input_obj={"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": "ml"}})
    kubectl(kubeconfig, "apply", "-f", "-", input_obj=elsewhere)
    cluster.create("Job", job())
    (pod,) = wait_for(lambda: running_pods(cluster, "train"), what="pod")
    out = kubectl(kubeconfig, "patch", "pod", pod["metadata"]["name"], "--type=merge", "-p",
                  '{"spec": {"serviceAccountName": "other"}}', check=False)
    assert out.returncode != 0 and "pod updates may not change fields" in out.stderr
    kubectl(kubeconfig, "patch", "pod", pod["metadata"]["name"], "--type=merge", "-p",
            '{"metadata": {"labels": {"checked": "yes"}}}')
    assert cluster.get("Pod", pod["metadata"]["name"])["metadata"]["labels"]["checked"] == "yes"

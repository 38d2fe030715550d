"""Pod failures the way the scheduler and kubelet report them on GKE."""

from __future__ import annotations

import base64

from gemma_local.cluster import LocalCluster, NodePool
from gemma_local.pods import ProcessRunner

from tests.operator.harness import wait_for

from .conftest import job, job_conditions, running_pods

TPU_TAINT = {"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}
TPU_POOL = NodePool("tpu-v3-8", nodes=2, labels={"cloud.google.com/gke-tpu-accelerator": "tpu-v3-device",
                                                 "cloud.google.com/gke-tpu-topology": "2x2"},
                    allocatable={"cpu": "96", "memory": "340Gi", "google.com/tpu": "4"}, taints=[TPU_TAINT])
CPU_POOL = NodePool("default-pool", nodes=3, allocatable={"cpu": "4", "memory": "16Gi"})


def waiting(cluster, name: str) -> dict | None:
    for pod in cluster.pods_of(name):
        for status in pod["status"].get("containerStatuses") or ():
            if "waiting" in status["state"]:
                return status["state"]["waiting"]
    return None


def tpu_job(**pod_spec) -> dict:
    body = job()
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"google.com/tpu": "4"}, "requests": {"cpu": "8", "memory": "32Gi"}}
    body["spec"]["template"]["spec"].update({
        "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": "tpu-v3-device"},
        "tolerations": [{"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}], **pod_spec})
    return body


def test_image_pull_failure_is_err_image_pull_then_back_off_until_the_image_exists(cluster):
    cluster.fail_image_pull("registry.example/")
    cluster.create("Job", job())
    first = wait_for(lambda: waiting(cluster, "train"), what="waiting")
    assert first["reason"] == "ErrImagePull"
    assert 'failed to pull and unpack image "registry.example/trainer:1"' in first["message"]
    later = wait_for(lambda: (w := waiting(cluster, "train")) and w["reason"] == "ImagePullBackOff" and w,
                     timeout=5, what="ImagePullBackOff")
    assert later["message"] == 'Back-off pulling image "registry.example/trainer:1"'
    (pod,) = cluster.pods_of("train")
    assert pod["status"]["phase"] == "Pending"
    reasons = {e["reason"] for e in cluster.events_for(pod["metadata"]["name"], kind="Pod")}
    assert {"Failed", "BackOff"} <= reasons
    cluster.allow_image_pull("registry.example/")
    wait_for(lambda: running_pods(cluster, "train"), what="Running once the image exists")


def test_missing_secret_or_key_is_create_container_config_error(cluster):
    body = job()
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]
    cluster.create("Job", body)
    state = wait_for(lambda: waiting(cluster, "train"), what="waiting")
    assert (state["reason"], state["message"]) == ("CreateContainerConfigError", 'secret "hf-token" not found')
    cluster.create("Secret", {"metadata": {"name": "hf-token", "namespace": "default"},
                              "data": {"other": base64.b64encode(b"x").decode()}})
    state = wait_for(lambda: (w := waiting(cluster, "train")) and "key" in w["message"] and w, what="key missing")
    assert state["message"] == "couldn't find key token in Secret default/hf-token"
    cluster.delete("Secret", "hf-token")
    cluster.create("Secret", {"metadata": {"name": "hf-token", "namespace": "default"},
                              "data": {"token": base64.b64encode(b"hf_x").decode()}})
    wait_for(lambda: running_pods(cluster, "train"), what="Running once the key exists")


def test_missing_config_map_volume_keeps_the_pod_container_creating(cluster):
    body = job()
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "run-config"}}]
    cluster.create("Job", body)
    state = wait_for(lambda: waiting(cluster, "train"), what="waiting")
    assert state["reason"] == "ContainerCreating"
    (pod,) = cluster.pods_of("train")
    (mount,) = [e for e in cluster.events_for(pod["metadata"]["name"], kind="Pod") if e["reason"] == "FailedMount"]
    assert mount["message"] == 'MountVolume.SetUp failed for volume "config" : configmap "run-config" not found'


def test_missing_service_account_means_no_pods_and_a_failed_create_event(cluster):
    body = job()
    body["spec"]["template"]["spec"]["serviceAccountName"] = "gemma-trainer"
    cluster.create("Job", body)
    event = wait_for(lambda: [e for e in cluster.events_for("train", kind="Job") if e["reason"] == "FailedCreate"],
                     what="FailedCreate")[0]
    assert event["type"] == "Warning"
    assert 'serviceaccount "gemma-trainer" not found' in event["message"]
    assert cluster.pods_of("train") == [] and cluster.get("Job", "train")["status"].get("active", 0) == 0
    cluster.create("ServiceAccount", {"metadata": {"name": "gemma-trainer", "namespace": "default"}})
    wait_for(lambda: running_pods(cluster, "train"), timeout=5, what="pod once the account exists")


def test_unschedulable_with_the_scheduler_message_until_a_tpu_pool_exists(cluster):
    cluster.set_node_pools([CPU_POOL])
    cluster.create("Job", tpu_job())
    condition = wait_for(lambda: [c for p in cluster.pods_of("train") for c in p["status"].get("conditions") or ()
                                  if c["type"] == "PodScheduled" and c["status"] == "False"], what="Unschedulable")[0]
    assert condition["reason"] == "Unschedulable"
    assert condition["message"] == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes "
        "are available: 3 Preemption is not helpful for scheduling.")
    (pod,) = cluster.pods_of("train")
    assert "FailedScheduling" in {e["reason"] for e in cluster.events_for(pod["metadata"]["name"], kind="Pod")}
    cluster.set_node_pools([CPU_POOL, TPU_POOL])
    (running,) = wait_for(lambda: running_pods(cluster, "train"), what="scheduled on the TPU pool")
    assert running["spec"]["nodeName"].startswith("tpu-v3-8-")


def test_insufficient_tpu_names_the_resource(cluster):
    cluster.set_node_pools([TPU_POOL])
    cluster.create("Job", tpu_job() | {"metadata": {"name": "a", "namespace": "default"}})
    cluster.create("Job", tpu_job() | {"metadata": {"name": "b", "namespace": "default"}})
    wait_for(lambda: running_pods(cluster, "a") and running_pods(cluster, "b"), what="two hosts used")
    cluster.create("Job", tpu_job())
    condition = wait_for(lambda: [c for p in cluster.pods_of("train") for c in p["status"].get("conditions") or ()
                                  if c["type"] == "PodScheduled" and c["status"] == "False"], what="Unschedulable")[0]
    assert condition["message"] == (
        "0/2 nodes are available: 2 Insufficient google.com/tpu. preemption: 0/2 nodes are available: "
        "2 No preemption victims found for incoming pod.")
    untolerated = tpu_job(tolerations=[])
    untolerated["metadata"]["name"] = "no-toleration"
    cluster.create("Job", untolerated)
    condition = wait_for(lambda: [c for p in cluster.pods_of("no-toleration") for c in p["status"].get(
        "conditions") or () if c["type"] == "PodScheduled" and c["status"] == "False"], what="taint")[0]
    assert "2 node(s) had untolerated taint {google.com/tpu: present}" in condition["message"]


def test_oom_killed_is_terminated_reason_oom_killed_exit_137(cluster):
    cluster.create("Job", job(backoffLimit=2))
    (pod,) = wait_for(lambda: running_pods(cluster, "train"), what="Running")
    cluster.oom(pod["metadata"]["name"])
    ended = wait_for(lambda: cluster.get("Pod", pod["metadata"]["name"])["status"]["phase"] == "Failed"
                     and cluster.get("Pod", pod["metadata"]["name"]), what="Failed")
    (terminated,) = [s["state"]["terminated"] for s in ended["status"]["containerStatuses"]]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    wait_for(lambda: cluster.get("Job", "train")["status"].get("failed") == 1, what="counted as a failure")
    assert not job_conditions(cluster, "train")


def test_each_process_pod_has_its_own_tmp_as_its_scratch_empty_dir_gives_it(tmp_path):
    """The trainer pod mounts an emptyDir at /tmp (its scratch: tokenized data, staging, resume downloads), fresh
    for every pod. Pods run as local processes shared the machine's /tmp instead: two runs of one spec (one run
    id) on two test workers wrote the same /tmp/gemmaft/<run id>, and a later session reused an earlier one's
    tokenized rows."""
    runner = ProcessRunner(tmp_path / "pods")
    with LocalCluster(runner=runner, service_accounts=("trainer",)) as cluster:
        for name in ("first", "second"):
            body = job(name)
            body["spec"]["template"]["spec"]["containers"][0]["command"] = [
                "python3", "-c", "import os, tempfile; d = tempfile.gettempdir(); print(d, os.path.isdir(d))"]
            cluster.create("Job", body)
        for name in ("first", "second"):
            wait_for(lambda n=name: [p for p in cluster.pods_of(n) if p["status"]["phase"] == "Succeeded"],
                     what=f"{name} ran")
        printed = {}
        for name in ("first", "second"):
            (pod,) = cluster.pods_of(name)
            printed[name] = runner.read_log(pod).decode().split()
    (first, first_exists), (second, second_exists) = printed["first"], printed["second"]
    assert first != second and first_exists == second_exists == "True"
    for name, folder in (("first", first), ("second", second)):
        assert folder.startswith(str(tmp_path / "pods")), (name, folder)

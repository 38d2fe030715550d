"""L4, H100 and TPU v5e render like T4 and TPU v3: objects that pass the Kubernetes schemas, pods that GKE's nodes
of the matching pool accept (its labels, taint and allocatable) and no other pool does, Indexed Job plus headless
Service for multi-host v5e slices."""

from __future__ import annotations

from collections import Counter

import kubernetes_validate
import pytest
from gemma_local.cluster.nodes import NodePool, misfit

from tests.pss import assert_restricted
from tests.render.test_manifests import K8S_VERSION, pod_spec, render

CASES = {
    "l4": {"accelerator": {"type": "nvidia-l4"}},
    "l4x8-spot": {"accelerator": {"type": "nvidia-l4", "count": 8, "spot": True}},
    "h100": {"accelerator": {"type": "nvidia-h100-80gb"}},
    "h100x8": {"accelerator": {"type": "nvidia-h100-80gb", "count": 8}},
    "v5e-1x1": {"accelerator": {"type": "tpu-v5e", "topology": "1x1"}},
    "v5e-2x4": {"accelerator": {"type": "tpu-v5e", "topology": "2x4"}},
    "v5e-4x4-spot": {"accelerator": {"type": "tpu-v5e", "topology": "4x4", "spot": True}},
    "v5e-16x16": {"accelerator": {"type": "tpu-v5e", "topology": "16x16"}},
    "t4": {"accelerator": {"type": "nvidia-tesla-t4"}},
    "v3-4x4": {"accelerator": {"type": "tpu-v3", "topology": "4x4"}},
}


BOOT_DISK_ALLOCATABLE = "150Gi"  # terraform/'s 200 GB boot disks, less what the system keeps


def _gpu_node(name: str, gpu: str, gpus: int, cpu: int, memory_gib: int) -> NodePool:
    return NodePool(name, labels={"cloud.google.com/gke-accelerator": gpu},
                    allocatable={"cpu": str(cpu), "memory": f"{memory_gib}Gi", "nvidia.com/gpu": str(gpus),
                               "ephemeral-storage": BOOT_DISK_ALLOCATABLE},
                    taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])


def _tpu_node(name: str, accelerator: str, topology: str, chips: int, cpu: int, memory_gib: int) -> NodePool:
    return NodePool(name, labels={"cloud.google.com/gke-tpu-accelerator": accelerator,
                                  "cloud.google.com/gke-tpu-topology": topology},
                    allocatable={"cpu": str(cpu), "memory": f"{memory_gib}Gi", "google.com/tpu": str(chips),
                               "ephemeral-storage": BOOT_DISK_ALLOCATABLE},
                    taints=[{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}])


# The nodes GKE makes for each pool, written from GKE's own labelling, independent of the registry: a GPU node is
# labelled with its GPU name; a TPU node by its machine type (ct3- tpu-v3-device, ct3p- tpu-v3-slice, ct5lp-
# tpu-v5-lite-podslice: kuberay's machine-type map) and topology. Allocatable: a bit under each machine's vCPUs and
# memory (g2-standard-8 8/32 GB, g2-standard-96 96/384, a3-highgpu-8g 208/1872, ct5lp-hightpu-1t 24/48,
# -4t 112/192, -8t 224/384, n1-standard-8 8/30, ct3p-hightpu-4t: large). Spot pools also carry the spot label.
NODES = {
    "l4": _gpu_node("l4-x1", "nvidia-l4", 1, 7, 27),
    "l4x8-spot": _gpu_node("l4-x8", "nvidia-l4", 8, 94, 350),
    "h100": _gpu_node("h100-x8", "nvidia-h100-80gb", 8, 200, 1700),
    "h100x8": _gpu_node("h100-x8", "nvidia-h100-80gb", 8, 200, 1700),
    "v5e-1x1": _tpu_node("v5e-1x1", "tpu-v5-lite-podslice", "1x1", 1, 22, 42),
    "v5e-2x4": _tpu_node("v5e-2x4", "tpu-v5-lite-podslice", "2x4", 8, 220, 350),
    "v5e-4x4-spot": _tpu_node("v5e-4x4", "tpu-v5-lite-podslice", "4x4", 4, 110, 180),
    "v5e-16x16": _tpu_node("v5e-16x16", "tpu-v5-lite-podslice", "16x16", 4, 110, 180),
    "t4": _gpu_node("t4-x1", "nvidia-tesla-t4", 1, 7, 26),
    "v3-4x4": _tpu_node("v3-4x4", "tpu-v3-slice", "4x4", 4, 90, 300),
}
SPOT = {"cloud.google.com/gke-spot": "true"}
for _case in ("l4x8-spot", "v5e-4x4-spot"):
    NODES[_case].labels.update(SPOT)
    NODES[_case].taints.append({"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"})


def _pod(case: str) -> dict:
    return render(CASES[case])["Job"]["spec"]["template"]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_object_passes_the_kubernetes_schema_and_the_restricted_profile(case):
    objs = render(CASES[case])
    for obj in objs.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert_restricted(pod_spec(objs))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_pod_lands_on_its_pool_and_on_no_other(case):
    pod = _pod(case)
    (node,) = NODES[case].node_objects()[:1]
    assert misfit(pod, node, Counter()) == [], f"{case} does not fit its own pool"
    other_pools = {NODES[c].name: NODES[c] for c in CASES if NODES[c].name != NODES[case].name}
    for other in other_pools.values():
        assert misfit(pod, other.node_objects()[0], Counter()), f"{case} would also land on {other.name}"


def test_l4_and_h100_select_their_gpu_tolerate_the_taint_and_limit_the_count():
    spec = pod_spec(render(CASES["l4x8-spot"]))
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", **SPOT}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"] == {"nvidia.com/gpu": "8"}
    one = pod_spec(render(CASES["l4"]))["containers"][0]["resources"]["requests"]
    assert int(resources["requests"]["cpu"]) == 8 * int(one["cpu"])
    h100 = pod_spec(render(CASES["h100"]))
    assert h100["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert "PJRT_DEVICE" not in {e["name"] for e in h100["containers"][0]["env"]}


@pytest.mark.parametrize("case, chips", [("v5e-1x1", 1), ("v5e-2x4", 8)])
def test_v5e_single_host_is_one_pod_with_every_chip_of_its_host(case, chips):
    objs = render(CASES[case])
    spec = pod_spec(objs)
    topology = CASES[case]["accelerator"]["topology"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                    "cloud.google.com/gke-tpu-topology": topology}
    assert spec["containers"][0]["resources"]["limits"] == {"google.com/tpu": str(chips)}
    assert "completionMode" not in objs["Job"]["spec"] and "Service" not in objs
    assert {"name": "PJRT_DEVICE", "value": "TPU"} in spec["containers"][0]["env"]
    assert {"name": "USE_HUB_KERNELS", "value": "NO"} in spec["containers"][0]["env"]  # no hub kernels on XLA


@pytest.mark.parametrize("case, hosts", [("v5e-4x4-spot", 4), ("v5e-16x16", 64)])
def test_v5e_multi_host_is_an_indexed_job_with_a_headless_service_and_4_chips_per_host(case, hosts):
    objs = render(CASES[case])
    job, svc = objs["Job"], objs["Service"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == \
        ("Indexed", hosts, hosts)
    spec = pod_spec(objs)
    assert spec["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v5-lite-podslice"
    assert spec["containers"][0]["resources"]["limits"] == {"google.com/tpu": "4"}
    assert spec["subdomain"] == svc["metadata"]["name"] and svc["spec"]["clusterIP"] == "None"
    together = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert together["topologyKey"] == "cloud.google.com/gke-nodepool"

"""Where the trainer pods run: node selectors, tolerations and accelerator resources, from the facts table."""

from __future__ import annotations

from dataclasses import dataclass, field

from gemma_operator.api import GemmaFineTuneSpec
from gemma_operator.api.facts import (
    ACCELERATORS,
    CHIPS_PER_TPU_V3_HOST,
    GKE_NODEPOOL_LABEL,
    GKE_SPOT_LABEL,
    GKE_TPU_TOPOLOGY_LABEL,
    MODEL_CACHE_BYTES_PER_PARAM,
    MODELS,
    POD_REQUESTS,
    SCRATCH_HEADROOM_GIB,
    TPU_V3_SINGLE_HOST_VALUE,
    TPU_V3_SLICE_VALUE,
    TPU_V3_TOPOLOGIES,
)


@dataclass(frozen=True)
class Placement:
    hosts: int = 1  # pods that train together (an Indexed Job when > 1)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    """Default CPU, memory and ephemeral-storage requests (spec.pod.resources.requests wins per key)."""
    scratch_limit: str = "16Gi"
    """sizeLimit of the scratch emptyDir that holds the model cache."""

    @property
    def multi_host(self) -> bool:
        return self.hosts > 1


def slice_affinity(job_name: str) -> dict:
    """All hosts of one slice on one node pool, and no other slice on it (JobSet's exclusive topology)."""
    same_job = {"matchLabels": {"batch.kubernetes.io/job-name": job_name}}
    other_slices = {"matchExpressions": [
        {"key": "gemmaft.dev/run-id", "operator": "Exists"},
        {"key": "batch.kubernetes.io/job-name", "operator": "NotIn", "values": [job_name]}]}
    return {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": same_job, "topologyKey": GKE_NODEPOOL_LABEL}]},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": other_slices, "topologyKey": GKE_NODEPOOL_LABEL}]},
    }


def _sizing(spec: GemmaFineTuneSpec) -> tuple[dict[str, str], str]:
    per = POD_REQUESTS[spec.accelerator.type]
    devices = spec.gpu_count if spec.accelerator.type == "nvidia-tesla-t4" else 1
    arch = MODELS[spec.model]
    scratch_gib = -(-arch.params * MODEL_CACHE_BYTES_PER_PARAM // 1024**3) + SCRATCH_HEADROOM_GIB
    cpu = per.cpu * devices
    requests = {"cpu": str(int(cpu)) if float(cpu).is_integer() else str(cpu),
                "memory": f"{per.memory_gib * devices}Gi", "ephemeral-storage": f"{scratch_gib}Gi"}
    return requests, f"{scratch_gib}Gi"


def _taint_toleration(key: str) -> dict[str, str]:
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def placement(spec: GemmaFineTuneSpec) -> Placement:
    acc = spec.accelerator
    profile = ACCELERATORS[acc.type]
    selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    limits: dict[str, str] = {}
    env: dict[str, str] = {}
    hosts = 1
    if acc.type == "nvidia-tesla-t4":
        selector[profile.accelerator_label] = acc.type
        limits[profile.resource] = str(spec.gpu_count)
    elif acc.type == "tpu-v3":
        topo = TPU_V3_TOPOLOGIES[spec.topology]
        hosts = topo.hosts
        selector[profile.accelerator_label] = TPU_V3_SLICE_VALUE if topo.multi_host else TPU_V3_SINGLE_HOST_VALUE
        selector[GKE_TPU_TOPOLOGY_LABEL] = spec.topology
        limits[profile.resource] = str(CHIPS_PER_TPU_V3_HOST)
        env["PJRT_DEVICE"] = "TPU"
    if profile.taint_key:
        tolerations.append(_taint_toleration(profile.taint_key))
    if acc.spot:
        selector[GKE_SPOT_LABEL] = "true"
        tolerations.append({"key": GKE_SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"})
    requests, scratch = _sizing(spec)
    return Placement(hosts, selector, tolerations, limits, env, requests, scratch)

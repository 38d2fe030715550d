"""Where the trainer pods run: node selectors, tolerations and accelerator resources, from the accelerator's
registry record (``api/accelerators.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gemma_operator.api import GemmaFineTuneSpec
from gemma_operator.api.accelerators import TPU_ENV, AcceleratorProfile, profile
from gemma_operator.api.facts import (
    GKE_NODEPOOL_LABEL,
    GKE_SPOT_LABEL,
    MODEL_CACHE_BYTES_PER_PARAM,
    MODELS,
    SCRATCH_HEADROOM_GIB,
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


def _sizing(spec: GemmaFineTuneSpec, acc: AcceleratorProfile) -> tuple[dict[str, str], str]:
    per = acc.pod_requests
    devices = acc.units_per_pod(spec.accelerator.count, spec.topology)
    arch = MODELS[spec.model]
    scratch_gib = -(-arch.checkpoint_params * MODEL_CACHE_BYTES_PER_PARAM // 1024**3) + SCRATCH_HEADROOM_GIB
    cpu = per.cpu * devices
    requests = {"cpu": str(int(cpu)) if float(cpu).is_integer() else str(cpu),
                "memory": f"{per.memory_gib * devices}Gi", "ephemeral-storage": f"{scratch_gib}Gi"}
    return requests, f"{scratch_gib}Gi"


def _taint_toleration(key: str) -> dict[str, str]:
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def placement(spec: GemmaFineTuneSpec) -> Placement:
    acc = profile(spec.accelerator.type)
    selector = acc.node_selector(spec.topology)
    tolerations = [_taint_toleration(acc.taint_key)] if acc.taint_key else []
    env = dict(TPU_ENV) if acc.kind == "tpu" else {}
    if spec.accelerator.spot:
        selector[GKE_SPOT_LABEL] = "true"
        tolerations.append({"key": GKE_SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"})
    requests, scratch = _sizing(spec, acc)
    limits = acc.limits(spec.accelerator.count, spec.topology)
    return Placement(acc.hosts(spec.topology), selector, tolerations, limits, env, requests, scratch)

"""Where the trainer pods run: node selectors, tolerations and accelerator resources, from the accelerator's
registry record (``gemma_api/accelerators.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemma_api import GemmaFineTuneSpec
from gemma_api.accelerators import TPU_ENV, AcceleratorProfile, profile
from gemma_api.container_resources import Resources
from gemma_api.facts import (
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


def sizing(model: str, acc: AcceleratorProfile, devices: int) -> tuple[dict[str, str], str]:
    """Default CPU, memory and ephemeral-storage requests of a pod with ``devices`` accelerator units, and the
    size of its model cache (scratch) volume."""
    per = acc.pod_requests
    arch = MODELS[model]
    scratch_gib = -(-arch.checkpoint_params * MODEL_CACHE_BYTES_PER_PARAM // 1024**3) + SCRATCH_HEADROOM_GIB
    cpu = per.cpu * devices
    requests = {"cpu": str(int(cpu)) if float(cpu).is_integer() else str(cpu),
                "memory": f"{per.memory_gib * devices}Gi", "ephemeral-storage": f"{scratch_gib}Gi"}
    return requests, f"{scratch_gib}Gi"


def _taint_toleration(key: str) -> dict[str, str]:
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def node_placement(acc: AcceleratorProfile, topology: str | None, spot: bool) -> tuple[dict, list]:
    """Node selector and tolerations of the accelerator's nodes (and of spot nodes)."""
    selector = acc.node_selector(topology)
    tolerations = [_taint_toleration(acc.taint_key)] if acc.taint_key else []
    if spot:
        selector[GKE_SPOT_LABEL] = "true"
        tolerations.append({"key": GKE_SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"})
    return selector, tolerations


def placement(spec: GemmaFineTuneSpec) -> Placement:
    acc = profile(spec.accelerator.type)
    selector, tolerations = node_placement(acc, spec.topology, spec.accelerator.spot)
    env = dict(TPU_ENV) if acc.kind == "tpu" else {}
    requests, scratch = sizing(spec.model, acc, acc.units_per_pod(spec.accelerator.count, spec.topology))
    limits = acc.limits(spec.accelerator.count, spec.topology)
    return Placement(acc.hosts(spec.topology), selector, tolerations, limits, env, requests, scratch)


def serving_placement(spec: GemmaFineTuneSpec) -> Placement:
    """Where one serving replica runs: ``spec.serving.accelerator``'s GPUs, sized like a trainer pod."""
    accelerator = spec.serving.accelerator
    acc = profile(accelerator.type)
    selector, tolerations = node_placement(acc, None, accelerator.spot)
    requests, scratch = sizing(spec.model, acc, acc.gpus(accelerator.count))
    return Placement(1, selector, tolerations, acc.limits(accelerator.count, None), {}, requests, scratch)


def container_resources(extra: Resources | None, where: Placement) -> dict[str, Any]:
    """Requests and limits of a container: ``where``'s defaults, the spec's own per key, the accelerator's limit."""
    limits = dict(extra.limits or {}) if extra else {}
    # Default requests keep pods out of BestEffort; a user's limit without a request wins (the API server then
    # sets the request to the limit), so a default can never exceed a limit.
    defaults = {k: v for k, v in where.requests.items() if k not in limits}
    requests = {**defaults, **(dict(extra.requests or {}) if extra else {})}
    limits.update(where.limits)  # the accelerator count comes from the spec's accelerator, never from resources
    for key in where.limits:
        requests.pop(key, None)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}

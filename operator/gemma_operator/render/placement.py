"""Where the trainer pods run: node selectors, tolerations and accelerator resources, from the facts table."""

from __future__ import annotations

from dataclasses import dataclass, field

from gemma_operator.api import GemmaFineTuneSpec
from gemma_operator.api.facts import (
    ACCELERATORS,
    CHIPS_PER_TPU_V3_HOST,
    GKE_SPOT_LABEL,
    GKE_TPU_TOPOLOGY_LABEL,
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

    @property
    def multi_host(self) -> bool:
        return self.hosts > 1


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
    return Placement(hosts, selector, tolerations, limits, env)

"""``GemmaFineTune.spec.accelerator`` (and a distillation teacher's): what a run trains on. Its CEL rules come
from the accelerator registry (``accelerators.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from .accelerators import all_gpu_counts, all_topologies, names_of, profile, spelled_list
from .base import ApiModel, cel, with_cel
from .fields import AcceleratorType, GpuCount, Topology, not_bool


def cel_list(values) -> str:
    """A CEL list literal of ``values``."""
    return "[" + ", ".join(repr(v) for v in values) + "]"


def _accelerator_rules() -> list[dict[str, str]]:
    """CEL rules from the registry: count only on GPU types, topology only on TPU types, each type's own values."""
    gpus, tpus = names_of("gpu"), names_of("tpu")
    rules = [
        cel(f"self.type in {cel_list(gpus)} || !has(self.count)",
            f"count applies only to {spelled_list(gpus)}: remove it (a TPU slice is sized by topology)", ".count"),
        cel(f"self.type in {cel_list(tpus)} || !has(self.topology)",
            f"topology applies only to {spelled_list(tpus)}: remove it or set a TPU type", ".topology"),
    ]
    for name in gpus:
        counts = profile(name).gpu_counts
        if counts != all_gpu_counts():
            rules.append(cel(f"self.type != '{name}' || !has(self.count) || self.count in {cel_list(counts)}",
                             f"{name} takes count {spelled_list(counts)}", ".count"))
    for name in tpus:
        topologies = tuple(profile(name).topologies)
        if topologies != all_topologies():
            rules.append(cel(f"self.type != '{name}' || !has(self.topology) || self.topology in "
                             f"{cel_list(topologies)}", f"{name} topologies: {spelled_list(topologies)}", ".topology"))
    return rules



class Accelerator(ApiModel):
    """What the run trains on and how it is scheduled."""

    model_config = with_cel(*_accelerator_rules())

    type: AcceleratorType
    """GPU (nvidia-tesla-t4, nvidia-l4, nvidia-h100-80gb), TPU (tpu-v3, tpu-v5e), or cpu (local runs, tests)."""
    count: Annotated[GpuCount, BeforeValidator(not_bool)] | None = None
    """GPUs per pod, data-parallel on one node: T4 1, 2 or 4; L4, H100 1, 2, 4 or 8. GPU types only, default 1."""
    topology: Topology | None = None
    """TPU slice, TPU types only, default 2x2: one host up to 2x2 (v3-8) or 2x4 (v5e), multi-host above."""
    spot: bool = False
    """Run on spot nodes; preemptions resume from the last committed checkpoint."""

"""``GemmaFineTune.spec.accelerator`` (and a distillation teacher's): what a run trains on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

from .base import ApiModel, cel, with_cel
from .fields import AcceleratorType, Topology, not_bool


class Accelerator(ApiModel):
    """What the run trains on and how it is scheduled."""

    model_config = with_cel(
        cel("self.type == 'nvidia-tesla-t4' || !has(self.count)",
            "count applies only to nvidia-tesla-t4: remove it (a TPU slice is sized by topology)", ".count"),
        cel("self.type == 'tpu-v3' || !has(self.topology)",
            "topology applies only to tpu-v3: remove it or set type: tpu-v3", ".topology"),
    )

    type: AcceleratorType
    """nvidia-tesla-t4, tpu-v3, or cpu (local runs and tests)."""
    count: Annotated[Literal[1, 2, 4], BeforeValidator(not_bool)] | None = None
    """T4 GPUs per pod (1, 2 or 4; data-parallel); only for nvidia-tesla-t4, default 1."""
    topology: Topology | None = None
    """TPU v3 slice: 2x2 is one host (v3-8); 4x4 (v3-32) and larger are multi-host; only for tpu-v3, default 2x2."""
    spot: bool = False
    """Run on spot nodes; preemptions resume from the last committed checkpoint."""

"""The device setup of one training process: the accelerator it trains for, the torch device kind, the
precision policy, the number of local processes, the pad buckets and the TrainingArguments extras.

A small shared type below the backends that build it (``gemma_trainer.backends``, ``gemma_trainer.xla``) and
the stages that read it. Not the operator's accelerator record (``gemma_api.accelerators``: what the
hardware is) nor the batch plan (``gemma_api.plan``: how rows make a batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemma_api.precision import PrecisionPolicy


@dataclass
class DeviceSetup:
    """Everything that differs between CPU, T4 (CUDA), newer CUDA and TPU."""

    accelerator: str  # spec.accelerator.type
    device: str  # "cpu", "cuda", "xla"
    policy: PrecisionPolicy  # which tensors live in which dtype (gemma_api.precision)
    nproc: int = 1  # data-parallel processes on this host (torchrun), 1: no launcher
    pad_buckets: list[int] | None = None  # fixed pad lengths (XLA static shapes); None: pad to the batch max
    training_args: dict[str, Any] = field(default_factory=dict)  # extra TrainingArguments
    emulated: bool = False  # the accelerator's arithmetic emulated on the CPU (gemma_trainer.precision)

    @property
    def precision(self) -> str:
        """``fp16`` (loss-scaled), ``bf16`` or ``fp32``: the TrainingArguments mixed-precision switch."""
        return self.policy.training_flag or "fp32"

    @property
    def model_dtype(self) -> str:
        """The dtype the frozen base weights are loaded in."""
        return self.policy.weights

    def describe(self) -> str:
        where = "emulated on the cpu" if self.emulated else f"on {self.device}"
        return f"{self.accelerator} {where}, precision {self.policy.name}, {self.nproc} process(es)"

"""The run as it will be: hosts, devices, batch sizes, steps, memory and checkpoint size of a spec.

ONE definition of the batch, used by the trainer (``gemma_trainer.train``) and by ``gemmaft plan``:

* ``training.batchSize`` is the number of sequences each data-parallel replica (one device: a T4 GPU, a TPU v3
  TensorCore, or the CPU process) takes per micro-step, on every accelerator;
* the global batch of a micro-step is ``batchSize x replicas`` (replicas = hosts x devices per host); one
  optimizer step sees ``globalBatchSize x gradientAccumulationSteps`` sequences;
* under TPU SPMD one process per host feeds all of its host's devices: each host reads its own
  ``perHostBatchSize = batchSize x devicesPerHost`` rows of every global batch (``gemma_trainer.multihost``).

An epoch is the data set cut into global batches (the TPU drops the short last one: SPMD needs equal shapes),
grouped into optimizer steps of ``gradientAccumulationSteps`` micro-batches; a short last group still makes a
step (as transformers' Trainer does), so the step count is right for any number of hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accelerators import profile
from .facts import MODELS
from .families import precision_policy
from .memory import MemoryEstimate, estimate, trainable_params

ADAPTER_WEIGHT_BYTES = 4  # fp32 master copy of each trainable weight (safetensors)
OPTIMIZER_STATE_BYTES = 8  # two fp32 AdamW moments per trainable weight (optimizer.pt)


class PlanError(ValueError):
    """The spec cannot make a single step with the data it has (names the fields and the fix)."""


@dataclass(frozen=True)
class BatchPlan:
    """How sequences are spread over the slice for one spec."""

    hosts: int
    devices_per_host: int
    processes_per_host: int  # data loaders per host: 1 under SPMD, one per GPU under torchrun
    batch_size: int  # sequences per data-parallel replica (device) per micro-step
    gradient_accumulation_steps: int
    drop_last: bool  # the short last global batch of an epoch is dropped (TPU: static shapes)

    @property
    def replicas(self) -> int:
        return self.hosts * self.devices_per_host

    @property
    def global_batch_size(self) -> int:
        """Sequences of one micro-step over the whole slice."""
        return self.batch_size * self.replicas

    @property
    def per_host_batch_size(self) -> int:
        """Rows each host reads for every global batch."""
        return self.batch_size * self.devices_per_host

    @property
    def per_process_batch_size(self) -> int:
        """What one data loader yields per micro-step (transformers' ``per_device_train_batch_size``)."""
        return self.per_host_batch_size // self.processes_per_host

    @property
    def sequences_per_step(self) -> int:
        return self.global_batch_size * self.gradient_accumulation_steps

    def describe(self) -> str:
        return (f"{self.batch_size} per device x {self.replicas} devices ({self.hosts} host(s) x "
                f"{self.devices_per_host}) = global batch {self.global_batch_size} ({self.per_host_batch_size} "
                f"per host) x {self.gradient_accumulation_steps} accumulation = {self.sequences_per_step} "
                f"sequences per step")

    def micro_batches_per_epoch(self, examples: int) -> int:
        if self.drop_last:
            return examples // self.global_batch_size
        return math.ceil(examples / self.global_batch_size)

    def steps_per_epoch(self, examples: int) -> int:
        """Optimizer steps of one pass over ``examples`` rows; PlanError when not one global batch fits."""
        batches = self.micro_batches_per_epoch(examples)
        if batches < 1:
            raise PlanError(
                f"spec.training.batchSize: the data set has {examples} rows, fewer than one global batch of "
                f"{self.global_batch_size} ({self.batch_size} per device x {self.replicas} devices). Fix: lower "
                f"training.batchSize or add rows")
        return math.ceil(batches / self.gradient_accumulation_steps)

    def total_steps(self, examples: int | None, epochs: float, max_steps: int | None) -> int | None:
        """Optimizer steps of the run: maxSteps, else ceil(epochs x steps per epoch); None: rows unknown."""
        if max_steps:
            return max_steps
        if examples is None:
            return None
        return max(1, math.ceil(epochs * self.steps_per_epoch(examples)))


def batch_plan(spec) -> BatchPlan:
    """The BatchPlan of ``spec`` (GemmaFineTuneSpec)."""
    t = spec.training
    acc = profile(spec.accelerator.type)
    devices = acc.devices_per_host(spec.accelerator.count, spec.topology)
    # Under TPU SPMD one process per host feeds all of its devices; a GPU node runs one process per GPU.
    spmd = acc.kind == "tpu"
    return BatchPlan(acc.hosts(spec.topology), devices, 1 if spmd else devices, t.batch_size,
                     t.gradient_accumulation_steps, drop_last=spmd)


def checkpoint_bytes(spec) -> int:
    """Size of one committed checkpoint: trainable weights (fp32) and their AdamW moments."""
    return trainable_params(spec, MODELS[spec.model]) * (ADAPTER_WEIGHT_BYTES + OPTIMIZER_STATE_BYTES)


def _memory_json(mem: MemoryEstimate) -> dict:
    return {
        "perDeviceBytes": mem.per_device,
        "weightsBytes": mem.weights,
        "trainableStateBytes": mem.trainable,
        "activationsBytes": mem.activations,
        "runtimeBytes": mem.overhead,
        "shardedOverDevices": mem.devices,
        "deviceCapacityBytes": mem.capacity,
        "fits": mem.fits,
        "summary": mem.describe(),
    }


def plan_run(spec, examples: int | None = None) -> dict:
    """``gemmaft plan``: the run as JSON-ready data, from the same functions the trainer uses."""
    plan = batch_plan(spec)
    t = spec.training
    steps_per_epoch = plan.steps_per_epoch(examples) if examples is not None else None
    return {
        "accelerator": spec.accelerator.type,
        "hosts": plan.hosts,
        "devicesPerHost": plan.devices_per_host,
        "batchSizePerDevice": plan.batch_size,
        "perHostBatchSize": plan.per_host_batch_size,
        "globalBatchSize": plan.global_batch_size,
        "gradientAccumulationSteps": plan.gradient_accumulation_steps,
        "sequencesPerStep": plan.sequences_per_step,
        "examples": examples,
        "stepsPerEpoch": steps_per_epoch,
        "totalSteps": plan.total_steps(examples, t.epochs, t.max_steps),
        "precision": _precision_json(spec),
        "memoryPerDevice": _memory_json(estimate(spec)),
        "checkpointBytes": checkpoint_bytes(spec),
    }


def _precision_json(spec) -> dict:
    """The precision policy the trainer applies on the spec's accelerator (``gemma_api/precision.py``)."""
    policy = precision_policy(MODELS[spec.model].family, profile(spec.accelerator.type).compute_dtype)
    return {"policy": policy.name, "weights": policy.weights, "stream": policy.stream,
            "projections": policy.projections, "lossScaling": policy.loss_scaling, "summary": policy.summary}

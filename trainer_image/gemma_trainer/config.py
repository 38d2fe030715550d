"""Read the run config (a GemmaFineTune manifest or the mounted GemmaFineTuneRun) and choose, per accelerator,
the precision, TrainingArguments extras and collator settings.

``accelerator_plan`` is the seam for the TPU path: a TPU type (``kind == "tpu"`` in the accelerator registry) asks ``gemma_trainer.xla.plan_for(spec)`` (when
that module exists) for the mesh / FSDP v2 arguments and the fixed pad bucket lengths.
"""

from __future__ import annotations

import copy
import glob
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_operator.api import RUN_CONFIG_KIND, RunConfig, SpecError, parse_finetune
from gemma_operator.api.accelerators import profile as accelerator_profile
from gemma_operator.api.rules import Problem, check_rules
from gemma_operator.api.validation import problems_of


class ConfigError(Exception):
    """The run config cannot be used; ``lines`` are field-level messages (exit code 2)."""

    def __init__(self, source: str, lines: list[str]):
        self.source = source
        self.lines = lines
        super().__init__(f"{source}: " + "; ".join(lines))

    def describe(self) -> str:
        if len(self.lines) == 1:
            return f"{self.source}: {self.lines[0]}"
        return "\n".join([f"{self.source}: invalid run config", *(f"  - {line}" for line in self.lines)])


def _read_document(path: str) -> Any:
    from gemma_operator.api.yamlio import YamlError, load_documents

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(path, [f"cannot read: {err.strerror or err}"]) from None
    try:
        docs = load_documents(text, path)  # YAML 1.2 numbers, as kubectl reads the manifest
    except YamlError as err:
        raise ConfigError(path, [str(err).removeprefix(f"{path}: ").replace("\n", " ")]) from None
    if len(docs) != 1:
        raise ConfigError(path, [f"expected exactly one YAML document, found {len(docs)}"])
    if not isinstance(docs[0], dict):
        raise ConfigError(path, ["expected a mapping with apiVersion, kind, ..."])
    return docs[0]


def _override(spec: dict, output_uri: str | None, max_steps: int | None) -> None:
    if output_uri:
        spec.setdefault("output", {})["uri"] = output_uri
    if max_steps is not None:
        spec.setdefault("training", {})["maxSteps"] = max_steps


def load_run_config(path: str, output_uri: str | None = None, max_steps: int | None = None) -> RunConfig:
    """The validated run config from FILE; overrides are applied before validation (so they are validated too)."""
    raw = copy.deepcopy(_read_document(path))
    kind = raw.get("kind")
    if kind == RUN_CONFIG_KIND:
        spec = raw.get("spec")
        if isinstance(spec, dict):
            _override(spec, output_uri, max_steps)
        try:
            cfg = RunConfig.model_validate(raw)
        except Exception as err:  # pydantic.ValidationError
            from pydantic import ValidationError

            if not isinstance(err, ValidationError):
                raise
            raise ConfigError(path, [str(p) for p in problems_of(err, RunConfig, "")]) from None
        problems: list[Problem] = check_rules(cfg.spec)
        if problems:
            raise ConfigError(path, [str(p) for p in problems])
        if output_uri:
            moved = {"run_uri": f"{output_uri.rstrip('/')}/{cfg.run_id}"}
            if cfg.teacher_uri:  # distillation: the teacher folder moves with the output too
                moved["teacher_uri"] = f"{output_uri.rstrip('/')}/{cfg.teacher_uri.rstrip('/').rsplit('/', 1)[-1]}"
            cfg = cfg.model_copy(update=moved)
        return cfg
    if isinstance(raw.get("spec"), dict):
        _override(raw["spec"], output_uri, max_steps)
    try:
        ft = parse_finetune(raw)
    except SpecError as err:
        raise ConfigError(path, [str(p) for p in err.problems]) from None
    return RunConfig.for_finetune(ft)


# ---------------------------------------------------------------- accelerator plan


@dataclass
class AcceleratorPlan:
    """Everything that differs between CPU, T4 (CUDA), newer CUDA and TPU."""

    accelerator: str  # spec.accelerator.type
    device: str  # "cpu", "cuda", "xla"
    precision: str  # "fp32", "fp16" (autocast, fp32 master LoRA weights), "bf16"
    model_dtype: str  # dtype the base weights are loaded in: float32, float16, bfloat16
    nproc: int = 1  # data-parallel processes on this host (torchrun), 1: no launcher
    pad_buckets: list[int] | None = None  # fixed pad lengths (XLA static shapes); None: pad to the batch max
    training_args: dict[str, Any] = field(default_factory=dict)  # extra TrainingArguments

    def describe(self) -> str:
        return f"{self.accelerator} on {self.device}, {self.precision}, {self.nproc} process(es)"


def cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(0)


def precision_for_capability(capability: tuple[int, int] | None) -> str:
    """fp16 below compute capability 8.0 (T4 is 7.5: no bf16), bf16 from Ampere on, fp32 without CUDA."""
    if capability is None:
        return "fp32"
    return "bf16" if capability >= (8, 0) else "fp16"


def tpu_visible() -> bool:
    """Whether this container can run the TPU path: torch_xla is installed and TPU chips are on the host
    (``/dev/accel*`` on v2-v4, ``/dev/vfio/N`` on later generations), or ``PJRT_DEVICE=CPU`` asks for XLA's CPU
    devices on purpose (the TPU code path's tests)."""
    if importlib.util.find_spec("torch_xla") is None:
        return False
    if os.environ.get("PJRT_DEVICE", "").upper() == "CPU":
        return True
    return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _unavailable(acc: str, what: str):
    from .model import AcceleratorUnavailable

    return AcceleratorUnavailable(
        f"spec.accelerator.type is {acc} but {what} is visible in this container: refusing to train on the CPU "
        "(days instead of hours); exiting 1 so the Job retries the pod (check the node's device plugin and the "
        "pod's resource limits)")


def accelerator_plan(spec, capability: tuple[int, int] | None | str = "detect",
                     tpu: bool | str = "detect") -> AcceleratorPlan:
    """Precision, device, launcher and TrainingArguments extras for ``spec.accelerator``.

    ``capability`` is the CUDA compute capability (``"detect"`` asks torch), ``tpu`` whether a TPU is visible
    (``"detect"``: :func:`tpu_visible`); passing them lets tests check the choice without the hardware. A T4 or
    TPU spec whose accelerator is not visible raises ``AcceleratorUnavailable`` (exit 1, retried by the Job):
    only ``accelerator.type: cpu`` trains on the CPU.
    """
    acc = spec.accelerator.type
    kind = accelerator_profile(acc).kind
    if kind == "tpu":
        if not (tpu_visible() if tpu == "detect" else tpu):
            raise _unavailable(acc, "no TPU (or no torch_xla)")
        try:
            from gemma_trainer import xla  # type: ignore[attr-defined]
        except ImportError:
            xla = None
        if xla is not None and hasattr(xla, "plan_for"):
            return xla.plan_for(spec)
        return AcceleratorPlan(acc, "xla", "bf16", "bfloat16",
                               training_args={"bf16": True, "dataloader_drop_last": True})
    if kind == "gpu":
        cap = cuda_capability() if capability == "detect" else capability
        if cap is None:
            raise _unavailable(acc, "no CUDA GPU")
        precision = precision_for_capability(cap)
        device, nproc = "cuda", spec.gpu_count
        args: dict[str, Any] = {}
        if precision == "fp16":
            args["fp16"] = True
        elif precision == "bf16":
            args["bf16"] = True
        if nproc > 1:
            args["ddp_find_unused_parameters"] = False
        model_dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(precision, "float32")
        return AcceleratorPlan(acc, device, precision, model_dtype, nproc=nproc, training_args=args)
    return AcceleratorPlan(acc, "cpu", "fp32", "float32", training_args={"use_cpu": True})


def dump_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))

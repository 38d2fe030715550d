"""Read the run config (a GemmaFineTune manifest or the mounted GemmaFineTuneRun) and choose, per accelerator,
the precision, TrainingArguments extras and collator settings.

``accelerator_plan`` is the seam for the TPU path: a TPU type (``kind == "tpu"`` in the accelerator registry)
asks ``gemma_trainer.xla.plan_for(spec)`` for the mesh / FSDP v2 arguments and the fixed pad bucket lengths. The
precision policy of every plan comes from the one table in ``gemma_operator.api.precision`` (by model family and
the accelerator's arithmetic); :func:`emulated_plan` runs an accelerator's arithmetic on the CPU.
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
from gemma_operator.api.facts import MODELS
from gemma_operator.api.precision import POLICIES, PrecisionPolicy, precision_policy
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


def load_run_config(path: str, output_uri: str | None = None, max_steps: int | None = None,
                    local_run: bool = False) -> RunConfig:
    """The validated run config from FILE; overrides are applied before validation (so they are validated too).
    ``local_run``: it runs on this machine whatever its accelerator (a local output folder is fine)."""
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
        problems: list[Problem] = check_rules(cfg.spec, local_run)
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
        ft = parse_finetune(raw, local_run)
    except SpecError as err:
        raise ConfigError(path, [str(p) for p in err.problems]) from None
    return RunConfig.for_finetune(ft)


# ---------------------------------------------------------------- accelerator plan


@dataclass
class AcceleratorPlan:
    """Everything that differs between CPU, T4 (CUDA), newer CUDA and TPU."""

    accelerator: str  # spec.accelerator.type
    device: str  # "cpu", "cuda", "xla"
    policy: PrecisionPolicy  # which tensors live in which dtype (gemma_operator.api.precision)
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


def cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(0)


def arithmetic_for_capability(capability: tuple[int, int] | None) -> str:
    """float16 below compute capability 8.0 (T4 is 7.5: no bf16; ``torch.cuda.is_bf16_supported()`` says True
    there through slow emulation), bfloat16 from Ampere on, float32 without CUDA."""
    if capability is None:
        return "float32"
    return "bfloat16" if capability >= (8, 0) else "float16"


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
        "pod's resource limits), or pass --emulate-accelerator to run its arithmetic on the CPU on purpose")


def policy_for(spec, arithmetic: str | None = None, override: str | None = None) -> PrecisionPolicy:
    """The precision policy of ``spec`` on ``arithmetic`` (default: its accelerator's); ``override`` names a
    policy of ``POLICIES`` instead (measurements: ``--precision``)."""
    if override is not None:
        if override not in POLICIES:
            raise ConfigError("--precision", [f"unknown precision policy {override!r}: one of {sorted(POLICIES)}"])
        return POLICIES[override]
    arithmetic = arithmetic or accelerator_profile(spec.accelerator.type).compute_dtype
    return precision_policy(MODELS[spec.model].family, arithmetic)


QLORA_NOT_EMULATED = ("spec.method qlora needs bitsandbytes' 4-bit CUDA kernels, which have no CPU emulation: "
                      "check the arithmetic with method lora (the same fp16 projections around the same model)")


def emulated_plan(spec, override: str | None = None) -> AcceleratorPlan:
    """The plan of ``spec``'s accelerator with its arithmetic emulated on the CPU (``--emulate-accelerator``)."""
    policy = policy_for(spec, override=override)
    if spec.method == "qlora":
        raise ConfigError("--emulate-accelerator", [QLORA_NOT_EMULATED])
    args: dict[str, Any] = {"use_cpu": True}
    if policy.training_flag:
        args[policy.training_flag] = True
    return AcceleratorPlan(spec.accelerator.type, "cpu", policy, training_args=args, emulated=True)


def accelerator_plan(spec, capability: tuple[int, int] | None | str = "detect",
                     tpu: bool | str = "detect", precision: str | None = None) -> AcceleratorPlan:
    """Precision, device, launcher and TrainingArguments extras for ``spec.accelerator``.

    ``capability`` is the CUDA compute capability (``"detect"`` asks torch), ``tpu`` whether a TPU is visible
    (``"detect"``: :func:`tpu_visible`); passing them lets tests check the choice without the hardware. A T4 or
    TPU spec whose accelerator is not visible raises ``AcceleratorUnavailable`` (exit 1, retried by the Job):
    only ``accelerator.type: cpu`` trains on the CPU. ``precision`` overrides the policy (measurements).
    """
    acc = spec.accelerator.type
    kind = accelerator_profile(acc).kind
    if kind == "tpu":
        if not (tpu_visible() if tpu == "detect" else tpu):
            raise _unavailable(acc, "no TPU (or no torch_xla)")
        from gemma_trainer import xla

        return xla.plan_for(spec)
    if kind == "gpu":
        cap = cuda_capability() if capability == "detect" else capability
        if cap is None:
            raise _unavailable(acc, "no CUDA GPU")
        policy = policy_for(spec, arithmetic_for_capability(cap), precision)
        nproc = spec.gpu_count
        args: dict[str, Any] = {policy.training_flag: True} if policy.training_flag else {}
        if nproc > 1:
            args["ddp_find_unused_parameters"] = False
        return AcceleratorPlan(acc, "cuda", policy, nproc=nproc, training_args=args)
    return AcceleratorPlan(acc, "cpu", policy_for(spec, override=precision), training_args={"use_cpu": True})


def dump_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))

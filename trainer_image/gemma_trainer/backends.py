"""Which device a run trains on, and how: the :class:`~gemma_trainer.device.DeviceSetup` of a spec on this
machine, one backend per accelerator kind of the registry (``gemma_api.accelerators``): ``cuda``
(precision from the GPU's compute capability), ``xla`` (TPU slices: :func:`gemma_trainer.xla.device_setup`:
mesh / FSDP v2 arguments and fixed pad buckets) and ``cpu``. The precision policy of every setup comes from the
one table in ``gemma_api.precision`` (by model family and the accelerator's arithmetic);
:func:`emulated_setup` runs an accelerator's arithmetic on the CPU.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from typing import Any

from gemma_api.accelerators import profile as accelerator_profile
from gemma_api.facts import MODELS
from gemma_api.families import precision_policy
from gemma_api.methods import training_method
from gemma_api.precision import POLICIES, PrecisionPolicy

from . import xla
from .device import DeviceSetup
from .errors import AcceleratorUnavailable, ConfigError


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


def _unavailable(acc: str, what: str) -> AcceleratorUnavailable:
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


CUDA_ONLY_NOT_EMULATED = ("spec.method {method} needs bitsandbytes' 4-bit CUDA kernels, which have no CPU emulation: "
                          "check the arithmetic with method lora (the same fp16 projections around the same model)")


def emulated_setup(spec, override: str | None = None) -> DeviceSetup:
    """The device setup of ``spec``'s accelerator with its arithmetic emulated on the CPU (``--emulate-accelerator``)."""
    policy = policy_for(spec, override=override)
    if training_method(spec.method).needs_cuda:
        raise ConfigError("--emulate-accelerator", [CUDA_ONLY_NOT_EMULATED.format(method=spec.method)])
    args: dict[str, Any] = {"use_cpu": True}
    if policy.training_flag:
        args[policy.training_flag] = True
    return DeviceSetup(spec.accelerator.type, "cpu", policy, training_args=args, emulated=True)


def device_setup(spec, capability: tuple[int, int] | None | str = "detect",
                     tpu: bool | str = "detect", precision: str | None = None) -> DeviceSetup:
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
        return xla.device_setup(spec)
    if kind == "gpu":
        cap = cuda_capability() if capability == "detect" else capability
        if cap is None:
            raise _unavailable(acc, "no CUDA GPU")
        policy = policy_for(spec, arithmetic_for_capability(cap), precision)
        nproc = spec.gpu_count
        args: dict[str, Any] = {policy.training_flag: True} if policy.training_flag else {}
        if nproc > 1:
            args["ddp_find_unused_parameters"] = False
        return DeviceSetup(acc, "cuda", policy, nproc=nproc, training_args=args)
    return DeviceSetup(acc, "cpu", policy_for(spec, override=precision), training_args={"use_cpu": True})

"""The TPU (torch-xla) path of the trainer: SPMD mesh, FSDPv2-style sharding, fixed pad buckets, host shards.

Importable everywhere (torch and torch_xla are imported lazily), so ``backends.device_setup`` can call
:func:`device_setup` in any image. How a TPU run (tpu-v3, tpu-v5e) trains (one process per host; SPMD shows it the whole slice):

1. :func:`device_setup`: bf16, fixed ``pad_buckets`` (static shapes), TrainingArguments extras.
2. :func:`prepare_model`: a 1-D ``("fsdp",)`` mesh over every device of the slice; frozen base weights sharded
   along it (:func:`shard_model_fsdp_v2`), decoder outputs and logits sharded along the batch
   (:func:`shard_activations`, as transformers' ``xla_fsdp_v2`` does); LoRA weights stay replicated.
3. :func:`gemma_trainer.xla_trainer.trainer_class`: each host reads its own rows of every global batch
   (``gemma_api/plan.py`` defines the batch: ``training.batchSize`` per TensorCore), checkpoints are adapter-only,
   gathered by every host and written by global process 0 (``xla_hosts``: gloo host barrier, saves that
   cannot hang).

Why not HF Trainer's own ``fsdp_config={"xla": True, "xla_fsdp_v2": True}``: in transformers 5.23 it never
creates the optimizer, its checkpoints hold the whole model, and it shards the LoRA weights too.
:func:`hf_fsdp_v2_overrides` keeps that recipe (and ``xla_trainer.trainer_class`` the optimizer fix) for
methods that train every weight.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from gemma_api.accelerators import HUB_KERNELS_ENV, profile
from gemma_api.precision import BF16

from . import multihost
from .batches import default_buckets, pad_length  # noqa: F401 (pad_length is part of this module's API)
from .device import DeviceSetup

log = logging.getLogger("gemma_trainer.xla")

FSDP_AXIS = "fsdp"
MIN_BUCKET = 128
DECODER_LAYER_CLASS = "Gemma2DecoderLayer"
_ADAPTER_MARKERS = ("lora_",)  # parameter names of peft adapters: kept replicated


# ---------------------------------------------------------------- pure helpers (no torch-xla needed)


def is_tpu_run(spec) -> bool:
    """True when the spec trains on a TPU type (the torch-xla path)."""
    return profile(spec.accelerator.type).kind == "tpu"


def bucket_lengths(max_seq_length: int, min_bucket: int = MIN_BUCKET) -> tuple[int, ...]:
    """The TPU path's fixed pad lengths: :func:`gemma_trainer.batches.default_buckets` from ``min_bucket`` up."""
    return default_buckets(max_seq_length, smallest=min_bucket)


def slice_devices(spec) -> int:
    """XLA devices of the spec's slice: torch-xla sees each TensorCore as a device (TPU v3: 2 per chip, v5e: 1)."""
    return profile(spec.accelerator.type).shard_devices(spec.topology)


def training_args_overrides(spec) -> dict[str, Any]:
    """TrainingArguments extras of a TPU run (applied after the common ones).

    - ``bf16``: TPUs compute in bf16; LoRA weights stay fp32 (peft keeps adapter weights fp32).
    - ``dataloader_drop_last``: SPMD needs every batch to have the same shape (a short last batch would also
      compile a new graph).
    - ``optim="adamw_torch"``: the fused AdamW default is refused for XLA tensors.
    - ``dataloader_num_workers=0``: the parallel loader thread of torch-xla does the host->device transfer.
    """
    return {
        "bf16": True,
        "dataloader_drop_last": True,
        "optim": "adamw_torch",
        "dataloader_num_workers": 0,
        # torch.utils.checkpoint fails on XLA tensors in torch 2.9 ("module 'torch' has no attribute 'xla'");
        # prepare_model() turns on torch_xla's own checkpoint on each decoder layer instead.
        "activation_checkpointing": False,
    }


def hf_fsdp_v2_overrides() -> dict[str, Any]:
    """HF Trainer's own FSDPv2 recipe (huggingface gemma-peft blog), for an ``xla_trainer.trainer_class``
    Trainer.

    Not used by :func:`device_setup` (see the module docstring); kept for methods that train all weights, where
    sharding the trainable weights and optimizer state is the point. Needs ``xla_trainer.trainer_class``
    (optimizer creation fix) and ``training_args_overrides``.
    """
    return {
        "fsdp": True,
        "fsdp_config": {
            "fsdp_transformer_layer_cls_to_wrap": [DECODER_LAYER_CLASS],
            "xla": True,
            "xla_fsdp_v2": True,
            "xla_fsdp_grad_ckpt": True,
        },
        # xla_fsdp_grad_ckpt checkpoints each wrapped layer; HF's own would checkpoint twice.
        "activation_checkpointing": False,
    }


def hub_kernels_off() -> None:
    """transformers' hub kernels (the ``kernels`` package) cannot run on XLA: installed without the lock
    (transformers 5.25, kernels 0.19), ``model.train()`` died with ``ValueError: Unsupported device type 'xla'``
    (issue 21). ``USE_HUB_KERNELS=NO`` turns the integration off; transformers reads it when it is imported, so
    the operator also sets it in the TPU pods' environment (render/placement.py)."""
    os.environ.setdefault(HUB_KERNELS_ENV, "NO")


def device_setup(spec) -> DeviceSetup:
    """The DeviceSetup of a TPU run (``backends.device_setup`` calls this)."""
    if not is_tpu_run(spec):
        raise ValueError(f"device_setup: accelerator.type is {spec.accelerator.type!r}, not a TPU type")
    hub_kernels_off()
    return DeviceSetup(
        accelerator=spec.accelerator.type,
        device="xla",
        policy=BF16,
        nproc=1,  # one process per host; SPMD spreads it over the host's (and the slice's) devices
        pad_buckets=list(bucket_lengths(spec.training.max_seq_length)),
        training_args=training_args_overrides(spec),
    )


# ---------------------------------------------------------------- SPMD (torch-xla)


def ensure_spmd() -> None:
    """Turn SPMD on (idempotent). Must run before the first XLA tensor is created in the process."""
    import torch_xla
    import torch_xla.runtime as xr

    if xr.is_spmd():
        return
    if torch_xla._XLAC._xla_runtime_is_initialized():
        raise RuntimeError(
            "xla: the XLA runtime was started without SPMD; call gemma_trainer.xla.prepare_model() (or "
            "ensure_spmd()) before anything touches the XLA device, TrainingArguments included")
    xr.use_spmd()


def spmd_mesh(num_devices: int | None = None, axes: tuple[str, ...] = (FSDP_AXIS,), set_global: bool = True):
    """A mesh over all global devices (on a multi-host slice: every host's devices).

    ``axes=("fsdp",)`` gives a 1-D mesh; ``("data", "fsdp")`` a 2-D one of shape (1, n). The mesh becomes the
    global mesh (``xs.get_global_mesh()``) unless ``set_global`` is False.
    """
    import numpy as np
    import torch_xla.distributed.spmd as xs
    import torch_xla.runtime as xr

    ensure_spmd()
    total = xr.global_runtime_device_count()
    n = total if num_devices is None else num_devices
    if not 0 < n <= total:
        raise ValueError(f"spmd_mesh: {n} devices asked, {total} available")
    if len(axes) == 1:
        shape: tuple[int, ...] = (n,)
    elif len(axes) == 2:
        shape = (1, n)
    else:
        raise ValueError(f"spmd_mesh: 1 or 2 axes, got {axes}")
    mesh = xs.Mesh(np.arange(n), shape, axes)
    if set_global:
        xs.set_global_mesh(mesh)
    return mesh


def _is_adapter(name: str) -> bool:
    return any(marker in name for marker in _ADAPTER_MARKERS)


def fsdp_partition_spec(shape, n: int, axis: str = FSDP_AXIS) -> tuple | None:
    """Which dimension of a weight of ``shape`` to shard over ``n`` devices: the largest one divisible by
    ``n`` (the vocabulary or output features of a projection, usually). None: keep it replicated."""
    best = None
    for dim, size in enumerate(shape):
        if size % n == 0 and size >= n and (best is None or size > shape[best]):
            best = dim
    if best is None:
        return None
    return tuple(axis if d == best else None for d in range(len(shape)))


def shard_model_fsdp_v2(model, mesh=None, shard_trainable: bool | None = None) -> dict[str, tuple | None]:
    """Move ``model`` to the XLA device and shard its weights along the mesh's fsdp axis (FSDPv2 layout).

    Frozen weights are sharded; peft adapter weights (``lora_*``) stay replicated. Other trainable weights
    (methods freeze/full) are sharded too unless ``shard_trainable`` is False. Returns
    ``{parameter name: partition spec or None (replicated)}``.
    """
    import torch_xla
    import torch_xla.distributed.spmd as xs

    mesh = mesh or xs.get_global_mesh() or spmd_mesh()
    axis = FSDP_AXIS if FSDP_AXIS in mesh.axis_names else mesh.axis_names[-1]
    n = mesh.shape()[axis]
    model.to(torch_xla.device())
    specs: dict[str, tuple | None] = {}
    for name, param in model.named_parameters():
        spec = None
        if param.dim() >= 1 and not _is_adapter(name) and (not param.requires_grad or shard_trainable is not False):
            partition = fsdp_partition_spec(tuple(param.shape), n, axis)
            if partition is not None:
                xs.mark_sharding(param, mesh, partition)
                spec = partition
        specs[name] = spec
    return specs


def _batch_sharded(tensor, mesh, axis: str) -> bool:
    """Mark a [batch, ...] activation sharded along ``axis`` on its batch dimension (when it divides)."""
    import torch
    import torch_xla.distributed.spmd as xs

    n = mesh.shape()[axis]
    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "xla" or tensor.dim() < 2 \
            or tensor.shape[0] % n:
        return False
    xs.mark_sharding(tensor, mesh, (axis,) + (None,) * (tensor.dim() - 1))
    return True


def _first_output(output):
    """The activation of a module's output as transformers' FSDPv2 ``shard_output`` picks it: the tensor, the
    first element of a tuple, or ``logits`` of a model output (None when the model returned no logits)."""
    if isinstance(output, tuple):
        return output[0] if output else None
    return getattr(output, "logits", output)


def shard_activations(model, mesh=None) -> int:
    """Shard each decoder layer's output and the model's logits along the batch (FSDPv2, as transformers' own
    ``xla_fsdp_v2`` path does with ``shard_output``), so GSPMD never replicates the [batch, seq, 256k] logits on
    every core. Returns the modules hooked."""
    import torch_xla.distributed.spmd as xs

    mesh = mesh or xs.get_global_mesh()
    axis = FSDP_AXIS if FSDP_AXIS in mesh.axis_names else mesh.axis_names[-1]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model

    def hook(_module, _inputs, output):
        _batch_sharded(_first_output(output), mesh, axis)

    hooked = [m for m in base.modules() if type(m).__name__.endswith("DecoderLayer")] + [base]
    for module in hooked:
        module.register_forward_hook(hook)
    return len(hooked)


def sharding_spec(tensor) -> str:
    """The XLA sharding of a tensor as text ('' when replicated / unsharded), e.g. ``{devices=[4,1]0,1,2,3}``."""
    import torch_xla

    return torch_xla._XLAC._get_xla_sharding_spec(tensor)


def enable_xla_activation_checkpointing(model) -> int:
    """Recompute each decoder layer in the backward pass with ``torch_xla.utils.checkpoint`` (HF's default,
    ``torch.utils.checkpoint``, does not run on XLA tensors in torch 2.9). Returns the layers switched."""
    from torch_xla.utils.checkpoint import checkpoint

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    func = functools.partial(checkpoint, use_reentrant=True)
    base._set_gradient_checkpointing(enable=True, gradient_checkpointing_func=func)
    # Reentrant checkpoint needs an input that requires grad (the embeddings are frozen under LoRA).
    base.enable_input_require_grads()
    return sum(1 for m in base.modules() if getattr(m, "gradient_checkpointing", False))


def prepare_model(model, spec=None, activation_checkpointing: bool = True):
    """SPMD on, global ``fsdp`` mesh, model on the XLA device with FSDPv2 sharding of the weights and of the
    activations and logits (:func:`shard_activations`), torch_xla activation checkpointing of the decoder layers.
    Returns the model.

    Call after ``apply_method`` and before ``TrainingArguments`` / the Trainer are built."""
    ensure_spmd()
    if activation_checkpointing:
        enable_xla_activation_checkpointing(model)
    mesh = spmd_mesh()
    specs = shard_model_fsdp_v2(model, mesh)
    shard_activations(model, mesh)
    sharded = sum(1 for s in specs.values() if s is not None)
    log.info("xla: mesh %s over %d devices; %d of %d weights sharded along %s", mesh.axis_names,
             mesh.size(), sharded, len(specs), FSDP_AXIS)
    return model


# ---------------------------------------------------------------- processes, writer


def process_rank() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` of this process under SPMD: one process per host.

    Uses torch-xla's runtime; on a multi-host slice it agrees with ``multihost.from_env()`` (checked)."""
    import torch_xla.runtime as xr

    ensure_spmd()
    rank, world = xr.process_index(), xr.process_count()
    info = multihost.from_env()
    if info.multi_host and (info.rank, info.world_size) != (rank, world):
        raise multihost.MultiHostError(
            f"torch-xla sees process {rank} of {world}, but {multihost.WORKER_ID_VAR}/"
            f"{multihost.HOSTNAMES_VAR} say {info.rank} of {info.world_size}")
    return rank, 0, world


def is_writer() -> bool:
    """Only global process 0 writes checkpoints, progress and results."""
    return process_rank()[0] == 0

"""A precision policy (``gemma_api.precision``) applied to a loaded model, natively or emulated.

Under :data:`~gemma_api.precision.FP16_PROJECTIONS` (the T4's) the frozen base weights are stored in
float16 and the model runs in float32 except the q/k/v/o and MLP projections: each takes its input rounded to
float16, multiplies with float32 accumulation and gives its output rounded to float16, as a tensor core does
(:class:`HalfProjection`; the LM head too, where the model's own head runs: generation). The embedding keeps its
float16 table (tied to the LM head) and hands the stream float32 values; norms (and every other small
parameter) are float32. Training's loss head computes the logits' softmax and loss in fp32 (``loss_head``). Trainable parameters are float32 master weights under any
loss-scaled policy (a GradScaler cannot unscale fp16 gradients: transformers issue 23165).

One code path serves the accelerator and its emulation on the CPU: ``emulated=True`` changes only the kernel of
a projection: fp32 matmuls on fp16-rounded inputs and outputs instead of fp16 matmuls (about 30x faster on a CPU
than its fp16 matmuls, and the same arithmetic up to summation order). The backward rounds the incoming
gradient and the input gradient to fp16, as the fp16 GEMMs of the backward do. What the emulation does not
reproduce: cuBLAS's summation order and split-K choices (differences at fp32 rounding), fp16 kernels of the
loss head (the CPU path of ``loss_head`` rounds the same way), and anything about speed or memory bandwidth.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field

import torch
from gemma_api.facts import LINEAR_MODULES
from gemma_api.precision import PrecisionPolicy
from torch import nn
from torch.nn import functional

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


def round_to(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` rounded to ``dtype`` and kept in its own dtype (differentiable: the gradient is rounded too)."""
    return tensor.to(dtype).to(tensor.dtype)


@dataclass
class ActivationProbe:
    """Largest |value| seen per decoder layer while a probe is active (``gemmaft check-numerics``)."""

    projections: dict[int, float] = field(default_factory=dict)  # inputs and outputs of the fp16 matmuls

    def record(self, layer: int | None, *tensors: torch.Tensor) -> None:
        if layer is None:
            return
        value = max(float(t.detach().abs().float().max()) for t in tensors)
        self.projections[layer] = max(self.projections.get(layer, 0.0), value)


_PROBE: ActivationProbe | None = None


@contextlib.contextmanager
def probing(probe: ActivationProbe):
    """Within the block, every :class:`HalfProjection` reports to ``probe``."""
    global _PROBE
    previous, _PROBE = _PROBE, probe
    try:
        yield probe
    finally:
        _PROBE = previous


class EmulatedHalfLinear(torch.autograd.Function):
    """``linear(x, weight, bias)`` as an fp16 GEMM computes it, on fp32 kernels: operands rounded to ``dtype``,
    fp32 accumulation, the output rounded to ``dtype``; the backward rounds the incoming gradient and the input
    gradient the same way. It keeps for the backward what the native fp16 GEMM keeps: the weight itself and,
    when the weight trains, the input in ``dtype``."""

    @staticmethod
    def forward(ctx, x, weight, bias, dtype):
        x_half = x.detach().to(dtype)
        out = functional.linear(x_half.to(x.dtype), weight.detach().to(dtype).to(x.dtype),
                                None if bias is None else bias.detach().to(dtype).to(x.dtype))
        ctx.save_for_backward(x_half if weight.requires_grad else None, weight)
        ctx.dtype, ctx.has_bias = dtype, bias is not None
        return out.to(dtype).to(x.dtype), out

    @staticmethod
    def backward(ctx, grad_out, _grad_raw):
        x_half, weight = ctx.saved_tensors
        grad = grad_out.to(ctx.dtype).to(grad_out.dtype)
        grad_x = grad.matmul(weight.to(ctx.dtype).to(grad.dtype)).to(ctx.dtype).to(grad.dtype)
        grad_w = grad_b = None
        if x_half is not None:
            rows = grad.reshape(-1, grad.shape[-1])
            grad_w = rows.t().matmul(x_half.reshape(-1, x_half.shape[-1]).to(grad.dtype)).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.reshape(-1, grad.shape[-1]).sum(0)
        return grad_x, grad_w, grad_b, None


class HalfProjection(nn.Linear):
    """A projection whose matmul runs in ``compute_dtype`` (inputs and outputs rounded to it, fp32 accumulation)
    and hands back the caller's dtype. ``emulated``: fp32 kernels on rounded values (the CPU emulation)."""

    compute_dtype: torch.dtype = torch.float16
    emulated: bool = False
    layer_index: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.compute_dtype
        if self.emulated:
            result, out = EmulatedHalfLinear.apply(x, self.weight, self.bias, dtype)
        else:
            bias = None if self.bias is None else self.bias.to(dtype)
            out = functional.linear(x.to(dtype), self.weight.to(dtype), bias)
            result = out.to(x.dtype)
        if _PROBE is not None:
            _PROBE.record(self.layer_index, x, out)
        return result


def layer_index_of(module_name: str) -> int | None:
    """The decoder layer a module belongs to (``...layers.7.self_attn.q_proj`` -> 7), or None."""
    parts = module_name.split(".")
    for before, after in itertools.pairwise(parts):
        if before == "layers" and after.isdigit():
            return int(after)
    return None


def _to_stream(output, dtype: torch.dtype):
    return output.to(dtype) if isinstance(output, torch.Tensor) and output.is_floating_point() else output


def apply_precision(model: nn.Module, policy: PrecisionPolicy, emulated: bool = False) -> nn.Module:
    """Give ``model`` (loaded with ``policy.weights``) the policy's dtypes in place: a no-op for a policy that
    keeps every tensor in one dtype (fp32, bf16, fp16 autocast)."""
    if policy.stream == policy.projections:
        return model
    stream, compute = torch_dtype(policy.stream), torch_dtype(policy.projections)
    head = model.get_output_embeddings()
    tables = {id(p) for p in head.parameters()} if head is not None else set()  # tied to the embedding
    for name, module in model.named_modules():
        if type(module) is nn.Linear and (name.rsplit(".", 1)[-1] in LINEAR_MODULES or module is head):
            module.__class__ = HalfProjection
            module.compute_dtype, module.emulated, module.layer_index = compute, emulated, layer_index_of(name)
        elif isinstance(module, nn.Embedding):
            module.register_forward_hook(lambda _m, _a, out: _to_stream(out, stream))
        elif module is not head:
            for param in module.parameters(recurse=False):
                if param.is_floating_point() and id(param) not in tables:
                    param.data = param.data.to(stream)
            for key, buffer in module.named_buffers(recurse=False):
                if buffer.is_floating_point():
                    setattr(module, key, buffer.to(stream))
    return model


def masters_to_fp32(model: nn.Module) -> nn.Module:
    """Every trainable parameter as an fp32 master weight (in place)."""
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != torch.float32:
            param.data = param.data.float()
    return model


def trainable_to_fp32(model: nn.Module, policy: PrecisionPolicy) -> nn.Module:
    """Trainable parameters as fp32 master weights under a loss-scaled policy."""
    return masters_to_fp32(model) if policy.loss_scaling else model


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of trainable parameters whose gradient holds inf or NaN."""
    return [name for name, p in model.named_parameters()
            if p.requires_grad and p.grad is not None and not torch.isfinite(p.grad).all()]


def configure_accelerator(accelerator, policy: PrecisionPolicy) -> None:
    """Make the Trainer's ``accelerate.Accelerator`` follow ``policy``: no autocast where the policy places every
    tensor itself, and a GradScaler starting at the policy's scale wherever it scales the loss (accelerate gives
    one only on accelerators: the CPU emulation of fp16 gets ``torch.amp.GradScaler("cpu")``, the same class and
    algorithm)."""
    if policy.loss_scaling and (accelerator.scaler is not None or accelerator.device.type == "cpu"):
        kwargs = {} if policy.initial_loss_scale is None else {"init_scale": policy.initial_loss_scale}
        accelerator.scaler = torch.amp.GradScaler(accelerator.device.type, **kwargs)
        accelerator.native_amp = True
    if policy.autocast is None and accelerator.native_amp:
        from accelerate.utils import AutocastKwargs

        accelerator.autocast_handler = AutocastKwargs(enabled=False)

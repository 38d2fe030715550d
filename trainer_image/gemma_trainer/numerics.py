"""``gemmaft check-numerics``: will this spec's arithmetic hold on its accelerator? Answered on a laptop.

It loads the spec's model twice with the trainer's own loading code (``train.model_and_collator``): once in fp32
(the reference) and once under the accelerator's precision plan emulated on the CPU (``backends.emulated_setup``),
runs forward and backward on the first N rows of the spec's training data through the trainer's loss head, and
reports per decoder layer the largest |hidden state| against the range of the dtype the residual stream lives in
and the largest |value| through the projection matmuls against theirs, the loss against the fp32 reference, and
whether every trainable gradient is finite at a loss scale the GradScaler would reach. Safe (exit 0) when nothing
overflows, the loss is within :data:`LOSS_TOLERANCE` of the reference and the gradients are finite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from gemma_api.facts import MODELS
from gemma_api.precision import DTYPE_MAX, FP32

from .backends import emulated_setup
from .batches import PackedCollator
from .data import format_and_tokenize
from .device import DeviceSetup
from .guard import MAX_SKIPPED_STEPS
from .loss_head import causal_lm_loss, output_softcap
from .methods import decoder_layers
from .model import load_tokenizer, resolve_model_dir
from .precision import ActivationProbe, nonfinite_parameters, probing
from .process import Rank
from .progress import finite_or_none
from .rows import load_rows
from .train import model_and_collator

LOSS_TOLERANCE = 0.01  # relative difference to the fp32 loss a safe plan stays within
DEFAULT_LOSS_SCALE = 2.0**16  # torch.amp.GradScaler's init_scale, for a policy that names none


@dataclass(frozen=True)
class LayerFigures:
    """One decoder layer (``model.layers.<layer>``): the largest |value| of its output (inf when any value is
    inf or NaN) and of its projection matmuls' inputs and outputs (None where the policy runs them in the stream
    dtype: nothing separate to measure)."""

    layer: int
    max_hidden: float
    hidden_dtype: str
    max_projection: float | None
    projection_dtype: str

    @property
    def hidden_overflow(self) -> bool:
        return not self.max_hidden <= DTYPE_MAX[self.hidden_dtype]

    @property
    def overflow(self) -> bool:
        projection = self.max_projection is not None and not self.max_projection <= DTYPE_MAX[self.projection_dtype]
        return self.hidden_overflow or projection

    def to_json(self) -> dict:
        return {"layer": self.layer, "maxHidden": finite_or_none(self.max_hidden), "hiddenDtype": self.hidden_dtype,
                "hiddenLimit": DTYPE_MAX[self.hidden_dtype],
                "maxProjection": None if self.max_projection is None else finite_or_none(self.max_projection),
                "projectionDtype": self.projection_dtype, "projectionLimit": DTYPE_MAX[self.projection_dtype],
                "overflow": self.overflow}


@dataclass
class NumericsReport:
    accelerator: str
    policy: str
    rows: int
    tokens: int
    loss: float | None
    reference_loss: float
    grads_finite: bool
    loss_scale: float | None  # the scale at which the gradients were finite (None: none was)
    layers: list[LayerFigures] = field(default_factory=list)

    @property
    def loss_rel_diff(self) -> float | None:
        if self.loss is None:
            return None
        return abs(self.loss - self.reference_loss) / max(abs(self.reference_loss), 1e-12)

    @property
    def first_overflow(self) -> LayerFigures | None:
        return next((layer for layer in self.layers if layer.overflow), None)

    @property
    def safe(self) -> bool:
        diff = self.loss_rel_diff
        return (self.first_overflow is None and diff is not None and diff <= LOSS_TOLERANCE
                and self.grads_finite)

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("layers", "reference_loss", "grads_finite",
                                                                   "loss_scale")}
        out.update(referenceLoss=self.reference_loss, lossRelDiff=self.loss_rel_diff,
                   gradsFinite=self.grads_finite, lossScale=self.loss_scale, safe=self.safe,
                   layers=[layer.to_json() for layer in self.layers])
        return out




def _layer_maxima(layers) -> tuple[list[float], list]:
    """Forward hooks recording the largest |output| of each decoder layer (NaN anywhere counts as not finite)."""
    maxima: list[float] = [0.0] * len(layers)

    def hook_for(index):
        def hook(_module, _args, output):
            hidden = (output[0] if isinstance(output, tuple) else output).detach()
            value = float(hidden.abs().float().max())
            finite = bool(torch.isfinite(hidden).all())
            maxima[index] = max(maxima[index], value) if finite else math.inf
        return hook

    return maxima, [layer.register_forward_hook(hook_for(i)) for i, layer in enumerate(layers)]


def _loss(model, batch) -> torch.Tensor:
    unwrapped = getattr(model, "base_model", model)
    loss, _ = causal_lm_loss(model, model.get_output_embeddings(), output_softcap(unwrapped), batch)
    return loss


def _grads_at_some_scale(model, loss, policy) -> float | None:
    """The first loss scale (from the policy's first scale, halving as the GradScaler does on overflow, at most
    MAX_SKIPPED_STEPS times) at which every trainable gradient is finite; None when none is."""
    scale = (policy.initial_loss_scale or DEFAULT_LOSS_SCALE) if policy.loss_scaling else 1.0
    for attempt in range(MAX_SKIPPED_STEPS + 1):
        model.zero_grad(set_to_none=True)
        (loss * scale).backward(retain_graph=attempt < MAX_SKIPPED_STEPS)
        if not nonfinite_parameters(model):
            return scale
        scale /= 2
    return None


def _causal_lm(model):
    """The causal LM inside a (possibly PEFT-wrapped) model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def measure(model, batch, policy) -> tuple[float, list[LayerFigures], float | None]:
    """Loss, per-layer figures and the finite-gradient loss scale of one forward and backward."""
    _, layers = decoder_layers(_causal_lm(model))
    maxima, hooks = _layer_maxima(layers)
    try:
        with probing(ActivationProbe()) as probe:
            loss = _loss(model, batch)
    finally:
        for hook in hooks:
            hook.remove()
    value = float(loss.detach())
    scale = _grads_at_some_scale(model, loss, policy) if math.isfinite(value) else None
    figures = [LayerFigures(i, maxima[i], policy.stream, probe.projections.get(i), policy.projections)
               for i in range(len(layers))]
    return value, figures, scale


def _batch(spec, tokenizer, rows: int):
    records, fmt = load_rows(spec.dataset.train_uri, spec.dataset.format)
    features = format_and_tokenize(records[:rows], fmt, tokenizer, spec.training.max_seq_length)
    return PackedCollator()(features), len(features)


def check(spec, rows: int = 4, precision: str | None = None) -> NumericsReport:
    """Measure ``spec`` under its accelerator's precision plan emulated on the CPU against fp32."""
    setup = emulated_setup(spec, override=precision)
    reference_setup = DeviceSetup(spec.accelerator.type, "cpu", FP32, training_args={"use_cpu": True})
    model_dir = resolve_model_dir(spec.resolved_model_uri)
    tokenizer = load_tokenizer(model_dir, MODELS[spec.model].family)
    batch, n = _batch(spec, tokenizer, rows)
    torch.manual_seed(spec.training.seed)
    reference, _ = model_and_collator(model_dir, spec, reference_setup, Rank(), tokenizer)
    with torch.no_grad():
        reference_loss = float(_loss(reference, batch))
    del reference
    torch.manual_seed(spec.training.seed)
    model, _ = model_and_collator(model_dir, spec, setup, Rank(), tokenizer)
    loss, layers, scale = measure(model, batch, setup.policy)
    return NumericsReport(spec.accelerator.type, setup.policy.name, n, int(batch["input_ids"].numel()),
                          finite_or_none(loss), reference_loss, scale is not None, scale, layers)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if math.isfinite(value) else "inf/nan"


def verdict(report: NumericsReport) -> str:
    """One line: safe, or what broke first and the fix."""
    if report.safe:
        return (f"safe: {report.accelerator} with precision {report.policy} keeps every layer in range; loss "
                f"{_fmt(report.loss)} vs fp32 {_fmt(report.reference_loss)} ({report.loss_rel_diff:.3%}), gradients "
                f"finite at loss scale {report.loss_scale:g}")
    bad = report.first_overflow
    fix = ("Fix: train with the accelerator's default precision policy (no --precision), or on a bf16 "
           "accelerator (tpu-v3, or a GPU with compute capability >= 8.0)")
    if bad is not None:
        what, value, dtype = (("hidden state", bad.max_hidden, bad.hidden_dtype) if bad.hidden_overflow else
                              ("projection inputs or outputs", bad.max_projection, bad.projection_dtype))
        return (f"unsafe: decoder layer {bad.layer} (model.layers.{bad.layer}, the {_ordinal(bad.layer + 1)} of "
                f"{len(report.layers)}) overflows: its {what} reaches {_fmt(value)} in {dtype} (largest finite "
                f"{DTYPE_MAX[dtype]:g}); loss {_fmt(report.loss)}. {fix}")
    if not report.grads_finite:
        return f"unsafe: gradients are not finite at any loss scale the GradScaler would try. {fix}"
    return (f"unsafe: loss {_fmt(report.loss)} is {report.loss_rel_diff:.2%} off the fp32 reference "
            f"{_fmt(report.reference_loss)} (tolerance {LOSS_TOLERANCE:.0%}). {fix}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def render_text(report: NumericsReport) -> str:
    head = (f"{report.accelerator}, precision {report.policy}, emulated on the CPU: {report.rows} rows, "
            f"{report.tokens} tokens")
    lines = [head, f"{'layer':>5}  {'max |hidden|':>12} {'(dtype)':>10}  {'max |proj|':>10} {'(dtype)':>9}"]
    for layer in report.layers:
        mark = "  OVERFLOW" if layer.overflow else ""
        lines.append(f"{layer.layer:>5}  {_fmt(layer.max_hidden):>12} {layer.hidden_dtype:>10}  "
                     f"{_fmt(layer.max_projection):>10} {layer.projection_dtype:>9}{mark}")
    lines.append(verdict(report))
    return "\n".join(lines)

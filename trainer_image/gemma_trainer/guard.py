"""Stop a run whose arithmetic broke, before it commits anything of the broken state.

* A non-finite training loss stops the run at that step (checked on every micro-step on CPU and CUDA; on XLA at
  logging steps, where the loss reaches the host anyway: no extra device sync per step).
* Without loss scaling, a non-finite gradient norm stops the run before the optimizer applies it (the Trainer
  computes the norm for clipping every step anyway).
* With loss scaling (fp16), the GradScaler skips a step whose gradients overflow and lowers its scale; more than
  :data:`MAX_SKIPPED_STEPS` skipped steps in a row means no scale makes the gradients finite, and the run stops.

The run then ends ``failed`` in progress.json with the message, and the trainer exits with
``EXIT_NON_FINITE`` (no retry: the same arithmetic fails the same way); the operator reports ``NonFiniteLoss``.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

from .progress import finite_or_none

# A GradScaler starts at 2**16 and halves its scale on each skipped step: ten skips in a row (scale 64) leave no
# doubt that the gradients themselves are not finite; a healthy fp16 run skips a few steps at its start.
MAX_SKIPPED_STEPS = 10


class NonFiniteLoss(Exception):
    """The run's loss or gradients are not finite (exit code EXIT_NON_FINITE)."""

    def __init__(self, step: int, what: str, value: float | None, cause: str):
        self.step, self.what, self.value, self.cause = step, what, value, cause
        shown = "not finite" if value is None else f"{value}"
        super().__init__(f"step {step}: {what} is {shown}; stopped without committing this state. "
                         f"Likely cause: {cause}")


def likely_cause(policy) -> str:
    """What most often makes a run of ``policy`` non-finite, and the fix."""
    if policy.stream == "float16":
        return (f"precision {policy.name} keeps the residual stream in float16, whose range (65,504) Gemma's "
                "activations exceed; train with the accelerator's default policy and check it first with "
                "`gemmaft check-numerics -f SPEC`")
    if policy.projections == "float16":
        return ("an fp16 projection matmul overflowed (inputs or outputs beyond 65,504); `gemmaft check-numerics "
                "-f SPEC` names the layer; use a bf16 accelerator (nvidia-l4, TPU) or lower "
                "training.learningRate")
    return ("the optimisation diverged: lower training.learningRate, raise training.warmupRatio or lower "
            "training.maxGradNorm")




class NonFiniteGuard(TrainerCallback):
    """The checks that need the Trainer's optimizer and logs (the loss of each micro-step and the gradient norm of
    each step are checked by :func:`check_loss` and :func:`check_grad_norm`, which the Trainer calls)."""

    def __init__(self, policy, max_skipped: int = MAX_SKIPPED_STEPS):
        self.policy = policy
        self.max_skipped = max_skipped
        self.skipped_in_a_row = 0

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if not self.policy.loss_scaling or optimizer is None:
            return control
        skipped = bool(getattr(optimizer, "step_was_skipped", False))
        self.skipped_in_a_row = self.skipped_in_a_row + 1 if skipped else 0
        if self.skipped_in_a_row > self.max_skipped:
            raise NonFiniteLoss(state.global_step, f"the gradient norm of {self.skipped_in_a_row} steps in a row",
                                None, "the loss scaler skipped every one of them (gradients overflow at any "
                                      f"scale); {likely_cause(self.policy)}")
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss"):
            if logs and key in logs and finite_or_none(logs[key]) is None:
                raise NonFiniteLoss(state.global_step, f"the {key.replace('_', ' ')}", _as_float(logs[key]),
                                    likely_cause(self.policy))
        return control


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_grad_norm(norm: float | None, step: int, policy) -> None:
    """Raise :class:`NonFiniteLoss` when a step's gradient norm (the Trainer's, computed before the optimizer
    applies the gradients) is not finite and no loss scaler will skip the step."""
    if norm is not None and not policy.loss_scaling and not math.isfinite(float(norm)):
        raise NonFiniteLoss(step, "the gradient norm", float(norm), likely_cause(policy))


def check_loss(loss, step: int, policy) -> None:
    """Raise :class:`NonFiniteLoss` when a micro-step's ``loss`` (a tensor) is not finite (one host sync)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLoss(step, "the training loss", value, likely_cause(policy))

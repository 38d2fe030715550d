"""The contract between the trainer and the operator: run-folder layout, progress file, exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import ApiModel
from .inputs import RunInputs
from .methods import METHODS
from .status import EvaluationStatus

# Trainer exit codes (the Job's podFailurePolicy acts on them).
EXIT_OK = 0
EXIT_FAILED = 1  # transient or unknown: retried, counts against runPolicy.backoffLimit
EXIT_INVALID_INPUT = 2  # bad data, missing model, bad config: permanent, the Job fails at once
EXIT_NON_FINITE = 3  # the loss or gradients became inf/NaN: permanent (same arithmetic, same result), no retry
EXIT_BELOW_THRESHOLD = 4  # trained and committed, but the evaluation gate failed (spec.evaluation): no retry
EXIT_INPUTS_CHANGED = 5  # a data file pinned at the run's first start is gone or changed: permanent (api/inputs.py)
EXIT_PREEMPTED = 143  # SIGTERM received, checkpoint committed: ignored by the Job, the pod is replaced

# Where the run config is mounted in trainer pods.
CONFIG_DIR = "/etc/gemmaft"
CONFIG_FILE = "run.yaml"

# Layout of <output.uri>/<runId>/.
PROGRESS_FILE = "progress.json"
RUN_RECORD_FILE = "run.json"  # the pinned inputs and the resolved spec (api/inputs.py), written at the first start
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT_FILE = "loss.png"
CHECKPOINTS_DIR = "checkpoints"
COMMIT_MARKER = "COMMITTED"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files (tensorboard --logdir gs://BUCKET/PATH)
EVALUATION_DIR = "evaluation"  # the evaluation stage: results.json, report.md, answers/<answersKey>/
EVALUATION_RESULTS_FILE = f"{EVALUATION_DIR}/results.json"
EVALUATION_REPORT_FILE = f"{EVALUATION_DIR}/report.md"



@dataclass(frozen=True)
class ServedWeights:
    """What a finished run of one method leaves for a server: the folder, and whether it is a LoRA adapter on the
    base model (else whole weights)."""

    folder: str
    adapter: bool


# lora/qlora: the peft adapter; freeze: only the trained layers in adapter/, so merged/ (output.mergeAdapter);
# full: adapter/ holds the whole model (save_pretrained). From the method registry (api/methods.py).
SERVED_WEIGHTS: dict[str, ServedWeights] = {
    m.name: ServedWeights(MERGED_DIR if m.served_from_merged else ADAPTER_DIR, adapter=m.peft_adapter)
    for m in METHODS.values()
}

RunState = Literal["starting", "training", "checkpointing", "preempted", "completed", "failed"]


def checkpoint_dir(step: int) -> str:
    """Folder of one checkpoint, relative to the run folder."""
    return f"{CHECKPOINTS_DIR}/step-{step:08d}"


class RunProgress(ApiModel):
    """``<run>/progress.json``: written by the trainer, read by the operator into status.progress."""

    state: RunState
    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    updated_at: str
    """RFC 3339 time of this write."""
    last_checkpoint: str | None = None
    """URI of the newest committed checkpoint."""
    adapter_uri: str | None = None
    merged_model_uri: str | None = None
    message: str | None = None
    inputs: RunInputs | None = None
    """What the run read, pinned at its first start (``run.json``)."""
    evaluation: EvaluationStatus | None = None
    """The evaluation stage's gate (spec.evaluation), written with its results.json."""

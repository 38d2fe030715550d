"""``GemmaFineTune.status``: written only by the operator (status subresource)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiModel
from .evaluation_results import CheckScore
from .inputs import RunInputs
from .run_stages import TRAIN_STAGE

Phase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A condition per the Kubernetes API conventions."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class Progress(ApiModel):
    """Live training progress, read from the run's progress.json."""

    step: int = 0
    total_steps: int | None = None
    percent: float | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    updated_at: str | None = None


class Outputs(ApiModel):
    """Where the results of the current run are."""

    run_uri: str | None = None
    adapter_uri: str | None = None
    merged_model_uri: str | None = None
    metrics_uri: str | None = None
    loss_plot_uri: str | None = None


class Restarts(ApiModel):
    """How often the current run was restarted."""

    preemptions: int = 0
    """Pods lost to spot preemption or node failure (they do not count against backoffLimit); a multi-host
    slice counts once per restart, however many of its hosts went down with it."""
    failures: int = 0
    """Trainer failures (count against backoffLimit); a multi-host slice counts once per crashed attempt."""
    slice_restarts: int = 0
    """Multi-host TPU slices replaced as a whole after a host was lost."""


class JobRecord(ApiModel):
    """The Job the operator created for the current attempt, recorded right after its creation.

    A Job that vanishes (``ttlSecondsAfterFinished``, a manual delete) is judged from this record, its last watched
    state and the run's progress.json; it is never created again blindly.
    """

    name: str
    uid: str | None = None
    attempt: int = 0
    stage: str = TRAIN_STAGE
    """Which stage of the run this Job is (a run may have more than one stage)."""


class SpecUpdate(ApiModel):
    """What became of an edit to a field that does not start a new run."""

    field: str
    """spec.runPolicy or spec.pod."""
    applied_to: Literal["Job", "NextAttempt", "Operator"]
    """Job: patched on the live Job; NextAttempt: the live Job cannot change, the next attempt has it;
    Operator: the operator itself applies it."""
    message: str = ""


class RunRecord(ApiModel):
    """One run in status.runs (newest first, bounded)."""

    run_id: str
    generation: int | None = None
    phase: Phase
    reason: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    run_uri: str | None = None
    adapter_uri: str | None = None
    inputs: RunInputs | None = None
    """The data files (GCS generation, size, checksum), model identity and trainer image the run pinned."""


class StageStatus(ApiModel):
    """One stage of a distillation run (teacher pass, student training)."""

    name: Literal["teacher", "student"]
    phase: Literal["Waiting", "Pending", "Running", "Suspended", "Succeeded", "Failed"]
    """Waiting (for the stage before), or the phase of the stage's Job."""
    step: int = 0
    """Teacher: shards committed; student: optimizer steps."""
    total_steps: int | None = None
    percent: float | None = None
    output_uri: str | None = None
    """Teacher: the folder of its outputs (shared by runs with the same teacher); student: the run folder."""
    job_name: str | None = None
    message: str | None = None


class RecordedTeacher(ApiModel):
    """The resolved teacher of a distillation run, as recorded in status."""

    model: str
    model_uri: str
    adapter_uri: str | None = None
    quantization: Literal["none", "nf4"] = "none"
    from_fine_tune: str | None = None
    """The GemmaFineTune it was resolved from."""


class ServingStatus(ApiModel):
    """What spec.serving's vLLM Deployment serves."""

    run_id: str | None = None
    """The served run (newest that passed its gate, or the one gemmaft.dev/serve-run pins)."""
    run_uri: str | None = None
    deployment: str | None = None
    service: str | None = None
    """The Service of the OpenAI-compatible API (port 8000)."""
    pinned: bool = False
    """Whether gemmaft.dev/serve-run chose the run."""
    template_hash: str | None = None
    """Hash of the Deployment's spec as last applied."""
    message: str | None = None


class EvaluationStatus(ApiModel):
    """The evaluation stage's gate for the current run (from <run>/evaluation/results.json)."""

    passed: bool
    """Whether the adapter passed every check (the Evaluated condition)."""
    answers_key: str | None = None
    """Which answers were scored (spec.evaluation's rows and maxNewTokens)."""
    evaluation_key: str | None = None
    """Which spec.evaluation this gate is of; another one evaluates the same adapter again."""
    checks: list[CheckScore] = Field(default_factory=list)
    """Per check: type, minScore, score (fine-tuned) and baseScore."""
    eval_loss: float | None = None
    base_eval_loss: float | None = None
    message: str | None = None
    results_uri: str | None = None
    report_uri: str | None = None


class GemmaFineTuneStatus(ApiModel):
    phase: Phase | None = None
    """Pending, Running, Suspended, Succeeded or Failed."""
    message: str | None = None
    """Human summary of the phase."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    run_id: str | None = None
    """Current run: a hash of every field that affects training."""
    attempt: int | None = None
    """Job attempt within the current run (a multi-host slice restart starts a new attempt)."""
    job_name: str | None = None
    job: JobRecord | None = None
    """The current attempt's Job (name and uid), written before anything can delete it."""
    updates: list[SpecUpdate] = Field(default_factory=list)
    """How the latest edits of runPolicy and pod took effect."""
    retry: str | None = None
    """The last gemmaft.dev/retry annotation value acted on."""
    progress: Progress | None = None
    last_checkpoint: str | None = None
    outputs: Outputs | None = None
    restarts: Restarts | None = None
    start_time: str | None = None
    completion_time: str | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    """Earlier and current runs, newest first."""
    stage: Literal["WaitingForTeacher", "Teacher", "Student"] | None = None
    """Distillation: the stage the current run is in."""
    stages: list[StageStatus] = Field(default_factory=list)
    """Distillation: progress of each stage of the current run."""
    teacher: RecordedTeacher | None = None
    """Distillation: the teacher the current run uses (kept while a fromFineTune source is retrained)."""
    inputs: RunInputs | None = None
    """What the current run read, pinned at its first start (``<run>/run.json``)."""
    serving: ServingStatus | None = None
    """spec.serving: the run the Deployment serves."""
    evaluation: EvaluationStatus | None = None
    """spec.evaluation: the scores, thresholds and gate of the current run's evaluation stage."""

    def to_wire(self) -> dict:
        """The status as the operator writes it (a merge patch's source): camelCase, unset fields and empty lists
        left out (tests/operator/test_status_wire.py pins it)."""
        return {k: v for k, v in self.to_api().items() if v != []}

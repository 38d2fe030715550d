"""``GemmaFineTune.spec.tracking``: an MLflow or Weights & Biases server beside TensorBoard.

The trainer reports through transformers' own integrations (``report_to``), never a hand-written client. What
they read comes from the environment: the server and its credentials from the Secret named by ``secretRef``
(every key becomes an environment variable of the trainer: ``envFrom``), the experiment from the spec. Tracking
never changes what is trained: it is not part of the run id (``resource.TRAINING_FIELDS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from .base import ApiModel
from .fields import DnsSubdomain


@dataclass(frozen=True)
class Tracker:
    """One of transformers' ``report_to`` integrations: its client package and the variables it reads."""

    package: str
    """The module the integration imports (the trainer images install it)."""
    experiment_env: str
    """Where ``spec.tracking.experiment`` goes."""
    secret_keys: tuple[str, ...]
    """Variables the Secret usually holds (documentation and error messages)."""
    resume_env: dict[str, str]
    """Variables that make a later attempt of the same run continue the tracker's run ({name: template}, with
    ``{run}``: the run id and stage)."""


TRACKERS: dict[str, Tracker] = {
    "mlflow": Tracker("mlflow", "MLFLOW_EXPERIMENT_NAME",
                      ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                       "MLFLOW_TRACKING_PASSWORD"), {}),
    "wandb": Tracker("wandb", "WANDB_PROJECT", ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY"),
                     {"WANDB_RUN_ID": "{run}", "WANDB_RESUME": "allow"}),
}
"""The registry: one entry per ``spec.tracking.reportTo`` value."""

TrackerName = Literal[tuple(TRACKERS)]  # type: ignore[valid-type]


class SecretRef(ApiModel):
    """A Secret in the fine-tune's namespace, all of its keys."""

    name: DnsSubdomain


class Tracking(ApiModel):
    """Experiment tracking besides ``<run>/tensorboard/``: transformers' ``report_to`` integrations."""

    report_to: list[TrackerName] = Field(min_length=1, max_length=len(TRACKERS))
    """mlflow and/or wandb (transformers' integrations of the same names)."""
    experiment: str | None = Field(None, min_length=1, max_length=128)
    """MLflow experiment (MLFLOW_EXPERIMENT_NAME) or W&B project (WANDB_PROJECT); default the integration's."""
    secret_ref: SecretRef | None = None
    """Secret in the fine-tune's namespace whose keys become the trainer's environment: the server and its
    credentials (MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN; WANDB_API_KEY, WANDB_BASE_URL). Never in the spec."""

    @field_validator("report_to")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("name each tracker once")
        return value

    def environment(self, run: str) -> dict[str, str]:
        """The trainer's variables for these trackers (``run``: the run id and stage): no secret among them."""
        env: dict[str, str] = {}
        for name in self.report_to:
            tracker = TRACKERS[name]
            if self.experiment:
                env[tracker.experiment_env] = self.experiment
            env.update({k: v.format(run=run) for k, v in tracker.resume_env.items()})
        return env

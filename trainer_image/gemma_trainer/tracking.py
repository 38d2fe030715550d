"""``spec.tracking`` in the trainer: transformers' ``report_to`` names, and a check, before any model loads, that
each integration's client package is installed (the trainer images install them)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from gemma_api.tracking import TRACKERS

from .errors import ConfigError

TENSORBOARD = "tensorboard"
"""Always reported to: ``<run>/tensorboard/`` (``tb_events``)."""


def report_to(spec) -> list[str]:
    """TensorBoard, then spec.tracking's integrations."""
    return [TENSORBOARD, *(spec.tracking.report_to if spec.tracking is not None else ())]


def check_trackers(spec, installed: Callable[[str], object] = importlib.util.find_spec) -> None:
    """ConfigError (exit 2) naming ``spec.tracking.reportTo`` when an integration's package is missing."""
    if spec.tracking is None:
        return
    missing = [(name, TRACKERS[name].package) for name in spec.tracking.report_to
               if installed(TRACKERS[name].package) is None]
    if missing:
        raise ConfigError("spec.tracking.reportTo", [
            f"{name}: its client package {package} is not installed in this trainer image; use the project's "
            f"trainer images (they install the mlflow and wandb clients) or install it in yours"
            for name, package in missing])

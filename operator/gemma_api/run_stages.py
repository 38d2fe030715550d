"""The stages of a run: a Job's ``gemmaft.dev/stage`` label, ``status.job.stage`` and the run config's ``stage``."""

from __future__ import annotations

from typing import Literal, get_args

StageAlone = Literal["teacher", "student", "evaluate"]
"""The stages a run config can run alone, one Job each (``RunConfig.stage``)."""

TEACHER_STAGE, STUDENT_STAGE, EVALUATE_STAGE = get_args(StageAlone)

TRAIN_STAGE = "train"
"""A plain run's one Job: training, then the evaluation when the spec has one."""

DISTILLATION_STAGES = (TEACHER_STAGE, STUDENT_STAGE)
"""A distillation's Jobs, in order."""

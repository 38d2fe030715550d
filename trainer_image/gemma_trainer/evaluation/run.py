"""The run's stages with the evaluation last: ``gemmaft train`` (training, then the gate when the spec has an
evaluation; a config whose stage is ``evaluate`` runs the gate alone) and ``gemmaft evaluate``."""

from __future__ import annotations

from gemma_api.run import EXIT_OK
from gemma_api.run_stages import EVALUATE_STAGE, TEACHER_STAGE

from ..callbacks import PreemptionCallback
from ..distill.pipeline import run_config
from ..train import process_rank
from .stage import run_evaluation


def evaluate(cfg, rank, setup, adapter_uri: str | None = None) -> int:
    """The evaluation stage on the writer process (the others of a launch have nothing to do)."""
    if not process_rank(setup, rank).is_writer:
        return EXIT_OK
    preemption = PreemptionCallback()
    preemption.install()
    try:
        return run_evaluation(cfg, setup, adapter_uri, preemption)
    finally:
        preemption.uninstall()


def staged_run(cfg, rank, setup, make_setup) -> int:
    """Training (``distill.pipeline.run_config``), then the evaluation stage when the spec has one; the first exit
    code that is not OK ends the run."""
    if cfg.stage != EVALUATE_STAGE:
        code = run_config(cfg, rank=rank, setup=setup, make_setup=make_setup)
        if code != EXIT_OK or cfg.spec.evaluation is None or cfg.stage == TEACHER_STAGE:
            return code
    return evaluate(cfg, rank, setup)

"""Every stage of a run in order: ``gemmaft train -f SPEC`` locally, or the one stage a Job's config names.

A plain fine-tune is one stage (``train.run_training``). A distillation is the teacher stage (skipped when
``<teacher>/COMMITTED`` exists: the outputs are shared by every run with the same teacher key) and then the
student stage. Each stage runs on its own device setup: the teacher's is ``spec.distillation.accelerator``.
"""

from __future__ import annotations

import logging

from gemma_api.run import EXIT_FAILED, EXIT_OK
from gemma_api.run_stages import DISTILLATION_STAGES, TEACHER_STAGE

from ..backends import device_setup
from ..callbacks import PreemptionCallback
from ..config import stage_spec
from ..distributed import barrier
from ..errors import ConfigError
from ..inputs import PinnedReader, pinned_features
from ..process import work_dir
from ..progress import ProgressWriter
from ..rows import data_files
from ..storage import open_store
from ..train import process_rank, run_training, tokenized_features
from .student import StudentExtension
from .targets import TeacherOutputError, read_stage_marker
from .teacher import commit_stage, load_teacher, rows_per_shard, run_teacher_stage, teacher_collator

log = logging.getLogger("gemma_trainer")


def run_config(cfg, rank, setup, preemption=None, make_setup=device_setup) -> int:
    """Run ``cfg``'s stages in order; the first exit code that is not OK ends the run. ``make_setup`` gives each
    further stage's setup from its spec (``--emulate-accelerator`` passes the emulated one)."""
    if cfg.spec.distillation is None:
        return run_training(cfg, rank=rank, setup=setup, preemption=preemption)
    if cfg.teacher is None or not cfg.teacher.resolved:
        message = (f"names the GemmaFineTune {cfg.spec.distillation.teacher.from_fine_tune!r}, which only the "
                   "operator resolves: for a local run set teacher.modelUri and teacher.adapterUri to its model "
                   "and <run>/adapter")
        raise ConfigError("spec.distillation.teacher.fromFineTune", [message])
    for stage in (cfg.stage,) if cfg.stage else DISTILLATION_STAGES:
        stage_setup = setup if cfg.stage else make_setup(stage_spec(cfg, stage))
        run = run_teacher if stage == TEACHER_STAGE else run_student
        code = run(cfg, rank, stage_setup, preemption)
        if code != EXIT_OK:
            return code
    return EXIT_OK


def run_teacher(cfg, rank, setup, preemption=None) -> int:
    store = open_store(cfg.teacher_uri)
    if read_stage_marker(store) is not None:
        log.info("teacher outputs at %s are committed: teacher stage skipped", cfg.teacher_uri)
        return EXIT_OK
    rank = process_rank(setup, rank)
    progress = ProgressWriter(store, enabled=rank.is_writer)
    if rank.is_writer:
        progress.update(force=True, strict=True, state="starting", message="teacher pass starting")
    preemption = preemption or PreemptionCallback()
    preemption.install()
    try:
        per_shard = rows_per_shard()
        model, tokenizer = load_teacher(cfg.teacher, setup)
        train, evaluation = pinned_features(  # by the teacher's tokenizer; pinned in the teacher folder's run.json
            lambda read: tokenized_features(cfg, tokenizer, rank, "teacher-data", read=read),
            PinnedReader(cfg, store, data_files, model_uri=cfg.teacher.model_uri), progress)
        features = {"train": train} if evaluation is None else {"train": train, "eval": evaluation}
        collator = teacher_collator(model, tokenizer, setup)
        log.info("teacher %s -> %s: %s", cfg.teacher.model, cfg.teacher_uri,
                 ", ".join(f"{len(rows)} {split} rows" for split, rows in features.items()))
        code = run_teacher_stage(cfg, features, model, collator, store, progress, preemption, rank,
                                 work_dir(cfg.run_id) / "teacher-out", per_shard)
        if code != EXIT_OK:
            return code
        barrier()
        if rank.is_writer:
            if not commit_stage(cfg, store, {s: len(r) for s, r in features.items()}, per_shard):
                log.error("teacher pass ended with shards missing (another process failed)")
                return EXIT_FAILED
            progress.update(force=True, strict=True, state="completed", message="teacher outputs committed")
        barrier()
        return EXIT_OK
    finally:
        preemption.uninstall()


def run_student(cfg, rank, setup, preemption=None) -> int:
    store = open_store(cfg.teacher_uri)
    if read_stage_marker(store) is None:
        raise TeacherOutputError(f"the teacher stage has not committed its outputs at {cfg.teacher_uri}: "
                                 "run the teacher stage first")
    extension = StudentExtension(cfg, store, work_dir(cfg.run_id))
    return run_training(cfg, rank=rank, setup=setup, preemption=preemption, extension=extension)

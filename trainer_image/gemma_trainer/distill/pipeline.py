"""Every stage of a run in order: ``gemmaft train -f SPEC`` locally, or the one stage a Job's config names.

A plain fine-tune is one stage (``train.run_training``). A distillation is the teacher stage (skipped when
``<teacher>/COMMITTED`` exists: the outputs are shared by every run with the same teacher key) and then the
student stage. Each stage runs on its own accelerator plan: the teacher's is ``spec.distillation.accelerator``.
"""

from __future__ import annotations

import logging

from gemma_operator.api.distillation import stage_spec as spec_for_stage
from gemma_operator.api.run import EXIT_FAILED, EXIT_OK

from ..config import ConfigError, accelerator_plan

log = logging.getLogger("gemma_trainer")

STAGES = ("teacher", "student")


def stage_spec(cfg, stage: str | None = None):
    """The spec whose accelerator runs ``stage`` (default: the config's own stage)."""
    return spec_for_stage(cfg.spec, stage or cfg.stage)


def run_config(cfg, rank, plan, preemption=None, make_plan=accelerator_plan) -> int:
    """Run ``cfg``'s stages in order; the first exit code that is not OK ends the run. ``make_plan`` gives each
    further stage's plan from its spec (``--emulate-accelerator`` passes the emulated one)."""
    from ..train import run_training

    if cfg.spec.distillation is None:
        return run_training(cfg, rank=rank, plan=plan, preemption=preemption)
    if cfg.teacher is None or not cfg.teacher.resolved:
        message = (f"names the GemmaFineTune {cfg.spec.distillation.teacher.from_fine_tune!r}, which only the "
                   "operator resolves: for a local run set teacher.modelUri and teacher.adapterUri to its model "
                   "and <run>/adapter")
        raise ConfigError("spec.distillation.teacher.fromFineTune", [message])
    for stage in (cfg.stage,) if cfg.stage else STAGES:
        stage_plan = plan if cfg.stage else make_plan(stage_spec(cfg, stage))
        run = run_teacher if stage == "teacher" else run_student
        code = run(cfg, rank, stage_plan, preemption)
        if code != EXIT_OK:
            return code
    return EXIT_OK


def run_teacher(cfg, rank, plan, preemption=None) -> int:
    from ..callbacks import PreemptionCallback, barrier
    from ..inputs import PinnedReader, pinned_features
    from ..progress import ProgressWriter
    from ..rows import data_files
    from ..storage import open_store
    from ..train import process_rank, tokenized_features, work_dir
    from .targets import read_stage_marker
    from .teacher import commit_stage, load_teacher, rows_per_shard, run_teacher_stage, teacher_collator

    store = open_store(cfg.teacher_uri)
    if read_stage_marker(store) is not None:
        log.info("teacher outputs at %s are committed: teacher stage skipped", cfg.teacher_uri)
        return EXIT_OK
    rank = process_rank(plan, rank)
    progress = ProgressWriter(store, enabled=rank.is_writer)
    if rank.is_writer:
        progress.update(force=True, strict=True, state="starting", message="teacher pass starting")
    preemption = preemption or PreemptionCallback()
    preemption.install()
    try:
        per_shard = rows_per_shard()
        model, tokenizer = load_teacher(cfg.teacher, plan)
        train, evaluation = pinned_features(  # by the teacher's tokenizer; pinned in the teacher folder's run.json
            lambda read: tokenized_features(cfg, tokenizer, rank, "teacher-data", read=read),
            PinnedReader(cfg, store, data_files, model_uri=cfg.teacher.model_uri), progress)
        features = {"train": train} if evaluation is None else {"train": train, "eval": evaluation}
        collator = teacher_collator(model, tokenizer, plan)
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


def run_student(cfg, rank, plan, preemption=None) -> int:
    from ..storage import open_store
    from ..train import run_training, work_dir
    from .student import StudentExtension
    from .targets import TeacherOutputError, read_stage_marker

    store = open_store(cfg.teacher_uri)
    if read_stage_marker(store) is None:
        raise TeacherOutputError(f"the teacher stage has not committed its outputs at {cfg.teacher_uri}: "
                                 "run the teacher stage first")
    extension = StudentExtension(cfg, store, work_dir(cfg.run_id))
    return run_training(cfg, rank=rank, plan=plan, preemption=preemption, extension=extension)

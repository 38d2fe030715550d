"""One training run: model + data + HF Trainer, committed checkpoints, resume, preemption, result upload.

``run_training(cfg)`` returns a trainer exit code (gemma_api.run) and raises the expected errors
(ConfigError, ModelError, DataError, StorageError, CheckpointError) for ``cli.train_main`` to map.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from gemma_api.facts import MODELS
from gemma_api.plan import PlanError, batch_plan
from gemma_api.run import (
    ADAPTER_DIR,
    EXIT_NON_FINITE,
    EXIT_OK,
    EXIT_PREEMPTED,
    LOSS_PLOT_FILE,
    MERGED_DIR,
    TENSORBOARD_DIR,
)

from . import xla, xla_trainer
from .backends import device_setup
from .batches import PackedCollator, PadCollator
from .callbacks import CommitCallback, PreemptionCallback, ProgressCallback
from .checkpoints import CheckpointManager
from .data import format_and_tokenize
from .dataset import lengths_of, tokenized_dataset
from .device import DeviceSetup
from .distributed import barrier
from .guard import NonFiniteGuard, NonFiniteLoss, check_grad_norm, check_loss
from .inputs import PinnedReader, pinned_features
from .loss_head import causal_lm_loss, output_softcap
from .model import (
    apply_method,
    load_model,
    load_tokenizer,
    resolve_model_dir,
    save_merged,
    save_result,
    trainable_summary,
)
from .packed_attention import use_packed_attention
from .plot import plot_loss
from .precision import configure_accelerator
from .process import Rank, work_dir
from .progress import ProgressWriter
from .rows import DataError, data_files, load_rows, read_current
from .storage import open_store
from .tb_events import attach as attach_tensorboard
from .tracking import check_trackers, report_to
from .xla_hosts import replicate_trainable_in_place

log = logging.getLogger("gemma_trainer")

STAGING_DIR = "staging"
"""The scratch folder's subfolder the HF Trainer writes checkpoints to before they are committed."""


def total_steps(spec, n_examples: int) -> int:
    """Optimizer steps of the run (maxSteps, else ceil(epochs x steps per epoch)), from the one batch plan
    (``gemma_api.plan``) that ``gemmaft plan`` prints: right for any number of hosts."""
    try:
        return batch_plan(spec).total_steps(n_examples, spec.training.epochs, spec.training.max_steps)
    except PlanError as err:
        raise DataError(str(err)) from None


def training_arguments(spec, setup: DeviceSetup, output_dir: Path, max_steps: int, has_eval: bool,
                       report_tqdm: bool = True, run_name: str | None = None):
    """The TrainingArguments of a run; ``setup.training_args`` (per accelerator) is applied last. ``run_name``
    names the run in spec.tracking's MLflow or W&B."""
    from transformers import TrainingArguments

    t, out = spec.training, spec.output
    per_loader = batch_plan(spec).per_process_batch_size  # the host's rows per micro-step under SPMD
    kwargs = dict(  # noqa: C408 - TrainingArguments names
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=t.epochs,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=per_loader,
        per_device_eval_batch_size=per_loader,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps",
        save_steps=out.checkpoint_every_steps,
        save_total_limit=None,  # retention is done on committed checkpoints in the bucket
        eval_strategy="steps" if has_eval else "no",
        eval_steps=(t.eval_every_steps or out.checkpoint_every_steps) if has_eval else None,
        activation_checkpointing=True,
        activation_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        prediction_loss_only=True,  # the loss head returns no logits
        report_to=report_to(spec),  # <run>/tensorboard/ (gemma_trainer.tb_events), then spec.tracking's
        run_name=run_name,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (and stops the run: gemma_trainer.guard)
        disable_tqdm=not report_tqdm,
        dataloader_num_workers=0,
        save_only_model=False,
        restore_callback_states_from_checkpoint=False,
    )
    kwargs.update(setup.training_args)
    return TrainingArguments(**kwargs)


def _seeded_sampler_class():
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        """Length-grouped order that depends only on (seed, epoch): a resumed run sees the same batches."""

        def __init__(self, batch_size: int, lengths: list[int], seed: int):
            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed = seed
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            self.generator.manual_seed(self.seed + int(epoch))

    return SeededLengthGroupedSampler


def _make_trainer_class():
    from transformers import Trainer

    sampler_class = _seeded_sampler_class()

    class GemmaTrainer(Trainer):
        """The HF Trainer with a seeded length-grouped sampler and the chunked loss head
        (:mod:`gemma_trainer.loss_head`: logits only at labelled positions, never all of them at once)."""

        def __init__(self, *a, train_lengths: list[int] | None = None, setup: DeviceSetup | None = None,
                     **kw):
            self._train_lengths = train_lengths
            self._setup = setup
            self._static_shapes = setup is not None and setup.device == "xla"
            super().__init__(*a, **kw)

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            if self._setup is not None:
                configure_accelerator(self.accelerator, self._setup.policy)

        def _get_grad_norm(self, model, grad_norm=None):
            norm = super()._get_grad_norm(model, grad_norm)
            if self._setup is not None and not self._static_shapes:
                check_grad_norm(norm, self.state.global_step + 1, self._setup.policy)
            return norm

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self._setup is not None and not self._static_shapes:  # XLA: checked at logging steps (no sync)
                check_loss(loss, self.state.global_step + 1, self._setup.policy)
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            unwrapped = self.accelerator.unwrap_model(model)
            loss, _ = causal_lm_loss(model, unwrapped.get_output_embeddings(), output_softcap(unwrapped), inputs,
                                     static=self._static_shapes, num_items_in_batch=num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # what Trainer does for a model's own loss
            return (loss, {"loss": loss}) if return_outputs else loss

        def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs,
                                 resume_from_checkpoint, trial):
            """As HF's, but a checkpoint at (or past) the last step leaves no epoch to run: HF re-enters an
            unfinished epoch and checks max_steps only after a step, so it would train one step too many."""
            epochs_trained, batches_to_skip = super()._init_training_state(
                max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)
            if self.state.global_step >= max_steps:
                return num_train_epochs, 0
            return epochs_trained, batches_to_skip

        def _get_train_sampler(self, train_dataset=None):
            if self._train_lengths is None:
                return super()._get_train_sampler(train_dataset)
            # Multi-host SPMD groups the slice's global order (xla_trainer sets length_group_size).
            group = getattr(self, "length_group_size", None) \
                or self.args.train_batch_size * self.args.gradient_accumulation_steps
            return sampler_class(group, self._train_lengths, self.args.seed)

    return GemmaTrainer


def _tokenize(uri: str, spec, tokenizer, folder: Path, rank: Rank, read=None):
    """The run's tokenized rows of ``uri``: a memory-mapped ``datasets.Dataset`` in ``folder``, written once per
    host by local rank 0 (same validation and messages as reading the rows directly); ``read``: the run's
    ``inputs.PinnedReader`` (the data files pinned at its first start)."""
    def tokenize():
        rows, fmt = load_rows(uri, spec.dataset.format, read or read_current)
        features = format_and_tokenize(rows, fmt, tokenizer, spec.training.max_seq_length)
        log.info("%s: %d rows, format %s", uri, len(features), fmt)
        return features

    return tokenized_dataset(folder, tokenize, is_builder=rank.local_rank == 0, barrier=barrier)


def run_training(cfg, rank: Rank | None = None, setup: DeviceSetup | None = None, preemption=None,
                 extension=None) -> int:
    """Train ``cfg`` (a RunConfig) to completion or preemption; returns the exit code. ``extension`` (e.g. the
    distillation student's) may replace the features and collator (``prepare``) and the Trainer class."""
    from transformers import set_seed

    spec = cfg.spec
    setup = setup or device_setup(spec)
    rank = process_rank(setup, rank)
    _cap_cpu_threads(setup)
    log.info("run %s (%s) -> %s; %s", cfg.name, cfg.run_id, cfg.run_uri, setup.describe())
    check_trackers(spec)

    run_store = open_store(cfg.run_uri)
    progress = ProgressWriter(run_store, enabled=rank.is_writer)
    if rank.is_writer:
        # Fails early (exit 1, clear message) when the output bucket is unreachable.
        progress.update(force=True, strict=True, state="starting")
    manager = CheckpointManager(run_store)

    preemption = preemption or PreemptionCallback()
    preemption.install()
    try:
        model_dir = resolve_model_dir(spec.resolved_model_uri)
        tokenizer = load_tokenizer(model_dir, MODELS[spec.model].family)
        train_features, eval_features = pinned_features(
            lambda read: tokenized_features(cfg, tokenizer, rank, read=read),
            PinnedReader(cfg, run_store, data_files, model_dir), progress)

        set_seed(spec.training.seed)
        model, collator = model_and_collator(model_dir, spec, setup, rank, tokenizer)

        scratch = _fresh_scratch(cfg.run_id, rank)
        resume_dir = _download_newest_commit(manager, progress, scratch, rank)

        steps = total_steps(spec, len(train_features))
        log.info("batch: %s; %d optimizer steps over %d rows", batch_plan(spec).describe(), steps,
                 len(train_features))
        args = training_arguments(spec, setup, scratch / STAGING_DIR, steps, eval_features is not None,
                                  run_name=f"{cfg.name}-{cfg.run_id}")
        commit = CommitCallback(manager, progress, spec.output.keep_checkpoints, rank.is_writer)
        guard = NonFiniteGuard(setup.policy)
        callbacks = [preemption, guard, commit, ProgressCallback(progress, rank.is_writer)]
        if extension is not None:
            train_features, eval_features, collator = extension.prepare(train_features, eval_features, collator)
        trainer = _trainer_class(setup, extension)(
            model=model, args=args, train_dataset=train_features, eval_dataset=eval_features,
            data_collator=collator, processing_class=tokenizer, callbacks=callbacks,
            train_lengths=lengths_of(train_features), setup=setup,
        )
        attach_tensorboard(trainer, scratch / TENSORBOARD_DIR, run_store, progress, rank.is_writer)  # TensorBoard hook
        try:
            trainer.train(resume_from_checkpoint=str(resume_dir) if resume_dir else None)
        except NonFiniteLoss as err:
            return _stop_non_finite(progress, err, rank)

        if preemption.preempted:
            return _stop_preempted(progress, trainer.state.global_step, commit.last_committed_step, rank)

        _complete(cfg, trainer, tokenizer, model_dir, setup, run_store, progress, scratch, rank)
        return EXIT_OK
    finally:
        preemption.uninstall()


def _fresh_scratch(run_id: str, rank: Rank) -> Path:
    """The run's scratch folder, its staging folder emptied of an earlier attempt's leftovers by the writer; every
    rank waits for that."""
    scratch = work_dir(run_id)
    staging = scratch / STAGING_DIR
    if rank.is_writer and staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
    barrier()
    return scratch


def _complete(cfg, trainer, tokenizer, model_dir, setup: DeviceSetup, run_store, progress, scratch,
              rank: Rank) -> None:
    """After the last step: the writer saves and uploads the result; every host waits for it."""
    if setup.device == "xla":  # every host: the writer alone must be able to read the adapter afterwards
        replicate_trainable_in_place(trainer.model)
    if rank.is_writer:
        _finish(cfg, trainer, tokenizer, model_dir, setup, run_store, progress, scratch)
    barrier()


def process_rank(setup: DeviceSetup, rank: Rank | None) -> Rank:
    """This process's rank: on XLA (SPMD: one process per host) the rank and world of the TPU slice, else
    ``rank`` or torchrun's environment."""
    if setup.device == "xla":
        return Rank(*xla.process_rank())
    return rank or Rank.from_env()


def _cap_cpu_threads(setup: DeviceSetup) -> None:
    """On the CPU, torch's threads capped at the cores this process may use."""
    if setup.device == "cpu":
        import torch

        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))


def tokenized_features(cfg, tokenizer, rank: Rank, folder: str = "data", read=None):
    """The run's train and eval rows tokenized by ``tokenizer`` into ``<run scratch>/<folder>`` (eval None
    without ``dataset.evalUri``); ``read``: see :func:`_tokenize`."""
    spec = cfg.spec
    data_dir = work_dir(cfg.run_id) / folder
    train = _tokenize(spec.dataset.train_uri, spec, tokenizer, data_dir / "train", rank, read)
    evaluation = _tokenize(spec.dataset.eval_uri, spec, tokenizer, data_dir / "eval", rank, read) \
        if spec.dataset.eval_uri else None
    return train, evaluation


def _trainer_class(setup: DeviceSetup, extension):
    """GemmaTrainer, made XLA's (adapter-only checkpoints from process 0) on a TPU, and the extension's."""
    trainer = _make_trainer_class()
    if setup.device == "xla":
        trainer = xla_trainer.trainer_class(trainer)
    return extension.trainer_class(trainer) if extension is not None else trainer


def model_and_collator(model_dir, spec, setup: DeviceSetup, rank: Rank, tokenizer):
    """The model with its training method applied, and the collator its device wants: static padded buckets on XLA
    (frozen weights sharded over the slice), padding-free packed rows elsewhere."""
    model = apply_method(load_model(model_dir, spec, setup, rank.local_rank), spec, setup)
    if setup.device == "xla":
        model = xla.prepare_model(model, spec)
        collator = PadCollator(tokenizer.pad_token_id, buckets=setup.pad_buckets)
    else:
        use_packed_attention(model)  # attention row by row: no scores cross rows
        collator = PackedCollator()
    log.info("method %s: %s", spec.method, trainable_summary(model))
    return model, collator


def _download_newest_commit(manager, progress, scratch, rank: Rank):
    """The newest committed checkpoint downloaded for this rank (its metrics restored), or None on a fresh run."""
    newest = manager.newest_committed()
    if newest is None:
        return None
    resume_dir = scratch / f"resume-rank{rank.rank}" / f"checkpoint-{newest.step}"
    shutil.rmtree(resume_dir, ignore_errors=True)
    manager.download(newest, resume_dir)
    progress.load_metrics(newest.step)
    progress.fields["last_checkpoint"] = manager.uri_of(newest)
    log.info("resuming from committed checkpoint %s", manager.uri_of(newest))
    return resume_dir


def _stop_preempted(progress, step: int, committed_step, rank: Rank) -> int:
    if rank.is_writer:
        progress.update(force=True, state="preempted", step=step,
                        message=f"preempted at step {step}; resumes from {progress.fields.get('last_checkpoint')}")
    log.warning("stopped after committing step %s: exit %d", committed_step, EXIT_PREEMPTED)
    return EXIT_PREEMPTED


def _stop_non_finite(progress, err, rank: Rank) -> int:
    """The run's arithmetic broke: nothing more is committed; progress.json says failed, and why."""
    if rank.is_writer:
        progress.update(force=True, state="failed", step=err.step, loss=None, message=str(err))
    log.error("non-finite training: %s (exit %d: not retried)", err, EXIT_NON_FINITE)
    return EXIT_NON_FINITE


def _finish(cfg, trainer, tokenizer, model_dir, setup, run_store, progress, scratch):
    """The writer's part of the end: the adapter (and merged model) saved and uploaded, the loss plot, and
    progress.json marked completed."""
    spec = cfg.spec
    step = trainer.state.global_step
    model = trainer.model
    out = scratch / "result"
    shutil.rmtree(out, ignore_errors=True)
    adapter_local = save_result(model, tokenizer, spec, out / ADAPTER_DIR, spec.resolved_model_uri)
    run_store.delete_prefix(ADAPTER_DIR)
    run_store.upload_dir(str(adapter_local), ADAPTER_DIR)
    fields = {"adapter_uri": run_store.url(ADAPTER_DIR)}
    if spec.output.merge_adapter:
        merged = save_merged(model, tokenizer, spec, out / MERGED_DIR, model_dir, setup)
        if merged is not None:
            run_store.delete_prefix(MERGED_DIR)
            run_store.upload_dir(str(merged), MERGED_DIR)
            fields["merged_model_uri"] = run_store.url(MERGED_DIR)
    plot = plot_loss(progress.metrics, out / LOSS_PLOT_FILE, title=f"{cfg.name} ({spec.model}, {spec.method})")
    if plot is not None:
        run_store.write_bytes(LOSS_PLOT_FILE, plot.read_bytes())
    last_loss = next((m["loss"] for m in reversed(progress.metrics) if m.get("loss") is not None), None)
    progress.update(force=True, strict=True, state="completed", step=step, loss=last_loss, eta_seconds=0.0,
                    message=f"completed {step} steps", **fields)
    log.info("completed: adapter at %s", fields["adapter_uri"])

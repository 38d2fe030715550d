"""TrainerCallbacks: preemption (SIGTERM), checkpoint commit to the run folder, progress and metrics."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .distributed import barrier, initialized_process_group
from .progress import finite_or_none

log = logging.getLogger("gemma_trainer")


class PreemptionCallback(TrainerCallback):
    """SIGTERM sets a flag; after the current optimizer step the run saves, commits and stops."""

    def __init__(self):
        self.requested = False  # this process got SIGTERM
        self.preempted = False  # training stopped because of it
        self._previous = None

    def install(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum, frame) -> None:
        if not self.requested:
            log.warning("SIGTERM received: checkpointing after the current step, then stopping")
        self.requested = True

    def _any_rank_requested(self, args) -> bool:
        dist = initialized_process_group()
        if dist is None:
            return self.requested
        import torch

        device = args.device if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([1 if self.requested else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self._any_rank_requested(args) and state.global_step < state.max_steps:
            self.preempted = True
            control.should_save = True
            control.should_training_stop = True
        return control


class CommitCallback(TrainerCallback):
    """After the Trainer wrote ``checkpoint-N`` locally: upload it, check it, write COMMITTED, prune old ones.
    Only the world-zero process touches the run folder; the others wait at a barrier."""

    def __init__(self, manager, progress, keep: int, is_writer: bool):
        self.manager = manager
        self.progress = progress
        self.keep = keep
        self.is_writer = is_writer
        self.last_committed_step: int | None = None
        self.last_duration_s: float | None = None

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank has written its part (rng_state_<rank>.pth)
        if self.is_writer:
            started = time.monotonic()
            step = state.global_step
            local = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
            self.progress.update(force=True, state="checkpointing", step=step)
            info = self.manager.commit(local, step)
            self.manager.prune(self.keep)
            self.last_committed_step = step
            self.last_duration_s = time.monotonic() - started
            log.info("checkpoint %s committed in %.1f s", self.manager.uri_of(info), self.last_duration_s)
            self.progress.update(force=True, state="training", step=step,
                                 last_checkpoint=self.manager.uri_of(info))
            # The bucket has it now; keep local disk small.
            for old in Path(args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
                shutil.rmtree(old, ignore_errors=True)
        barrier()
        return control


class ProgressCallback(TrainerCallback):
    """One metrics.jsonl line and one plain log line per logging step; progress.json (throttled)."""

    def __init__(self, progress, is_writer: bool):
        self.progress = progress
        self.is_writer = is_writer
        self._t0 = None
        self._last_time = None
        self._last_tokens = 0
        self._start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_time = time.monotonic()
        self._last_tokens = int(state.num_input_tokens_seen or 0)
        self._start_step = state.global_step
        if self.is_writer:
            self.progress.update(force=True, state="training", step=state.global_step, total_steps=state.max_steps)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_writer or not logs:
            return control
        now = time.monotonic()
        step = state.global_step
        row = {"step": step}
        if "loss" in logs:
            tokens = int(state.num_input_tokens_seen or 0)
            dt = max(now - (self._last_time or now), 1e-9)
            tps = (tokens - self._last_tokens) / dt if tokens else None
            self._last_time, self._last_tokens = now, tokens
            row.update(loss=finite_or_none(logs.get("loss")), learning_rate=finite_or_none(logs.get("learning_rate")),
                       grad_norm=finite_or_none(logs.get("grad_norm")), epoch=finite_or_none(logs.get("epoch")),
                       tokens_per_second=finite_or_none(tps))
            done = step - self._start_step
            eta = (now - self._t0) / done * (state.max_steps - step) if done > 0 else None
            log.info("step %d/%d loss %.4f lr %.3g grad_norm %s tokens/s %s", step, state.max_steps,
                     row["loss"] if row["loss"] is not None else float("nan"), row["learning_rate"] or 0.0,
                     _fmt(row["grad_norm"]), _fmt(tps))
            row.update(_extra_losses(logs, eval_=False))
            self.progress.add_metrics(row)
            self.progress.update(state="training", step=step, epoch=row["epoch"], loss=row["loss"],
                                 tokens_per_second=row["tokens_per_second"], eta_seconds=finite_or_none(eta))
        elif "eval_loss" in logs:
            row["eval_loss"] = finite_or_none(logs["eval_loss"])
            row.update(_extra_losses(logs, eval_=True))
            log.info("step %d eval_loss %.4f", step, row["eval_loss"])
            self.progress.add_metrics(row)
            self.progress.update(step=step, eval_loss=row["eval_loss"])
        return control


def _extra_losses(logs, eval_: bool) -> dict:
    """Loss terms beyond the total (a distillation's ``kd_loss`` and ``ce_loss``, or their ``eval_`` forms)."""
    return {k: finite_or_none(v) for k, v in logs.items()
            if k.endswith("_loss") and k not in ("loss", "eval_loss") and k.startswith("eval_") == eval_}




def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"

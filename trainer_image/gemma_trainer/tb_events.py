"""TensorBoard event files in ``<run>/tensorboard/``: ``tensorboard --logdir gs://BUCKET/PATH`` (or Vertex AI
TensorBoard) shows every run of a fine-tune side by side.

transformers' own integration (``report_to="tensorboard"``) logs the loss, eval loss, learning rate and grad norm
to a local folder of the run's scratch; :class:`TensorBoardUpload` adds tokens per second (from the metrics row
the progress callback just wrote) and uploads the folder with each committed checkpoint and at the end. The
evaluation stage adds its scores (:func:`write_scores`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gemma_api.run import TENSORBOARD_DIR
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

log = logging.getLogger("gemma_trainer")


class TensorBoardUpload(TrainerCallback):
    """Throughput into transformers' TensorBoard writer; the event files uploaded after each commit."""

    def __init__(self, board: TensorBoardCallback, folder: Path, run_store, progress):
        self.board = board
        self.folder = folder
        self.run_store = run_store
        self.progress = progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        row = self.progress.metrics[-1] if self.progress.metrics else {}
        writer = self.board.tb_writer
        if writer is not None and row.get("step") == state.global_step and row.get("tokens_per_second"):
            writer.add_scalar("train/tokens_per_second", row["tokens_per_second"], state.global_step)
        return control

    def on_save(self, args, state, control, **kwargs):
        self.upload()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.upload()
        return control

    def upload(self) -> None:
        if self.board.tb_writer is not None:
            self.board.tb_writer.flush()
        if self.folder.is_dir():
            self.run_store.upload_dir(str(self.folder), TENSORBOARD_DIR)


def attach(trainer, folder: Path, run_store, progress, is_writer: bool) -> TensorBoardUpload | None:
    """Point the trainer's TensorBoard callback at ``folder`` and add the upload (the writer process only)."""
    board = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)), None)
    if board is None or not is_writer:
        return None
    board.logging_dir = str(folder)
    upload = TensorBoardUpload(board, folder, run_store, progress)
    trainer.add_callback(upload)
    return upload


def write_scores(folder: Path, run_store, step: int, results) -> None:
    """The evaluation's scores (fine-tuned and base, per check) and held-out losses at ``step``, uploaded."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(folder)) as writer:
        for i, check in enumerate(results.checks):
            writer.add_scalar(f"evaluation/{i}-{check.type}/score", check.score, step)
            if check.base_score is not None:
                writer.add_scalar(f"evaluation/{i}-{check.type}/base_score", check.base_score, step)
        for name, value in (("eval_loss", results.eval_loss), ("base_eval_loss", results.base_eval_loss)):
            if value is not None:
                writer.add_scalar(f"evaluation/{name}", value, step)
        writer.add_scalar("evaluation/passed", float(results.passed), step)
    run_store.upload_dir(str(folder), TENSORBOARD_DIR)

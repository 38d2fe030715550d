"""The student stage: a normal run (same method, checkpoints, resume, outputs) whose loss is
``kdWeight x KL(teacher || student) + (1 - kdWeight) x CE`` against the stored teacher targets.

:class:`StudentExtension` plugs into ``train.run_training``: it checks that the student's tokenisation of every
row equals the teacher's, tags each feature with its row, wraps the collator so a batch carries the teacher
tensors of its labelled positions, and adds ``compute_loss`` and the two loss terms in the logs
(``kd_loss``, ``ce_loss`` and ``eval_kd_loss``, ``eval_ce_loss`` in metrics.jsonl).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..loss_head import labelled_hidden_states, labelled_positions, output_softcap
from .heads import student_terms
from .targets import SPLITS, TARGET_KEYS, StoredTargets, TeacherOutputError

ROW_KEY = "teacher_row"  # columns added to the tokenized datasets: the row, and the split (SPLITS index)
SPLIT_KEY = "teacher_split"


def check_rows(stored: StoredTargets, features: list[dict], source: str) -> None:
    """The teacher saw exactly the student's token ids, row by row."""
    if len(stored) != len(features):
        raise TeacherOutputError(f"{source}: the teacher outputs cover {len(stored)} rows, the student has "
                                 f"{len(features)}: the data changed since the teacher pass")
    for row, feature in enumerate(features):
        if stored.input_ids(row) != list(feature["input_ids"]):
            raise TeacherOutputError(
                f"{source} row {row + 1}: the teacher's tokenizer gave other token ids than the student's; "
                "spec.distillation.teacher.model must share the student's tokenizer")


class DistillCollator:
    """The run's collator plus the teacher tensors of the batch's labelled positions, in row-major order."""

    def __init__(self, base, stored: dict[str, StoredTargets]):
        self.base = base
        self.stored = stored

    def __call__(self, features):
        batch = self.base(features)
        split = SPLITS[features[0][SPLIT_KEY]]
        batch.update(self.stored[split].targets([f[ROW_KEY] for f in features]))
        expected = int(labelled_positions(batch["shift_labels"]).sum())  # both collators add shift_labels
        if batch["teacher_ids"].shape[0] != expected:
            raise TeacherOutputError(f"teacher targets for {batch['teacher_ids'].shape[0]} positions, the batch "
                                     f"has {expected} labelled positions")
        return batch


class TermMeter:
    """Running sums of the two loss terms between two log lines, kept on the device: read (one sync) only when a
    log line pops them, not on every step."""

    def __init__(self):
        self.kd = self.ce = self.n = 0

    def add(self, kd: torch.Tensor, ce: torch.Tensor, n: torch.Tensor) -> None:
        self.kd = self.kd + kd
        self.ce = self.ce + ce
        self.n = self.n + n

    def pop(self, prefix: str) -> dict[str, float]:
        n = int(self.n)
        out = {f"{prefix}kd_loss": float(self.kd) / n, f"{prefix}ce_loss": float(self.ce) / n} if n else {}
        self.__init__()
        return out


def distill_trainer_class(base, distillation):
    weight_kd, temperature = distillation.kd_weight, distillation.temperature

    class DistillTrainer(base):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self._meters = {"train": TermMeter(), "eval": TermMeter()}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = [inputs.pop(key) for key in TARGET_KEYS]
            unwrapped = self.accelerator.unwrap_model(model)
            lm_head = unwrapped.get_output_embeddings()
            hidden, labels, mask = labelled_hidden_states(model, lm_head, inputs, use_cache=False)
            kl, ce = student_terms(hidden, lm_head.weight, output_softcap(unwrapped), temperature, labels,
                                   *(t.to(hidden.device) for t in targets))
            count = mask.sum()
            denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
            loss = (weight_kd * kl.sum() + (1.0 - weight_kd) * ce.sum()) / denominator
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss does
            self._meters["train" if model.training else "eval"].add(kl.detach().sum(), ce.detach().sum(), count)
            return (loss, (loss,)) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs = {**logs, **self._meters["train"].pop("")}
            if "eval_loss" in logs:
                logs = {**logs, **self._meters["eval"].pop("eval_")}
            return super().log(logs, *args, **kwargs)

    return DistillTrainer


class StudentExtension:
    """What ``run_training`` does differently for a distillation student."""

    def __init__(self, cfg, teacher_store, scratch: Path):
        self.cfg = cfg
        self.teacher_store = teacher_store
        self.scratch = scratch

    def prepare(self, train_features, eval_features, collator):
        spec = self.cfg.spec
        sources = {"train": (train_features, spec.dataset.train_uri)}
        if eval_features is not None:
            sources["eval"] = (eval_features, spec.dataset.eval_uri)
        stored = {}
        for split, (features, uri) in sources.items():
            stored[split] = StoredTargets(self.teacher_store, split, self.scratch / "teacher")
            check_rows(stored[split], features, uri)
        tag = {split: features.add_column(ROW_KEY, list(range(len(features)))).add_column(
                   SPLIT_KEY, [SPLITS.index(split)] * len(features))
               for split, (features, _) in sources.items()}
        return tag["train"], tag.get("eval"), DistillCollator(collator, stored)

    def trainer_class(self, base):
        return distill_trainer_class(base, self.cfg.spec.distillation)

"""The two stages on tiny models: distillation beats plain fine-tuning on held-out KL, preemption in either stage
resumes to the uninterrupted result, student-only changes reuse the teacher outputs, tokenizer mismatch refused."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from gemma_api.inputs import RunRecordFile
from gemma_api.run import COMMIT_MARKER, EXIT_OK, EXIT_PREEMPTED, RUN_RECORD_FILE
from gemma_trainer.callbacks import PreemptionCallback

from tests.trainer.conftest import make_manifest, read_metrics, run_folder, train_in_process

from .conftest import heldout_kl

pytestmark = pytest.mark.slow


def teacher_spec(model_dir, adapter=None, **extra) -> dict:
    teacher = {"model": "gemma-2-9b", "modelUri": str(model_dir)}
    if adapter:
        teacher["adapterUri"] = str(adapter)
    return {"teacher": teacher, **extra}


def load_cfg(manifest: Path, stage: str | None = None):
    from gemma_trainer.config import load_run_config

    cfg = load_run_config(str(manifest))
    return cfg.model_copy(update={"stage": stage}) if stage else cfg


def run_stages(manifest: Path, preemption=None, stage: str | None = None) -> int:
    """``gemmaft train`` in this process with a chosen preemption source."""
    from gemma_trainer.backends import device_setup
    from gemma_trainer.distill.pipeline import run_config
    from gemma_trainer.process import Rank

    cfg = load_cfg(manifest, stage)
    return run_config(cfg, Rank(), device_setup(cfg.spec), preemption)


class SigtermBeforeBatch(PreemptionCallback):
    """Delivers a real SIGTERM to this process when the teacher pass checks for the ``n``-th time (before its
    ``n``-th batch); the installed handler sets the flag, as on a spot node."""

    def __init__(self, n: int):
        self._checks, self._n, self._flag = 0, n, False
        super().__init__()

    @property
    def requested(self):
        self._checks += 1
        if self._checks == self._n:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs before this returns
        return self._flag

    @requested.setter
    def requested(self, value):
        self._flag = value


class SigtermAtStep(PreemptionCallback):
    """Delivers a real SIGTERM to this process at the end of optimizer step ``step`` of the student."""

    def __init__(self, step: int):
        super().__init__()
        self._step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self._step:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        return super().on_step_end(args, state, control, **kwargs)


def shard_tensors(teacher_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return {str(p.parent.relative_to(teacher_dir)): load_file(p) for p in sorted(teacher_dir.rglob("targets.safetensors"))}


def test_distilled_student_is_closer_to_the_teacher_than_plain_fine_tuning(tmp_path, trained_teacher, student_base,
                                                                           tiny_model_dir, task, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = {"model_dir": student_base, "train_uri": task["train"], "method": "full",
              "training": {"maxSteps": 20, "learningRate": 3e-3, "batchSize": 8, "seed": 3},
              "output": {"checkpointEverySteps": 20, "keepCheckpoints": 1}}
    plain = make_manifest(tmp_path / "plain.yaml", output_uri=tmp_path / "plain", **common)
    distilled = make_manifest(tmp_path / "distilled.yaml", output_uri=tmp_path / "distilled",
                              distillation=teacher_spec(tiny_model_dir, trained_teacher), **common)
    assert train_in_process(plain, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    assert train_in_process(distilled, tmp_path, monkeypatch=monkeypatch) == EXIT_OK

    metrics = read_metrics(Path(run_folder(distilled)))
    assert all(m["kd_loss"] >= 0 and m["ce_loss"] > 0 for m in metrics if "loss" in m)
    for m in metrics:  # the total is the documented mix of the two terms (kdWeight 0.5)
        assert m["loss"] == pytest.approx(0.5 * m["kd_loss"] + 0.5 * m["ce_loss"], rel=1e-4)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    teacher = AutoModelForCausalLM.from_pretrained(trained_teacher).eval()
    kl = {name: heldout_kl(teacher, AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer, task["heldout"])
          for name, path in (("base", student_base), ("plain", Path(run_folder(plain)) / "adapter"),
                             ("distilled", Path(run_folder(distilled)) / "adapter"))}
    print(f"held-out KL(teacher || student), nats per labelled position: base {kl['base']:.4f}, "
          f"plain fine-tune {kl['plain']:.4f}, distilled {kl['distilled']:.4f} "
          f"(distilled / plain = {kl['distilled'] / kl['plain']:.2f})")
    assert kl["plain"] < kl["base"]
    assert kl["distilled"] < 0.7 * kl["plain"], kl


def test_teacher_preemption_resumes_at_the_first_uncommitted_shard(tmp_path, tiny_model_dir, task, monkeypatch):
    monkeypatch.setenv("GEMMAFT_TEACHER_SHARD_ROWS", "8")  # 48 + 16 rows: 6 train shards, 2 eval shards
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    common = {"model_dir": tiny_model_dir, "train_uri": task["train"], "eval_uri": task["eval"],
              "training": {"batchSize": 8}, "distillation": teacher_spec(tiny_model_dir, topK=16, temperature=1.5)}
    straight = make_manifest(tmp_path / "straight.yaml", output_uri=tmp_path / "straight", **common)
    stopped = make_manifest(tmp_path / "stopped.yaml", output_uri=tmp_path / "stopped", **common)
    assert run_stages(straight, stage="teacher") == EXIT_OK

    assert run_stages(stopped, SigtermBeforeBatch(4), stage="teacher") == EXIT_PREEMPTED
    folder = Path(load_cfg(stopped).teacher_uri)
    progress = json.loads((folder / "progress.json").read_text())
    assert (progress["state"], progress["step"], progress["totalSteps"]) == ("preempted", 3, 8)
    assert sorted(p.parent.name for p in folder.glob(f"train/*/{COMMIT_MARKER}")) == [
        "shard-00000000", "shard-00000001", "shard-00000002"]
    assert not (folder / COMMIT_MARKER).exists()
    first = (folder / "train/shard-00000000" / COMMIT_MARKER).read_text()

    assert run_stages(stopped, stage="teacher") == EXIT_OK
    assert (folder / "train/shard-00000000" / COMMIT_MARKER).read_text() == first  # not redone
    marker = json.loads((folder / COMMIT_MARKER).read_text())
    assert marker["shards"] == {"train": 6, "eval": 2} and marker["topK"] == 16
    a, b = shard_tensors(Path(load_cfg(straight).teacher_uri)), shard_tensors(folder)
    assert a.keys() == b.keys() and len(a) == 8
    for shard in a:
        assert a[shard].keys() == b[shard].keys()
        for key in a[shard]:
            assert torch.equal(a[shard][key], b[shard][key]), (shard, key)
    assert_rows_as_the_teacher_sees_them_alone(a["train/shard-00000000"], tiny_model_dir, task["train"], 16, 1.5)


def assert_rows_as_the_teacher_sees_them_alone(shard, model_dir, rows_file, k, temperature):
    """The stored targets of a (packed) shard equal the teacher's full softmax on each row run alone."""
    from gemma_trainer.data import format_and_tokenize
    from gemma_trainer.rows import load_rows
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .test_heads import direct_teacher

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    rows, fmt = load_rows(str(rows_file))
    features = format_and_tokenize(rows, fmt, AutoTokenizer.from_pretrained(model_dir), 64)
    start = 0
    for feature, count in zip(features[:8], shard["target_counts"].tolist(), strict=False):
        ids, labels = torch.tensor([feature["input_ids"]]), torch.tensor(feature["labels"])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1][labels[1:] != -100]
        _, want_lp, want_rest = direct_teacher(logits, temperature, k)  # ids: near-ties may swap
        assert logits.shape[0] == count
        torch.testing.assert_close(shard["topk_logprobs"][start:start + count], want_lp, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(shard["rest_logmass"][start:start + count], want_rest, rtol=1e-4, atol=1e-4)
        start += count


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "adapter" / "adapter_model.safetensors")


def test_student_preemption_resumes_and_equals_an_uninterrupted_run(tmp_path, tiny_model_dir, task, monkeypatch):
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    common = {"model_dir": tiny_model_dir, "train_uri": task["train"], "eval_uri": task["eval"],
              "training": {"maxSteps": 8, "evalEverySteps": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
              "output": {"checkpointEverySteps": 4, "keepCheckpoints": 2},
              "distillation": teacher_spec(tiny_model_dir, topK=8, temperature=2.0, kdWeight=0.7)}
    straight = make_manifest(tmp_path / "straight.yaml", output_uri=tmp_path / "straight", **common)
    stopped = make_manifest(tmp_path / "stopped.yaml", output_uri=tmp_path / "stopped", **common)
    assert run_stages(straight) == EXIT_OK
    assert run_stages(stopped, SigtermAtStep(3)) == EXIT_PREEMPTED
    run = Path(run_folder(stopped))
    assert json.loads((run / "progress.json").read_text())["state"] == "preempted"
    assert (run / "checkpoints/step-00000003" / COMMIT_MARKER).is_file() and not (run / "adapter").exists()
    assert run_stages(stopped) == EXIT_OK  # the teacher stage is committed: only the student resumes

    a, b = _adapter(Path(run_folder(straight))), _adapter(run)
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    rows = {name: read_metrics(Path(run_folder(m))) for name, m in (("straight", straight), ("stopped", stopped))}
    assert [m["step"] for m in rows["stopped"] if "loss" in m] == list(range(1, 9))
    for term in ("loss", "kd_loss", "ce_loss", "eval_kd_loss", "eval_ce_loss"):
        want = [m[term] for m in rows["straight"] if term in m]
        assert want and [m[term] for m in rows["stopped"] if term in m] == pytest.approx(want, rel=1e-4), term


def test_student_only_changes_reuse_the_teacher_outputs(tmp_path, tiny_model_dir, task, monkeypatch, caplog):
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    caplog.set_level(logging.INFO, logger="gemma_trainer")  # the skip is an INFO record
    runs = []
    for method, kd in (("freeze", 0.5), ("lora", 0.9)):
        manifest = make_manifest(tmp_path / f"{method}.yaml", model_dir=tiny_model_dir, train_uri=task["train"],
                                 output_uri=tmp_path / "out", method=method, training={"maxSteps": 2},
                                 distillation=teacher_spec(tiny_model_dir, topK=8, kdWeight=kd))
        caplog.clear()
        assert run_stages(manifest) == EXIT_OK
        runs.append((load_cfg(manifest), caplog.text))
    (first, _), (second, second_log) = runs
    assert first.run_id != second.run_id and first.teacher_uri == second.teacher_uri
    assert "teacher stage skipped" in second_log
    assert all("kd_loss" in m for cfg, _ in runs for m in read_metrics(Path(cfg.run_uri)) if "loss" in m)
    assert (Path(first.run_uri) / "adapter" / "trainable.safetensors").is_file()  # freeze's output
    # The teacher pass and each student run pin what they read (gemma_trainer.inputs): the teacher its own weights.
    teacher = RunRecordFile.model_validate_json((Path(first.teacher_uri) / RUN_RECORD_FILE).read_text())
    assert teacher.inputs.model.uri == first.teacher.model_uri and teacher.inputs.train[0].uri == str(task["train"])
    student = RunRecordFile.model_validate_json((Path(first.run_uri) / RUN_RECORD_FILE).read_text())
    assert student.inputs.train == teacher.inputs.train and student.run_id == first.run_id


def test_a_teacher_with_another_tokenizer_is_refused_naming_the_row(tmp_path, tiny_model_dir, task, monkeypatch):
    from gemma_trainer.tiny import save_tiny_model

    other = save_tiny_model(tmp_path / "other", texts=["zebra quokka " * 50])  # other merges: other ids
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=task["train"],
                             output_uri=tmp_path / "out", training={"maxSteps": 2},
                             distillation=teacher_spec(other, topK=8))
    from gemma_trainer.distill.targets import TeacherOutputError

    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    with pytest.raises(TeacherOutputError, match=r"train.jsonl row 1: the teacher's tokenizer"):
        run_stages(manifest)

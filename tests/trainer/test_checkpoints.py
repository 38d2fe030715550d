"""Committed checkpoints: marker last, uncommitted ones ignored and left alone, retention, stop-and-resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from gemma_api.run import COMMIT_MARKER, EXIT_OK, EXIT_PREEMPTED
from gemma_trainer.checkpoints import CheckpointError, CheckpointManager
from gemma_trainer.storage import open_store
from gemma_trainer.tiny import make_dataset_rows

from .conftest import (
    REPO,
    cli_cmd,
    cli_env,
    make_manifest,
    read_metrics,
    run_cli,
    run_folder,
    train_in_process,
    write_jsonl,
)


def _fake_checkpoint(tmp_path: Path, name: str) -> Path:
    local = tmp_path / name
    (local / "sub").mkdir(parents=True)
    (local / "adapter_model.safetensors").write_bytes(b"weights-" + name.encode())
    (local / "sub" / "optimizer.pt").write_bytes(b"opt")
    return local


def test_commit_writes_marker_last_and_scan_ignores_uncommitted(tmp_path):
    store = open_store(tmp_path / "run")
    manager = CheckpointManager(store)
    manager.commit(_fake_checkpoint(tmp_path, "a"), 5)
    # A newer checkpoint whose writer died before the marker.
    store.write_bytes("checkpoints/step-00000009/adapter_model.safetensors", b"half")
    assert [(c.step, c.committed) for c in manager.scan()] == [(5, True), (9, False)]
    assert manager.newest_committed().step == 5
    marker = json.loads(store.read_text(f"checkpoints/step-00000005/{COMMIT_MARKER}"))
    assert marker["step"] == 5 and marker["files"] == ["adapter_model.safetensors", "sub/optimizer.pt"]
    restored = manager.download(manager.newest_committed(), tmp_path / "restored")
    assert (restored / "sub" / "optimizer.pt").read_bytes() == b"opt"
    assert not (restored / COMMIT_MARKER).exists()


def test_prune_keeps_newest_committed_and_never_touches_newer_uncommitted(tmp_path):
    store = open_store(tmp_path / "run")
    manager = CheckpointManager(store)
    store.write_bytes("checkpoints/step-00000001/x", b"stale")  # uncommitted, older than everything kept
    for step in (2, 4, 6):
        manager.commit(_fake_checkpoint(tmp_path, f"c{step}"), step)
    store.write_bytes("checkpoints/step-00000008/x", b"live writer")
    assert manager.prune(keep=2) == [1, 2]
    assert [(c.step, c.committed) for c in manager.scan()] == [(4, True), (6, True), (8, False)]
    assert manager.prune(keep=2) == []


def test_commit_refuses_an_upload_it_cannot_confirm(tmp_path):
    class LosingStore:
        """Uploads 'succeed' but one file never shows up in the listing."""

        def __init__(self, inner):
            self.inner, self.uri = inner, inner.uri

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def list(self, prefix=""):
            return [k for k in self.inner.list(prefix) if not k.endswith("optimizer.pt")]

    inner = open_store(tmp_path / "run")
    manager = CheckpointManager(LosingStore(inner), retries=2, retry_wait_s=0)
    with pytest.raises(CheckpointError, match="optimizer.pt"):
        manager.commit(_fake_checkpoint(tmp_path, "a"), 3)
    assert not inner.exists(f"checkpoints/step-00000003/{COMMIT_MARKER}")


@pytest.mark.slow
def test_uncommitted_checkpoint_is_not_resumed(tmp_path, tiny_model_dir, monkeypatch, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 16, seed=5))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out", training={"maxSteps": 4},
                             output={"checkpointEverySteps": 2, "keepCheckpoints": 3})
    run = Path(run_folder(manifest))
    # Garbage at step 3 without a marker: resuming from it would crash (not a checkpoint at all).
    junk = run / "checkpoints" / "step-00000003"
    junk.mkdir(parents=True)
    (junk / "trainer_state.json").write_text("{not json")
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    assert "resuming" not in capsys.readouterr().err
    assert (junk / "trainer_state.json").read_text() == "{not json"  # left alone: newer than kept ones
    assert (run / "checkpoints" / "step-00000004" / COMMIT_MARKER).is_file()


def _adapter_tensors(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "adapter" / "adapter_model.safetensors")


@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted_run(tmp_path, tiny_model_dir, monkeypatch):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("messages", 40, seed=6))
    common = {"model_dir": tiny_model_dir, "train_uri": train, "training": {"maxSteps": 40, "epochs": 1},
              "output": {"checkpointEverySteps": 4, "keepCheckpoints": 2}}
    # Same seed and hyperparameters; two output folders (so two run ids). lora dropout 0.05 is on: the RNG
    # state must be restored for the runs to match.
    straight = make_manifest(tmp_path / "straight.yaml", output_uri=tmp_path / "out-straight", **common)
    stopped = make_manifest(tmp_path / "stopped.yaml", output_uri=tmp_path / "out-stopped", **common)

    # The uninterrupted run in this process (one thread, as the subprocesses: OMP_NUM_THREADS=1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_in_process(straight, tmp_path / "w1", monkeypatch=monkeypatch) == EXIT_OK
    finally:
        torch.set_num_threads(threads)

    run = Path(run_folder(stopped))
    proc = subprocess.Popen(cli_cmd(stopped), env=cli_env(tmp_path / "w2"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((run / "checkpoints").glob(f"*/{COMMIT_MARKER}")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, stderr[-3000:]
    progress = json.loads((run / "progress.json").read_text())
    assert progress["state"] == "preempted"
    stopped_at = progress["step"]
    assert 4 <= stopped_at < 40
    assert (run / "checkpoints" / f"step-{stopped_at:08d}" / COMMIT_MARKER).is_file()
    assert not (run / "adapter").exists()

    resumed = run_cli(stopped, tmp_path / "w2")
    assert resumed.returncode == EXIT_OK, resumed.stderr[-3000:]
    assert f"step-{stopped_at:08d}" in resumed.stderr  # resumed from the preemption checkpoint

    a, b = _adapter_tensors(Path(run_folder(straight))), _adapter_tensors(run)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
    steps = [m["step"] for m in read_metrics(run) if "loss" in m]
    assert steps == list(range(1, 41))
    straight_losses = [m["loss"] for m in read_metrics(Path(run_folder(straight))) if "loss" in m]
    resumed_losses = [m["loss"] for m in read_metrics(run) if "loss" in m]
    assert resumed_losses == pytest.approx(straight_losses, rel=1e-4)


def _trainable(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


# 20 rows in batches of 4: 5 batches an epoch. Each run ends on a checkpoint step.
@pytest.mark.slow
@pytest.mark.parametrize(("training", "every", "total"), [
    ({"maxSteps": 6}, 3, 6),  # 6 steps, 5 an epoch: the second epoch is left unfinished
    ({"maxSteps": 4, "gradientAccumulationSteps": 2}, 2, 4),  # 3 steps an epoch
    ({"maxSteps": None, "epochs": 1.5}, 4, 8),  # ceil(1.5 x 5)
    ({"maxSteps": 10}, 5, 10),  # 2 whole epochs
], ids=["max-steps", "grad-accum", "fractional-epochs", "whole-epochs"])
def test_resume_from_a_checkpoint_at_the_last_step_trains_no_extra_step(tmp_path, tiny_model_dir, monkeypatch,
                                                                         training, every, total):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 20, seed=5))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out", training=training,
                             output={"checkpointEverySteps": every, "keepCheckpoints": 2})
    run = Path(run_folder(manifest))
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    last = run / "checkpoints" / f"step-{total:08d}"
    assert (last / COMMIT_MARKER).is_file()
    # As when the preemption lands after the last commit, before the adapter upload: the rerun resumes there.
    shutil.rmtree(run / "adapter")
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK

    manager = CheckpointManager(open_store(str(run)))
    assert [c.step for c in manager.scan()][-1] == total
    progress = json.loads((run / "progress.json").read_text())
    assert (progress["state"], progress["step"]) == ("completed", total)
    assert max(m["step"] for m in read_metrics(run)) == total
    adapter, checkpoint = _trainable(run / "adapter"), _trainable(last)
    assert adapter.keys() == checkpoint.keys() and adapter
    for key in adapter:  # no optimizer step after the checkpoint
        assert torch.equal(adapter[key], checkpoint[key]), key

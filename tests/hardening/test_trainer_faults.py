"""The trainer SIGKILLed (no handler runs, nothing is flushed) at seeded random steps, then rerun.

One run's life: it is killed three times at random steps (plus a random delay inside the step), each rerun must
resume from the newest COMMITTED checkpoint that existed at the kill (never from an uncommitted folder), and the
final adapter must equal an uninterrupted run's (same seed and data, dropout on). SIGTERM (graceful preemption)
is covered by tests/trainer/test_checkpoints.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from gemma_api.run import COMMIT_MARKER, EXIT_OK
from gemma_trainer.checkpoints import CheckpointManager
from gemma_trainer.storage import open_store
from gemma_trainer.tiny import make_dataset_rows

from tests.trainer.conftest import (
    REPO,
    cli_cmd,
    cli_env,
    make_manifest,
    read_metrics,
    run_folder,
    train_in_process,
    write_jsonl,
)

pytestmark = pytest.mark.slow

SEED = 20250917
KILLS = 3
MAX_STEPS = 24
STEP_LINE = re.compile(r"step (\d+)/\d+ loss")


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "adapter" / "adapter_model.safetensors")


def _kill_at(manifest: Path, work: Path, log: Path, step: int, delay_s: float) -> int:
    """Start ``gemmaft train``, SIGKILL it ``delay_s`` after its log shows ``step``; the last step it logged."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cli_cmd(manifest), env=cli_env(work), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        seen = 0
        while proc.poll() is None and time.monotonic() < deadline and seen < step:
            found = STEP_LINE.findall(log.read_text())
            seen = int(found[-1]) if found else 0
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before step {step}:\n{log.read_text()[-2000:]}"
        assert seen >= step, f"step {step} not reached in time:\n{log.read_text()[-2000:]}"
        time.sleep(delay_s)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    found = STEP_LINE.findall(log.read_text())
    return int(found[-1]) if found else 0


def _resumed_from(log_text: str) -> int | None:
    match = re.search(r"resuming from committed checkpoint \S*step-(\d{8})", log_text)
    return int(match.group(1)) if match else None


def test_sigkill_at_random_steps_resumes_from_committed_checkpoints_and_matches_a_straight_run(
        tmp_path, tiny_model_dir, monkeypatch):
    rng = random.Random(SEED)
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("messages", 48, seed=11))
    common = {"model_dir": tiny_model_dir, "train_uri": train, "training": {"maxSteps": MAX_STEPS},
              "output": {"checkpointEverySteps": 3, "keepCheckpoints": 2}}
    straight = make_manifest(tmp_path / "straight.yaml", output_uri=tmp_path / "out-straight", **common)
    killed = make_manifest(tmp_path / "killed.yaml", output_uri=tmp_path / "out-killed", **common)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        assert train_in_process(straight, tmp_path / "w-straight", monkeypatch=monkeypatch) == EXIT_OK
    finally:
        torch.set_num_threads(threads)

    run = Path(run_folder(killed))
    manager = CheckpointManager(open_store(str(run)))
    # Kill points: increasing, seeded; each rerun passes the newest commit before it is killed again.
    points = sorted(rng.sample(range(2, MAX_STEPS - 1), KILLS))
    trials = []
    expected_resume: int | None = None
    for i, point in enumerate(points):
        log = tmp_path / f"attempt-{i}.log"
        last = _kill_at(killed, tmp_path / "w-killed", log, point, rng.uniform(0.0, 0.15))
        text = log.read_text()
        assert "Traceback" not in text
        assert _resumed_from(text) == expected_resume, (expected_resume, text[-2000:])
        scan = manager.scan()
        committed = [c.step for c in scan if c.committed]
        uncommitted = [c.step for c in scan if not c.committed]
        assert not committed or committed[-1] <= last, (committed, last)
        for step in committed:  # a commit marker lists every file of its checkpoint
            marker = json.loads((run / f"checkpoints/step-{step:08d}/{COMMIT_MARKER}").read_text())
            present = {p.relative_to(run / f"checkpoints/step-{step:08d}").as_posix()
                       for p in (run / f"checkpoints/step-{step:08d}").rglob("*") if p.is_file()}
            assert set(marker["files"]) <= present
        expected_resume = committed[-1] if committed else None
        trials.append({"killed_after_step": last, "committed": committed, "uncommitted": uncommitted})

    final = subprocess.run(cli_cmd(killed), env=cli_env(tmp_path / "w-killed"), cwd=REPO, capture_output=True,
                           text=True, timeout=180, check=False)
    assert final.returncode == EXIT_OK, final.stderr[-3000:]
    assert _resumed_from(final.stderr) == expected_resume, final.stderr[-2000:]
    print(f"\ntrainer SIGKILL trials (seed {SEED}): {trials}; final run resumed from step {expected_resume}")

    a, b = _adapter(Path(run_folder(straight))), _adapter(run)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
    steps = [m["step"] for m in read_metrics(run) if "loss" in m]
    assert steps == list(range(1, MAX_STEPS + 1)), steps  # no step lost or logged twice across the kills
    assert json.loads((run / "progress.json").read_text())["state"] == "completed"

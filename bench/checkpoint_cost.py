"""Checkpoint cost: a Gemma-2-2B LoRA checkpoint (r=16, all linear layers, AdamW state) committed to the local
fake GCS, against the floor (torch.save of the same bytes to local disk); and the preemption path of a running
``gemmaft train``: SIGTERM to exit with a committed checkpoint, and restart to the first resumed step.

Part 1 (median of 3 each, side by side in this run):

* floor: ``torch.save`` of the adapter weights and both AdamW moments, one file on local disk;
* ours: the files the HF Trainer writes into ``checkpoint-N/`` for a PEFT model (``adapter_model.safetensors``,
  ``adapter_config.json``, ``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``, ``trainer_state.json``,
  ``training_args.bin``) with the real tensor names and shapes of Gemma-2-2B's LoRA, written by safetensors and
  torch.save, then ``CheckpointManager.commit`` (``Store.upload_dir`` to fake-gcs-server, listing check, the
  ``COMMITTED`` marker). The trainable count comes from ``gemma_api.methods.lora_params``.

Part 2: ``python -m gemmaft.cli train`` on a tiny Gemma 2 writing to fake GCS; after its first logged
step it gets SIGTERM; we time until it exits (expect 143 and a committed checkpoint; target well inside 30 s,
the default terminationGracePeriodSeconds of the trainer pods is larger), then start it again and time from
process start to its first resumed step (its log line ``step N/M``), next to the same figure for the fresh start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, final_json, median, say, target_line

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def lora_tensors(seed: int = 0) -> dict:
    """Every LoRA A/B matrix of Gemma-2-2B with r=16 on all linear layers, named as PEFT names them (fp32)."""
    import torch
    from gemma_api.facts import MODELS

    arch = MODELS["gemma-2-2b"]
    shapes = arch.linear_shapes()
    gen = torch.Generator().manual_seed(seed)
    r = 16
    out = {}
    for layer in range(arch.layers):
        for name in TARGETS:
            fin, fout = shapes[name]
            block = "self_attn" if name in ATTN else "mlp"
            base = f"base_model.model.model.layers.{layer}.{block}.{name}"
            out[f"{base}.lora_A.weight"] = torch.randn(r, fin, generator=gen) * 0.01
            out[f"{base}.lora_B.weight"] = torch.randn(fout, r, generator=gen) * 0.01
    return out


def optimizer_with_state(tensors: dict):
    """A torch AdamW over the tensors, after one step: two fp32 moments per parameter (what optimizer.pt holds)."""
    import torch

    params = [torch.nn.Parameter(t) for t in tensors.values()]
    opt = torch.optim.AdamW(params, lr=2e-4)
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return opt, sched


def write_trainer_checkpoint(folder: Path, tensors: dict, opt, sched, step: int) -> None:
    """The files of an HF Trainer checkpoint-N folder for a PEFT LoRA model, written the way they are written."""
    import random

    import numpy as np
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": list(TARGETS), "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "google/gemma-2-2b"}, indent=2))
    torch.save(opt.state_dict(), folder / "optimizer.pt")
    torch.save(sched.state_dict(), folder / "scheduler.pt")
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": [
        {"step": s, "loss": 1.0} for s in range(1, step + 1)]}, indent=2))
    torch.save({"learning_rate": 2e-4, "seed": 42}, folder / "training_args.bin")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def part1(gcs_bucket: str, work: Path, repeats: int) -> dict:
    import torch
    from gemma_api.facts import MODELS
    from gemma_api.methods import lora_params
    from gemma_trainer.checkpoints import CheckpointManager
    from gemma_trainer.storage import open_store

    expected = lora_params(MODELS["gemma-2-2b"], 16, ["all-linear"])
    tensors = lora_tensors()
    n = sum(t.numel() for t in tensors.values())
    assert n == expected, (n, expected)
    opt, sched = optimizer_with_state(tensors)
    say(f"part 1: Gemma-2-2B LoRA r=16 all-linear: {n:,} trainable parameters (lora_params: {expected:,}); "
        f"AdamW state 2 x {n:,} fp32")

    floor_s, save_s, commit_s, total_s = [], [], [], []
    floor_bytes = ours_bytes = 0
    for i in range(repeats):
        # Floor: the same tensors (weights + both moments) in one torch.save to local disk.
        floor_file = work / f"floor-{i}.pt"
        state = opt.state_dict()["state"]
        blob = {"weights": tensors, "exp_avg": [s["exp_avg"] for s in state.values()],
                "exp_avg_sq": [s["exp_avg_sq"] for s in state.values()]}
        t0 = time.perf_counter()
        torch.save(blob, floor_file)
        with open(floor_file, "rb+") as f:
            os.fsync(f.fileno())
        floor_s.append(time.perf_counter() - t0)
        floor_bytes = floor_file.stat().st_size
        floor_file.unlink()

        # Ours: the trainer's checkpoint folder, then a committed upload through CheckpointManager.
        store = open_store(f"gs://{gcs_bucket}/ckpt-bench-{uuid.uuid4().hex[:8]}")
        manager = CheckpointManager(store)
        local = work / f"checkpoint-{i}"
        t0 = time.perf_counter()
        write_trainer_checkpoint(local, tensors, opt, sched, step=100 + i)
        for p in local.iterdir():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
        t1 = time.perf_counter()
        info = manager.commit(local, 100 + i)
        t2 = time.perf_counter()
        assert manager.newest_committed() == info and info.committed
        ours_bytes = folder_bytes(local)
        shutil.rmtree(local)
        store.delete_prefix("")
        save_s.append(t1 - t0)
        commit_s.append(t2 - t1)
        total_s.append(t2 - t0)
        say(f"  run {i + 1}: floor torch.save {floor_s[-1]:.2f} s; ours: write {save_s[-1]:.2f} s + "
            f"upload/check/COMMITTED {commit_s[-1]:.2f} s = {total_s[-1]:.2f} s")
    ratio = median(total_s) / median(floor_s)
    say(f"  median: floor {median(floor_s):.2f} s ({floor_bytes / 1e6:.0f} MB); ours {median(total_s):.2f} s "
        f"({ours_bytes / 1e6:.0f} MB: write {median(save_s):.2f} s, commit to fake GCS {median(commit_s):.2f} s); "
        f"ours / floor = {ratio:.2f}x")
    return {"trainable_params": n, "floor_bytes": floor_bytes, "checkpoint_bytes": ours_bytes,
            "floor_s_median": median(floor_s), "write_s_median": median(save_s),
            "commit_s_median": median(commit_s), "total_s_median": median(total_s), "ratio_to_floor": ratio,
            "runs": {"floor_s": floor_s, "write_s": save_s, "commit_s": commit_s}}


# ---------------------------------------------------------------------------------------------- part 2

STEP_LINE = re.compile(r" step (\d+)/(\d+) loss ")


class Trainer:
    """A ``gemmaft train`` subprocess; a thread reads its stderr lines with their arrival times."""

    def __init__(self, cmd: list[str], env: dict, log_path: Path):
        import queue
        import threading

        self.log_path = log_path
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.log_path, "w") as log:
            for line in self.proc.stderr:
                self.lines.put((time.perf_counter() - self.started, line))
                log.write(line)
                log.flush()
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern, timeout: float, after: int = 0):
        """(seconds since start, match) of the first line matching ``pattern`` with a step > ``after``."""
        import queue

        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                self.stop()
                raise TimeoutError(f"no {pattern.pattern!r} within {timeout} s; log: {self.log_path}")
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                rc = self.proc.wait()
                raise RuntimeError(f"trainer exited with {rc} before {pattern.pattern!r}; "
                                   f"log: {self.log_path}: {self.log_path.read_text()[-2000:]}")
            seconds, line = item
            match = pattern.search(line)
            if match and int(match.group(1)) > after:
                return seconds, match

    def wait_exit(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        self._reader.join(timeout=10)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def part2(gcs_bucket: str, work: Path) -> dict:
    import yaml
    from gemma_api import RunConfig, parse_finetune
    from gemma_api.run import EXIT_PREEMPTED
    from gemma_trainer.checkpoints import CheckpointManager
    from gemma_trainer.storage import open_store
    from gemma_trainer.tiny import DATASET_KINDS, dataset_texts, make_dataset_rows, save_tiny_model

    rows = make_dataset_rows("prompt-completion", 64, seed=1)
    model_dir = save_tiny_model(work / "tiny", texts=[t for k in DATASET_KINDS
                                                     for t in dataset_texts(make_dataset_rows(k, 64))])
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = f"gs://{gcs_bucket}/preempt-{uuid.uuid4().hex[:8]}"
    manifest = work / "ft.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
        "metadata": {"name": "bench-preempt", "namespace": "default"},
        "spec": {"model": "gemma-2-2b", "modelUri": str(model_dir), "method": "lora",
                 "dataset": {"trainUri": str(data), "format": "prompt-completion"},
                 "lora": {"r": 8, "alpha": 16}, "accelerator": {"type": "cpu"},
                 "training": {"maxSteps": 100000, "batchSize": 4, "gradientAccumulationSteps": 1,
                              "maxSeqLength": 64, "loggingSteps": 1, "learningRate": 1e-3},
                 "output": {"uri": output, "checkpointEverySteps": 100000}},
    }, sort_keys=False))
    cfg = RunConfig.for_finetune(parse_finetune(yaml.safe_load(manifest.read_text())))
    manager = CheckpointManager(open_store(cfg.run_uri))
    cmd = [sys.executable, "-m", "gemmaft.cli", "train", "-f", str(manifest)]
    env = dict(os.environ, GEMMAFT_WORK_DIR=str(work / "scratch"), GEMMAFT_CACHE_DIR=str(work / "cache"),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")

    say("part 2: `gemmaft train` subprocess, tiny Gemma 2 on CPU, output to fake GCS")
    first = Trainer(cmd, env, work / "trainer-1.log")
    t_first_step, match = first.wait_for(STEP_LINE, timeout=240)
    # Let it run a few steps, as a real run would be mid-training.
    _, match = first.wait_for(STEP_LINE, timeout=120, after=int(match.group(1)) + 2)
    sent = time.perf_counter()
    first.proc.send_signal(signal.SIGTERM)
    rc = first.wait_exit(timeout=120)
    exit_s = time.perf_counter() - sent
    newest = manager.newest_committed()
    say(f"  fresh start: first step logged {t_first_step:.1f} s after process start")
    say(f"  SIGTERM at step {match.group(1)}: exited with {rc} after {exit_s:.2f} s; newest committed checkpoint: "
        f"{manager.uri_of(newest) if newest else None}")
    ok = rc == EXIT_PREEMPTED and newest is not None

    second = Trainer(cmd, env, work / "trainer-2.log")
    resumed_step = newest.step if newest else 0
    t_resumed, match2 = second.wait_for(STEP_LINE, timeout=240)
    resumed_from_ckpt = int(match2.group(1)) == resumed_step + 1
    second.proc.send_signal(signal.SIGTERM)
    rc2 = second.wait_exit(timeout=120)
    say(f"  restart: first step logged {t_resumed:.1f} s after process start: step {match2.group(1)} "
        f"(resumed from step {resumed_step}: {'yes' if resumed_from_ckpt else 'NO'}); second run exited {rc2}")
    return {"first_step_s_fresh": t_first_step, "sigterm_to_exit_s": exit_s, "exit_code": rc,
            "committed_step": resumed_step, "committed_ok": ok, "first_resumed_step_s": t_resumed,
            "resumed_at_step": int(match2.group(1)), "resumed_from_checkpoint": resumed_from_ckpt}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-part2", action="store_true")
    args = parser.parse_args(argv)
    from gemma_local.gcs import local_gcs

    work = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    try:
        with local_gcs() as gcs:
            os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
            bucket = "bench-ckpt"
            gcs.bucket(bucket)
            figures = {"save_and_commit": part1(bucket, work, args.repeats)}
            if not args.skip_part2:
                figures["preemption"] = part2(bucket, work)
        p1 = figures["save_and_commit"]
        targets = {}
        say("targets:")
        say(f"  2B LoRA checkpoint commit: {p1['total_s_median']:.2f} s median, {p1['ratio_to_floor']:.2f}x the "
            f"torch.save floor (no fixed target; reported)")
        if "preemption" in figures:
            p2 = figures["preemption"]
            targets["sigterm_to_exit_s"] = target_line("SIGTERM to exit with a committed checkpoint",
                                                       p2["sigterm_to_exit_s"], 30.0, False, " s")
            say(f"  committed checkpoint and exit 143: {'yes' if p2['committed_ok'] else 'NO'}; resumed from it: "
                f"{'yes' if p2['resumed_from_checkpoint'] else 'NO'}")
        say("  (CPU machine shared with other work: absolute seconds are indicative only)")
        final_json("checkpoint_cost", {**figures, "targets": targets})
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

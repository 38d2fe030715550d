"""A short LoRA run of the real trainer on the real Gemma 3 270M weights: the held-out loss falls by at least a
quarter, and the adapter loads with AutoPeftModelForCausalLM from its folder alone on another machine."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gemma_api.run import EXIT_OK

from tests.support.hub import offline_env, put_in_hub_cache

from .conftest import LANE, RECORDS, WEIGHTS

pytestmark = LANE
STEPS, BATCH, MAX_SEQ = 6, 4, 96
TRAIN_ROWS, EVAL_ROWS = STEPS * BATCH, 8


def _rows(name: str, n: int) -> list[dict]:
    return [json.loads(line) for line in (RECORDS / name).read_text().splitlines()[:n]]


def _manifest(path: Path, train: Path, evals: Path, out: Path, accelerator: str = "cpu") -> Path:
    spec = {
        "model": "gemma-3-270m", "modelUri": WEIGHTS, "method": "lora",
        "dataset": {"trainUri": str(train), "evalUri": str(evals), "format": "prompt-completion"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "training": {"maxSteps": STEPS, "batchSize": BATCH, "gradientAccumulationSteps": 1, "learningRate": 2e-3,
                     "maxSeqLength": MAX_SEQ, "warmupRatio": 0.0, "lrScheduler": "constant", "seed": 11},
        "accelerator": {"type": accelerator},
        "output": {"uri": str(out), "checkpointEverySteps": STEPS, "keepCheckpoints": 1},
    }
    doc = {"apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
           "metadata": {"name": "real-gemma-lane", "namespace": "default"}, "spec": spec}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _train_and_measure(gemma3_dir, tokenizer, tmp: Path, accelerator: str = "cpu") -> dict:
    """Held-out loss of the base, ``gemmaft train`` (in this process; a GPU ``accelerator`` emulated on the CPU:
    ``--emulate-accelerator``), held-out loss with the adapter (both in fp32)."""
    from gemma_trainer.cli import train_main
    from gemma_trainer.compare import heldout_loss, load_base, with_adapter

    from tests.trainer.conftest import run_folder, write_jsonl

    train = write_jsonl(tmp / "train.jsonl", _rows("train.jsonl", TRAIN_ROWS))
    evals = _rows("eval.jsonl", EVAL_ROWS)
    manifest = _manifest(tmp / "ft.yaml", train, write_jsonl(tmp / "eval.jsonl", evals), tmp / "out", accelerator)
    base = load_base(gemma3_dir)
    before = heldout_loss(base, tokenizer, evals, "prompt-completion", MAX_SEQ)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMMAFT_WORK_DIR", str(tmp / "work"))
        started = time.monotonic()
        code = train_main(argparse.Namespace(file=str(manifest), output_uri=None, max_steps=None,
                                             emulate_accelerator=accelerator != "cpu"))
        seconds = time.monotonic() - started
    assert code == EXIT_OK
    adapter = Path(run_folder(manifest)) / "adapter"
    after = heldout_loss(with_adapter(base, adapter), tokenizer, evals, "prompt-completion", MAX_SEQ)
    print(f"\n[real_gemma] LoRA r8 on {accelerator}, {TRAIN_ROWS} rows, {STEPS} steps x {BATCH} rows: held-out loss "
          f"{before:.3f} -> {after:.3f} ({100 * (1 - after / before):.0f}% lower), train {seconds:.0f} s")
    metrics = [json.loads(line) for line in (adapter.parent / "metrics.jsonl").read_text().splitlines()]
    return {"adapter": str(adapter), "before": before, "after": after, "evals": evals,
            "losses": [m.get("loss") for m in metrics if "loss" in m]}


def shared_run(tmp_path_factory, name: str, train) -> dict:
    """``train(folder)`` once per test session, shared by the xdist workers (a file lock; the first one trains)."""
    from gemma_trainer.packaged import locked

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's folder, above the workers' own
    result = shared / f"{name}.json"
    with locked(shared / f"{name}.lock"):
        if not result.is_file():
            tmp = shared / name
            tmp.mkdir(exist_ok=True)
            result.write_text(json.dumps(train(tmp)))
    run = json.loads(result.read_text())
    return {**run, "adapter": Path(run["adapter"])}


@pytest.fixture(scope="session")
def lora_run(gemma3_dir, gemma3_tokenizer, tmp_path_factory):
    return shared_run(tmp_path_factory, "real-gemma-lora-run",
                      lambda tmp: _train_and_measure(gemma3_dir, gemma3_tokenizer, tmp))


@pytest.fixture(scope="session")
def t4_lora_run(gemma3_dir, gemma3_tokenizer, tmp_path_factory):
    """The same run with accelerator nvidia-tesla-t4, its precision plan emulated on the CPU."""
    return shared_run(tmp_path_factory, "real-gemma-t4-lora-run",
                      lambda tmp: _train_and_measure(gemma3_dir, gemma3_tokenizer, tmp, "nvidia-tesla-t4"))


def test_heldout_loss_falls_by_at_least_a_quarter(lora_run):
    assert lora_run["after"] <= 0.75 * lora_run["before"], lora_run


def test_emulated_t4_run_learns_as_the_fp32_run_does(lora_run, t4_lora_run):
    """The T4's arithmetic (fp16 projections around an fp32 stream, loss-scaled backward): every step's loss is
    finite, and the final held-out loss is within 5% of the fp32 run's. Loaded the old way (fp16 weights under
    fp16 autocast), this run logged loss 0.0 with NaN gradients and ended "completed" untrained."""
    assert all(loss is not None and loss > 0 for loss in t4_lora_run["losses"]), t4_lora_run["losses"]
    assert len(t4_lora_run["losses"]) == STEPS
    assert t4_lora_run["after"] <= 0.75 * t4_lora_run["before"], t4_lora_run
    assert abs(t4_lora_run["after"] - lora_run["after"]) <= 0.05 * lora_run["after"], (t4_lora_run, lora_run)


LOAD_ELSEWHERE = """
import json, sys, torch
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok.apply_chat_template([{"role": "user", "content": sys.argv[2]}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
with torch.no_grad():
    out = model.generate(**ids, max_new_tokens=28, do_sample=False,
                         eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")])
print(json.dumps({"base": model.peft_config["default"].base_model_name_or_path,
                  "answer": tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()}))
"""


def test_adapter_folder_alone_loads_with_auto_peft_elsewhere(lora_run, gemma3_dir, gemma3_tokenizer, tmp_path):
    """Another machine that has google/gemma-3-270m in its Hub cache, and the adapter folder, nothing else."""
    from gemma_trainer.compare import answer, load_base, with_adapter

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_run["adapter"], adapter)
    hub = tmp_path / "hub"
    put_in_hub_cache(hub, "google/gemma-3-270m", gemma3_dir, link=True)
    prompt = lora_run["evals"][0]["prompt"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **offline_env(hub)}
    done = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, str(adapter), prompt], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = json.loads(done.stdout.strip().splitlines()[-1])
    assert elsewhere["base"] == "google/gemma-3-270m"
    here = answer(with_adapter(load_base(gemma3_dir), lora_run["adapter"]), gemma3_tokenizer, prompt, 28)
    assert elsewhere["answer"] == here
    # The learned format: the answer opens with one JSON record of the four fields, taken from the note. (Ending
    # the turn right after it takes longer: the pretrained model puts <end_of_turn> near the bottom of 262,144.)
    record, _ = json.JSONDecoder().raw_decode(here)
    assert sorted(record) == ["age", "city", "job", "name"], here
    assert record["name"] in prompt and str(record["age"]) in prompt, (prompt, here)

"""The evaluation stage on the real Gemma 3 270M, through ``gemmaft train`` (training, then the gate, one call):
a short fine-tune on examples/records checked with jsonSchema and exactMatch passes its gate where the base model
fails it; a run of one step fails its gate (exit 4, BelowThreshold).

The lane's shared 6-step run (``lora_run``) is too short for this: its answers carry the right record but go on
after it (it has not learned to end the turn yet), so its exactMatch and jsonSchema scores are 0; the run here
trains 20 steps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from gemma_api.run import EXIT_BELOW_THRESHOLD, EXIT_OK

from tests.trainer.conftest import run_folder, write_jsonl

from .conftest import LANE
from .test_lora_run import _manifest, _rows

# Training and generation of both models on the CPU.
pytestmark = [*LANE, pytest.mark.timeout(3000)]

RECORD = {"type": "object", "required": ["name", "age", "city", "job"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
EVALUATION = {"maxNewTokens": 40, "batchSize": 8,
              "checks": [{"type": "jsonSchema", "schema": RECORD, "minScore": 0.75},
                         {"type": "exactMatch", "minScore": 0.5}]}
EVAL_ROWS = 8


def train_with_gate(tmp: Path, steps: int, train_rows: int) -> tuple[int, dict]:
    """``gemmaft train`` (in this process) of a manifest with ``spec.evaluation``: its exit code and results.json."""
    from gemma_trainer.cli import train_main

    train = write_jsonl(tmp / "train.jsonl", _rows("train.jsonl", train_rows))
    evals = write_jsonl(tmp / "eval.jsonl", _rows("eval.jsonl", EVAL_ROWS))
    manifest = _manifest(tmp / "ft.yaml", train, evals, tmp / "out")
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["training"]["maxSteps"] = steps
    doc["spec"]["evaluation"] = EVALUATION
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMMAFT_WORK_DIR", str(tmp / "work"))
        code = train_main(argparse.Namespace(file=str(manifest), output_uri=None, max_steps=None))
    results = json.loads((Path(run_folder(manifest)) / "evaluation" / "results.json").read_text())
    scores = {c["type"]: (c["baseScore"], c["score"]) for c in results["checks"]}
    print(f"\n[real_gemma] {steps} steps, evaluation of {results['rows']} rows: (base, tuned) {scores}; held-out loss "
          f"{results['baseEvalLoss']:.3f} -> {results['evalLoss']:.3f}; exit {code}: {results['message']}")
    return code, results


def test_the_base_fails_the_gate_and_the_fine_tuned_adapter_passes(tmp_path):
    code, results = train_with_gate(tmp_path, steps=20, train_rows=40)
    assert code == EXIT_OK and results["passed"], results["message"]
    assert not results["basePassed"]
    assert all(c["score"] > c["baseScore"] for c in results["checks"])
    assert results["evalLoss"] < results["baseEvalLoss"]


def test_a_run_with_too_few_steps_fails_its_gate(tmp_path):
    code, results = train_with_gate(tmp_path, steps=1, train_rows=4)
    assert code == EXIT_BELOW_THRESHOLD
    assert not results["passed"] and results["reason"] == "BelowThreshold"
    assert results["message"].startswith("checks[0] jsonSchema scored ")

"""The evaluation stage on the real Gemma 3 270M: the lane's short LoRA run on examples/records, checked with
jsonSchema and exactMatch: the base model fails the gate, the fine-tuned adapter passes it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from gemma_operator.api.run import EXIT_OK

from tests.trainer.conftest import run_folder, write_jsonl

from .conftest import LANE
from .test_lora_run import _manifest, lora_run  # noqa: F401 - the shared run fixture

# Generation of both models on the CPU, after the shared run's training when this file runs alone.
pytestmark = [*LANE, pytest.mark.timeout(2400)]

RECORD = {"type": "object", "required": ["name", "age", "city", "job"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
EVALUATION = {"maxNewTokens": 40, "batchSize": 8,
              "checks": [{"type": "jsonSchema", "schema": RECORD, "minScore": 0.75},
                         {"type": "exactMatch", "minScore": 0.25}]}


def test_base_fails_the_gate_and_the_adapter_passes(lora_run, tmp_path, monkeypatch):  # noqa: F811
    import yaml
    from gemma_trainer.cli import evaluate_main

    evals = write_jsonl(tmp_path / "eval.jsonl", lora_run["evals"])
    manifest = _manifest(tmp_path / "ft.yaml", evals, evals, tmp_path / "out")
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["evaluation"] = EVALUATION
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    code = evaluate_main(argparse.Namespace(file=str(manifest), adapter=str(lora_run["adapter"])))
    results = json.loads((Path(run_folder(manifest)) / "evaluation" / "results.json").read_text())
    scores = {c["type"]: (c["baseScore"], c["score"]) for c in results["checks"]}
    print(f"\n[real_gemma] evaluation of {results['rows']} rows: (base, tuned) {scores}; held-out loss "
          f"{results['baseEvalLoss']:.3f} -> {results['evalLoss']:.3f}; {results['message']}")
    assert code == EXIT_OK and results["passed"], results["message"]
    assert not results["basePassed"]
    assert all(c["score"] >= c["baseScore"] for c in results["checks"])
    assert results["evalLoss"] < results["baseEvalLoss"]


def test_a_run_with_too_few_steps_fails_its_gate(lora_run, tmp_path, monkeypatch):  # noqa: F811
    import yaml
    from gemma_operator.api.run import EXIT_BELOW_THRESHOLD
    from gemma_trainer.cli import train_main

    evals = write_jsonl(tmp_path / "eval.jsonl", lora_run["evals"])
    train = write_jsonl(tmp_path / "train.jsonl", lora_run["evals"][:4])
    manifest = _manifest(tmp_path / "short.yaml", train, evals, tmp_path / "out")
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["training"]["maxSteps"] = 1
    doc["spec"]["training"]["learningRate"] = 1e-5
    doc["spec"]["evaluation"] = EVALUATION
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("GEMMAFT_WORK_DIR", str(tmp_path / "work"))
    code = train_main(argparse.Namespace(file=str(manifest), output_uri=None, max_steps=None))
    results = json.loads((Path(run_folder(manifest)) / "evaluation" / "results.json").read_text())
    print(f"\n[real_gemma] one step: {[(c['type'], c['score']) for c in results['checks']]}; {results['message']}")
    assert code == EXIT_BELOW_THRESHOLD
    assert not results["passed"] and results["reason"] == "BelowThreshold"
    assert results["message"].startswith("checks[0] jsonSchema scored ")

"""The evaluation stage on the real Gemma 3 270M: the lane's short LoRA run on examples/records, checked with
jsonSchema and exactMatch: the base model fails the gate, the fine-tuned adapter passes it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gemma_operator.api.run import EXIT_OK

from tests.trainer.conftest import run_folder, write_jsonl

from .conftest import LANE
from .test_lora_run import _manifest, lora_run  # noqa: F401 - the shared run fixture

pytestmark = LANE

RECORD = {"type": "object", "required": ["name", "age", "city", "job"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
EVALUATION = {"maxNewTokens": 48, "batchSize": 8,
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

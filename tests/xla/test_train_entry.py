"""The trainer's own entry (``run_training``, what ``gemmaft train`` calls) on a tpu-v3 spec, on XLA's CPU backend.

It runs in a subprocess so its SPMD mesh and compiled graphs do not mix with the other tests'. The spec is built
with structural validation only: the GKE rule "tpu-v3 writes to gs://" is the operator's, and this lane has no GCS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from gemma_api import GemmaFineTuneSpec, RunConfig
    from gemma_trainer.tiny import dataset_texts, make_dataset_rows, save_tiny_model
    from gemma_trainer.tiny_image_text import save_tiny_checkpoint
    from gemma_trainer.train import run_training

    d, kind, model_name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    rows = make_dataset_rows("prompt-completion", 64)
    (d / "train.jsonl").write_text("\\n".join(json.dumps(r) for r in rows))
    texts = dataset_texts(rows)
    model = save_tiny_model(d / "model", texts=texts) if kind == "gemma2" else \\
        save_tiny_checkpoint(kind, d / "model", texts=texts)
    spec = GemmaFineTuneSpec.model_validate({
        "model": model_name, "modelUri": str(model), "dataset": {"trainUri": str(d / "train.jsonl")},
        "training": {"maxSteps": 6, "batchSize": 8, "gradientAccumulationSteps": 1, "maxSeqLength": 64,
                     "learningRate": 0.03, "loggingSteps": 1},
        "accelerator": {"type": "tpu-v3", "topology": "2x2"},
        "output": {"uri": str(d / "out"), "checkpointEverySteps": 3}})
    cfg = RunConfig(name="xla", run_id="r1", run_uri=str(d / "out" / "r1"), spec=spec)
    sys.exit(run_training(cfg))
""")


@pytest.mark.timeout(420)
@pytest.mark.parametrize("kind,model_name", [("gemma2", "gemma-2-2b"), ("gemma4-text", "gemma-4-e2b-it")])
def test_tpu_spec_trains_checkpoints_and_writes_a_cpu_loadable_adapter(tmp_path: Path, kind, model_name):
    env = {**os.environ, "GEMMAFT_WORK_DIR": str(tmp_path / "work")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), kind, model_name], check=False,
                         capture_output=True, text=True, env=env, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "out" / "r1"
    progress = json.loads((run / "progress.json").read_text())
    assert progress["state"] == "completed" and progress["step"] == 6
    assert (run / "checkpoints" / "step-00000006" / "COMMITTED").exists()
    logged = {m["step"]: m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if m.get("loss") is not None}
    assert logged[6] < logged[1]
    # TensorBoard on XLA: the files committed with the run, read with TensorBoard's own reader, hold every loss.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tensorboard"))
    board.Reload()
    losses = {e.step: e.value for e in board.Scalars("train/loss")}
    assert sorted(losses) == sorted(logged) == [1, 2, 3, 4, 5, 6]
    assert all(losses[s] == pytest.approx(logged[s], rel=1e-6) for s in logged)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    ids = torch.tensor([[2, 10, 20, 30]])
    with torch.no_grad():
        before = base(ids).logits
        after = PeftModel.from_pretrained(base, str(run / "adapter"))(ids).logits
    assert not torch.allclose(before, after)

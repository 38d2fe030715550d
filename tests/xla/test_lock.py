"""The XLA lane runs exactly what locks/xla-test.txt pins (the TPU image's versions, locks/trainer-tpu.txt)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "locks" / "xla-test.txt"


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def test_the_xla_lane_runs_exactly_the_xla_lock():
    pins = {_name(m.group(1)): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", LOCK.read_text(), re.MULTILINE)}
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    assert pins["torch"] == "2.9.0" and pins["torch-xla"] == "2.9.0"
    drift = {n: (v, installed.get(n)) for n, v in pins.items() if n in installed and installed[n] != v}
    assert drift == {}, f"the XLA venv differs from locks/xla-test.txt: {drift}"

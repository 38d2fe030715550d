"""checkov run on the rendered manifests of every case, and a written reason for each check the chart skips."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import CHART, objects_of
from tests.conftest import REPO

CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"


def test_checkov_skips_each_carry_a_reason():
    text = (CHART / ".checkov.yaml").read_text()
    config = yaml.safe_load(text)
    skips = config["skip-check"]
    assert skips
    for check in skips:
        line = next(ln for ln in text.splitlines() if re.match(rf"\s*-\s*{check}\b", ln))
        reason = line.partition("# reason:")[2].strip()
        assert len(reason.split()) >= 8, f"{check} is skipped without a written reason"


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed (make tools-venv installs it)")
def test_checkov_finds_no_failed_checks(rendered, tmp_path):
    for case, out in rendered.items():
        folder = tmp_path / case
        folder.mkdir()
        for path, text in out.items():
            if path.endswith(".yaml") and text.strip():
                (folder / Path(path).name).write_text(text)
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--quiet",
         "--config-file", str(CHART / ".checkov.yaml")],
        check=False, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == []
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0 and summary["passed"] > 50
    assert summary["resource_count"] >= len(objects_of(rendered["custom"]))

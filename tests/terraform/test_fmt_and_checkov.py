"""terraform/ is `terraform fmt` clean and checkov finds no failed checks; each skipped check carries a reason."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO
from tests.terraform.parse import EXAMPLE_TFVARS, TF

CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"


TERRAFORM = shutil.which("terraform")


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
def test_terraform_fmt():
    proc = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TF)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # fmt -recursive skips *.tfvars.example: format it through stdin.
    text = EXAMPLE_TFVARS.read_text()
    proc = subprocess.run([TERRAFORM, "fmt", "-"], input=text, check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == text, proc.stderr or "example tfvars is not fmt-clean"


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    if not CHECKOV.exists():
        pytest.skip(".venv-tools/bin/checkov is missing (make tools-venv)")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(TF), "--framework", "terraform", "--quiet", "--compact", "-o", "json",
         "--config-file", str(TF / ".checkov.yaml")],
        check=False, capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    [tf_report] = [r for r in reports if r.get("check_type") == "terraform"]
    return tf_report


def test_checkov_finds_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for c in checkov_report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 40 and summary["resource_count"] >= 20


def test_checkov_skips_each_carry_a_reason():
    lines = (TF / ".checkov.yaml").read_text().splitlines()
    config = yaml.safe_load("\n".join(lines))
    skips = config["skip-check"]
    assert skips, "no skips: then drop this test's premise"
    for check in skips:
        i = next(n for n, line in enumerate(lines) if line.strip() == f"- {check}")
        assert lines[i - 1].strip().startswith("#") and len(lines[i - 1].strip()) > 30, (
            f"{check} is skipped without a written reason on the line above")

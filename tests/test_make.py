"""The Makefile's disk check: a lane whose install would run out of disk stops before pip starts, and says why."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.mark.parametrize(("target", "folder_variable", "peak_variable"), [
    ("xla-venv", "XLA_VENV", "XLA_VENV_PEAK_GB"),
    ("venv", "VENV", "MAIN_VENV_PEAK_GB"),
])
def test_an_install_that_needs_more_disk_than_is_free_stops_before_pip(tmp_path, target, folder_variable,
                                                                        peak_variable):
    venv = tmp_path / "lane" / ".venv"
    # A need far above any disk's free space stands for the 11.6 GiB the XLA install peaks at on a disk with less.
    out = subprocess.run(["make", "--no-print-directory", target, f"{folder_variable}={venv}",
                          f"{peak_variable}=1000000000"], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode != 0
    assert f"into {venv} needs about 1000000000 GiB free" in out.stderr
    assert f"{folder_variable}=<a folder on a disk with 1000000000 GiB free>" in out.stderr
    assert not venv.exists(), "the check runs before `python -m venv`"


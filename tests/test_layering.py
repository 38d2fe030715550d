"""Import rules. Between the project's own packages and layers: the contracts in .importlinter, checked here by
`lint-imports`. Third-party modules, which import-linter does not follow: importing the API or the CLI loads
neither kopf nor torch, and the trainer never loads the operator's stack (what a fresh interpreter has loaded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
HEAVY_OPERATOR = {"kopf", "kubernetes", "kmock", "aiohttp"}
HEAVY_TRAINER = {"torch", "transformers", "peft", "trl"}


def modules_after_import(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["gemma_api", "gemmaft.cli"])
def test_api_and_cli_import_neither_kopf_nor_torch(module):
    loaded = modules_after_import(module)
    assert not loaded & (HEAVY_OPERATOR | HEAVY_TRAINER | {"jinja2"}), loaded & (HEAVY_OPERATOR | HEAVY_TRAINER)


def test_render_needs_no_kopf_or_torch():
    loaded = modules_after_import("gemma_operator.render")
    assert not loaded & (HEAVY_OPERATOR | HEAVY_TRAINER)


def test_trainer_never_imports_the_operator_runtime():
    loaded = modules_after_import("gemma_trainer")
    assert not loaded & HEAVY_OPERATOR


def test_the_trainer_command_line_starts_without_torch():
    """``gemmaft train`` reads its config and picks its device setup (and launches workers) before torch and
    transformers are loaded: its stages are imported when it runs them."""
    loaded = modules_after_import("gemma_trainer.cli")
    assert not loaded & HEAVY_TRAINER, loaded & HEAVY_TRAINER


def test_the_import_contracts_hold():
    """Each contract in .importlinter (imports inside functions count) is kept; a broken one names the import."""
    lint_imports = str(LINT_IMPORTS) if LINT_IMPORTS.exists() else shutil.which("lint-imports")
    assert lint_imports, "lint-imports is missing: it comes with the dev extra (import-linter)"
    path = os.pathsep.join([str(REPO / "operator"), str(REPO / "trainer_image"), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run([lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout, out.stdout[-3000:]

"""Import rules between layers: the API needs only pydantic, the trainer never pulls in the operator's stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY_OPERATOR = {"kopf", "kubernetes", "kmock", "aiohttp"}
HEAVY_TRAINER = {"torch", "transformers", "peft", "trl"}


def modules_after_import(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["gemma_operator.api", "gemma_operator.cli"])
def test_api_and_cli_import_neither_kopf_nor_torch(module):
    loaded = modules_after_import(module)
    assert not loaded & (HEAVY_OPERATOR | HEAVY_TRAINER | {"jinja2"}), loaded & (HEAVY_OPERATOR | HEAVY_TRAINER)


def test_render_needs_no_kopf_or_torch():
    loaded = modules_after_import("gemma_operator.render")
    assert not loaded & (HEAVY_OPERATOR | HEAVY_TRAINER)


def test_trainer_never_imports_the_operator_runtime():
    loaded = modules_after_import("gemma_trainer")
    assert not loaded & HEAVY_OPERATOR

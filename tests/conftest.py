"""Shared fixtures: the real fake-gcs-server and small manifest builders."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

MINIMAL = {
    "apiVersion": "gemmaft.dev/v1alpha1",
    "kind": "GemmaFineTune",
    "metadata": {"name": "demo", "namespace": "default"},
    "spec": {
        "model": "gemma-2-2b",
        "dataset": {"trainUri": "gs://data/train.jsonl"},
        "accelerator": {"type": "nvidia-tesla-t4"},
        "output": {"uri": "gs://out/runs"},
    },
}


def manifest(**spec_overrides) -> dict:
    """A valid GemmaFineTune manifest with top-level spec sections replaced."""
    obj = copy.deepcopy(MINIMAL)
    obj["spec"].update(copy.deepcopy(spec_overrides))
    return obj


@pytest.fixture(scope="session")
def gcs():
    """A running fake-gcs-server for the whole session (STORAGE_EMULATOR_HOST set)."""
    from gemma_local.gcs import local_gcs

    with local_gcs() as server:
        yield server


@pytest.fixture
def bucket(gcs):
    """A fresh, empty bucket on the fake-gcs-server."""
    return gcs.bucket(f"b-{uuid.uuid4().hex[:12]}")

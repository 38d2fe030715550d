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


@pytest.fixture(scope="session", autouse=True)
def _session_work_dir(tmp_path_factory):
    """The trainer's scratch folder (GEMMAFT_WORK_DIR) inside this session's temporary folder, for tests that do
    not choose their own: its default, the machine's /tmp/gemmaft/<run id>, outlives the session, so a later
    session (or CI on the same machine) would find an earlier one's tokenized rows under the same run id."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEMMAFT_WORK_DIR", str(tmp_path_factory.mktemp("gemmaft-work")))
        yield


@pytest.fixture(scope="session")
def gcs():
    """A running fake-gcs-server for the whole session (STORAGE_EMULATOR_HOST set)."""
    from gemma_operator.local.gcs import local_gcs

    with local_gcs() as server:
        yield server


@pytest.fixture
def bucket(gcs):
    """A fresh, empty bucket on the fake-gcs-server."""
    return gcs.bucket(f"b-{uuid.uuid4().hex[:12]}")

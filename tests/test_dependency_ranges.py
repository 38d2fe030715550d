"""The trainer's dependency ranges in pyproject.toml hold: each admits the versions the locks pin (what the test
lanes and images run) and nothing past the locked minor release, so an install without the lock resolves to what
was tested (issue 21: a wider range resolved transformers 5.25 with kernels 0.19, which failed on XLA)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

TRAINER_LOCKS = ("dev.txt", "trainer-cpu.txt", "trainer-gpu.txt", "trainer-tpu.txt", "xla-test.txt")
BOUNDED = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def _trainer_requirements() -> dict[str, Requirement]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {r.name: r for r in map(Requirement, extras["trainer"])}


def _locked(name: str) -> set[Version]:
    pins = set()
    for lock in TRAINER_LOCKS:
        match = re.search(rf"^{re.escape(name)}==([^\s;\\]+)", (REPO / "locks" / lock).read_text(), re.MULTILINE)
        if match:
            pins.add(Version(match.group(1)))
    return pins


@pytest.mark.parametrize("name", BOUNDED)
def test_each_range_admits_the_locked_versions_and_stops_at_the_next_minor(name):
    requirement = _trainer_requirements()[name]
    pins = _locked(name)
    assert pins, f"{name} is in no trainer lock"
    assert all(requirement.specifier.contains(v.public, prereleases=True) for v in pins), (requirement, pins)
    newest = max(pins)
    next_minor = Version(f"{newest.major}.{newest.minor + 1}.0")
    assert not requirement.specifier.contains(next_minor), f"{requirement} admits {next_minor}, which no lane tests"


def test_tpu_runs_turn_transformers_hub_kernels_off(monkeypatch):
    """The kernels package has no XLA device: the TPU plan switches transformers' integration off."""
    import os

    from gemma_api import parse_finetune
    from gemma_trainer.xla import device_setup

    from tests.conftest import manifest

    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    spec = parse_finetune(manifest(model="gemma-4-e2b-it", accelerator={"type": "tpu-v5e", "topology": "2x4"})).spec
    assert device_setup(spec).device == "xla"
    assert os.environ["USE_HUB_KERNELS"] == "NO"

"""A Hugging Face Hub cache on disk, as ``huggingface_hub`` lays it out, for machines without the Hub.

``put_in_hub_cache`` makes a model folder resolvable as ``org/name`` with ``HF_HUB_OFFLINE=1``: it stands for
"another machine that has this model", so tests can load an adapter there by the base id it records."""

from __future__ import annotations

import shutil
from pathlib import Path

REVISION = "0" * 40  # a commit hash, as the Hub's refs/main holds


def put_in_hub_cache(hub_cache: Path, repo_id: str, folder: Path, link: bool = False) -> Path:
    """Copy (or symlink each file of) ``folder`` as the main snapshot of ``repo_id``; returns the snapshot."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    for item in Path(folder).iterdir():
        if item.is_file() and not item.name.startswith("."):
            target = snapshot / item.name
            if link:
                target.symlink_to(item.resolve())
            else:
                shutil.copy2(item, target)
    return snapshot


def offline_env(hub_cache: Path) -> dict[str, str]:
    """Environment of a process that sees only ``hub_cache`` and never the network."""
    return {"HF_HUB_CACHE": str(hub_cache), "HF_HOME": str(hub_cache.parent / "hf-home"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}

"""This process of a run: where it sits in a data-parallel launch (:class:`Rank`) and its local scratch
(:func:`work_dir`, :func:`invocation_scratch`). Small and torch-free: the command line uses it before it
launches workers or loads a stage."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rank:
    """Where this process sits in a data-parallel launch (torchrun sets the environment)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Rank:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
                   int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


WORK_DIR_ENV = "GEMMAFT_WORK_DIR"


def work_dir(run_id: str) -> Path:
    """Local scratch folder of a run (the same path for every rank on a host)."""
    base = os.environ.get(WORK_DIR_ENV) or os.path.join(tempfile.gettempdir(), "gemmaft")
    return Path(base) / run_id


@contextlib.contextmanager
def invocation_scratch():
    """Scratch that lives as long as this ``gemmaft train``, as the trainer pod's emptyDir lives as long as the
    pod (every attempt is a new pod): a fresh folder in $WORK_DIR_ENV, removed at the end, so a rerun tokenizes
    its data files as they are then and nothing is left in the machine's /tmp. Kept as is when $WORK_DIR_ENV is
    set already (the user's folder to keep, or the launcher's for its workers) or under a torchrun launched by
    someone else (LOCAL_RANK set: every worker of the host must find the same folder)."""
    if os.environ.get(WORK_DIR_ENV) or "LOCAL_RANK" in os.environ:
        yield
        return
    folder = tempfile.mkdtemp(prefix="gemmaft-")
    os.environ[WORK_DIR_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(WORK_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)

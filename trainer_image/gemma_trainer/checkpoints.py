"""Committed checkpoints under ``<run>/checkpoints/step-NNNNNNNN/``.

A checkpoint is written in a local staging folder by the HF Trainer, uploaded, checked (every local file must
be listed in the bucket), and only then is the ``COMMITTED`` marker written, last. Resume and retention look at
committed checkpoints only. Retention deletes a checkpoint's marker first, so a half-deleted checkpoint is never
taken for a committed one, and it never touches an uncommitted checkpoint newer than the oldest kept one (it may
belong to a live writer).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from gemma_api.run import CHECKPOINTS_DIR, COMMIT_MARKER

log = logging.getLogger(__name__)


class CheckpointError(Exception):
    """Upload of a checkpoint could not be confirmed (transient: exit code 1)."""


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    rel: str  # folder relative to the run folder
    committed: bool


def _rel_keys(store, prefix: str) -> list[str]:
    """Keys under ``prefix`` relative to the store root, whatever form ``ObjectStore.list`` returns them in."""
    keys = []
    for key in store.list(prefix):
        key = key.lstrip("/")
        keys.append(key if key.startswith(prefix) else f"{prefix}{key}")
    return keys


class CheckpointManager:
    """Checkpoints of one run folder (an ``ObjectStore`` opened on ``<runUri>``).

    ``root`` and ``name`` place the numbered folders elsewhere with the same commit rule: the distillation
    teacher stage keeps its output shards as ``<teacher>/<split>/shard-NNNNNNNN/`` this way."""

    def __init__(self, run_store, retries: int = 3, retry_wait_s: float = 1.0, root: str = CHECKPOINTS_DIR,
                 name: str = "step"):
        self.store = run_store
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.root = root
        self.name = name
        self._pattern = re.compile(rf"^{re.escape(name)}-(\d{{8,}})$")

    def rel(self, step: int) -> str:
        """Folder of one numbered checkpoint, relative to the store (``checkpoint_dir(step)`` by default)."""
        return f"{self.root}/{self.name}-{step:08d}"

    # ------------------------------------------------------------ reading

    def scan(self) -> list[CheckpointInfo]:
        """Every checkpoint folder, oldest first, with whether it is committed."""
        steps: dict[int, bool] = {}
        depth = self.root.count("/") + 1
        for key in _rel_keys(self.store, f"{self.root}/"):
            parts = key.split("/")[depth:]
            if len(parts) < 2:
                continue
            match = self._pattern.match(parts[0])
            if not match:
                continue
            step = int(match.group(1))
            committed = steps.get(step, False) or (len(parts) == 2 and parts[1] == COMMIT_MARKER)
            steps[step] = committed
        return [CheckpointInfo(s, self.rel(s), c) for s, c in sorted(steps.items())]

    def committed(self) -> list[CheckpointInfo]:
        return [c for c in self.scan() if c.committed]

    def newest_committed(self) -> CheckpointInfo | None:
        done = self.committed()
        return done[-1] if done else None

    def uri_of(self, info: CheckpointInfo) -> str:
        return f"{self.store.uri.rstrip('/')}/{info.rel}"

    def download(self, info: CheckpointInfo, local_dir: str | Path) -> Path:
        """Download a committed checkpoint (without its marker) into ``local_dir``."""
        local = Path(local_dir)
        local.mkdir(parents=True, exist_ok=True)
        self.store.download_dir(info.rel, str(local))
        marker = local / COMMIT_MARKER
        if marker.exists():
            marker.unlink()
        return local

    # ------------------------------------------------------------ writing

    def commit(self, local_dir: str | Path, step: int) -> CheckpointInfo:
        """Upload ``local_dir`` as the checkpoint of ``step``, check it, then write the marker last."""
        local = Path(local_dir)
        files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
        if not files:
            raise CheckpointError(f"checkpoint of step {step} is empty: {local}")
        rel = self.rel(step)
        last_err: Exception | None = None
        for attempt in range(1, self.retries + 1):
            try:
                if self.store.exists(f"{rel}/{COMMIT_MARKER}"):
                    # Same step committed by an earlier attempt: drop its marker before overwriting it.
                    self.store.delete_prefix(f"{rel}/{COMMIT_MARKER}")
                self.store.upload_dir(str(local), rel)
                listed = {k[len(rel) + 1:] for k in _rel_keys(self.store, f"{rel}/")}
                missing = [f for f in files if f not in listed]
                if missing:
                    raise CheckpointError(f"upload of {rel} incomplete: missing {', '.join(missing[:5])}")
                marker = {"step": step, "files": files, "committedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime())}
                self.store.write_text(f"{rel}/{COMMIT_MARKER}", json.dumps(marker, indent=1))
                log.info("checkpoint step %d committed (%d files)", step, len(files))
                return CheckpointInfo(step, rel, True)
            except Exception as err:  # noqa: BLE001 - storage errors are retried, then reported
                last_err = err
                log.warning("checkpoint step %d upload attempt %d/%d failed: %s", step, attempt, self.retries, err)
                if attempt < self.retries:
                    time.sleep(self.retry_wait_s * attempt)
        raise CheckpointError(f"could not commit checkpoint of step {step}: {last_err}") from last_err

    def prune(self, keep: int) -> list[int]:
        """Delete committed checkpoints beyond the newest ``keep``, and uncommitted ones older than every kept
        checkpoint (left by a crashed writer). Returns the deleted steps."""
        infos = self.scan()
        done = [c for c in infos if c.committed]
        if len(done) <= keep:
            return []
        kept = done[-keep:]
        oldest_kept = kept[0].step
        deleted = []
        for info in infos:
            if info.step >= oldest_kept:
                continue  # kept, or newer (possibly being written)
            if info.committed:
                self.store.delete_prefix(f"{info.rel}/{COMMIT_MARKER}")
            self.store.delete_prefix(f"{info.rel}/")
            deleted.append(info.step)
        if deleted:
            log.info("removed old checkpoints: steps %s", ", ".join(map(str, deleted)))
        return deleted

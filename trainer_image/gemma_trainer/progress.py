"""``progress.json`` (RunProgress, camelCase) and ``metrics.jsonl`` in the run folder.

progress.json is written at start, at every checkpoint, at the end, and on logging steps at most every
``min_interval_s``. metrics.jsonl holds one JSON line per logging step; the store has no append, so the whole
file is rewritten with the same throttle (it stays small: one short line per logging step). On resume the lines
of steps after the resumed checkpoint are dropped, so the file never shows a step twice.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from gemma_api.run import METRICS_FILE, PROGRESS_FILE, RunProgress

log = logging.getLogger(__name__)


def finite_or_none(value) -> float | None:
    """``value`` as a float for progress.json, metrics.jsonl and reports: None when it is missing, not a number, or
    inf/NaN (a non-finite figure is never written as a number, and never as 0)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProgressWriter:
    def __init__(self, run_store, min_interval_s: float = 10.0, enabled: bool = True):
        self.store = run_store
        self.min_interval_s = min_interval_s
        self.enabled = enabled  # False on non-zero ranks
        self.fields: dict[str, Any] = {"state": "starting", "step": 0}
        self.metrics: list[dict[str, Any]] = []
        self._last_write = 0.0
        self._metrics_dirty = False

    # ------------------------------------------------------------ progress.json

    def update(self, force: bool = False, strict: bool = False, **fields: Any) -> RunProgress:
        """Merge ``fields`` (snake_case RunProgress names) and write if forced or the interval has passed."""
        self.fields.update({k: v for k, v in fields.items()})
        progress = RunProgress(updated_at=now_rfc3339(), **{k: v for k, v in self.fields.items()
                                                            if k != "updated_at"})
        if self.enabled and (force or time.monotonic() - self._last_write >= self.min_interval_s):
            self.flush(progress, strict=strict)
        return progress

    def flush(self, progress: RunProgress | None = None, strict: bool = False) -> None:
        """Write metrics.jsonl (when changed) and progress.json; errors are logged, or raised with ``strict``."""
        if not self.enabled:
            return
        if progress is None:
            progress = RunProgress(updated_at=now_rfc3339(), **self.fields)
        try:
            if self._metrics_dirty:
                self.store.write_text(METRICS_FILE, "".join(json.dumps(m) + "\n" for m in self.metrics))
                self._metrics_dirty = False
            self.store.write_text(PROGRESS_FILE, json.dumps(progress.to_api(), indent=1) + "\n")
            self._last_write = time.monotonic()
        except Exception as err:  # progress is best effort between checkpoints; the next write retries
            if strict:
                raise
            log.warning("could not write progress: %s", err)

    # ------------------------------------------------------------ metrics.jsonl

    def load_metrics(self, up_to_step: int) -> None:
        """Keep the metrics lines of an earlier attempt up to the resumed step."""
        try:
            if not self.store.exists(METRICS_FILE):
                return
            text = self.store.read_text(METRICS_FILE)
        except Exception as err:  # noqa: BLE001 - best effort
            log.warning("could not read earlier metrics: %s", err)
            return
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and int(row.get("step", 0)) <= up_to_step:
                self.metrics.append(row)

    def add_metrics(self, row: dict[str, Any]) -> None:
        step = row.get("step")
        if self.metrics and self.metrics[-1].get("step") == step:
            self.metrics[-1].update(row)  # eval metrics of the same step
        else:
            self.metrics.append(row)
        self._metrics_dirty = True

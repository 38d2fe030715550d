"""What the operator knows of Jobs and pods, fed by watches only (like controller-runtime's informer cache).

Live objects sit in kopf indexes (``@kopf.index`` in :mod:`.main`): kopf fills them from its initial LIST and
then its WATCH, and starts no resource handler before every index is filled, so a reconcile never sees a
half-listed cache. This module adds what an index forgets:

* tombstones: the last watched state of a deleted Job or pod (a Job that ``ttlSecondsAfterFinished: 0``
  deletes right after it fails is judged from its last state, not re-created);
* awaited Jobs: created by this process but not watched yet (not vanished: not seen yet).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, fine-tune name or label value)


def _values(index: Mapping[Key, Iterable[Any]] | None, key: Key) -> list[dict[str, Any]]:
    if index is None:
        return []
    return [dict(v) for v in index.get(key, ())]


def pod_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pod a decision reads (the cache keeps no pod specs)."""
    meta = body.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "labels", "deletionTimestamp")
                         if k in meta},
            "status": dict(body.get("status") or {})}


class Cache:
    def __init__(self, tombstone_seconds: float = 3600.0, max_tombstones: int = 20000):
        self.jobs_index: Mapping[Key, Iterable[Any]] | None = None
        self.pods_index: Mapping[Key, Iterable[Any]] | None = None
        self.finetunes_index: Mapping[Key, Iterable[Any]] | None = None  # (namespace, name) -> the fine-tune
        self.teacher_refs_index: Mapping[Key, Iterable[Any]] | None = None  # (ns, fromFineTune) -> dependents
        self._tombstones: dict[str, collections.OrderedDict[str, tuple[float, Key, dict[str, Any]]]] = {
            "Job": collections.OrderedDict(), "Pod": collections.OrderedDict()}
        self._awaited: dict[Key, float] = {}  # (namespace, Job name) -> when created
        self.tombstone_seconds = tombstone_seconds
        self.max_tombstones = max_tombstones

    @property
    def ready(self) -> bool:
        return self.jobs_index is not None and self.pods_index is not None

    def attach(self, jobs: Mapping[Key, Iterable[Any]], pods: Mapping[Key, Iterable[Any]],
               finetunes: Mapping[Key, Iterable[Any]] | None = None,
               teacher_refs: Mapping[Key, Iterable[Any]] | None = None) -> None:
        self.jobs_index, self.pods_index = jobs, pods
        self.finetunes_index, self.teacher_refs_index = finetunes, teacher_refs

    def finetune(self, key: Key) -> dict[str, Any] | None:
        """A GemmaFineTune as last watched (spec and status), e.g. the teacher source of a distillation."""
        found = _values(self.finetunes_index, key)
        return found[0] if found else None

    def dependents(self, key: Key) -> list[str]:
        """Names of the fine-tunes whose teacher is ``fromFineTune: key``."""
        return sorted({str(v) for v in (self.teacher_refs_index or {}).get(key, ())})

    # ----- reads -----
    def jobs(self, key: Key) -> list[dict[str, Any]]:
        return _values(self.jobs_index, key)

    def pods(self, key: Key) -> list[dict[str, Any]]:
        return _values(self.pods_index, key)

    def gone(self, kind: str, key: Key) -> list[dict[str, Any]]:
        self._expire(kind)
        return [body for _, k, body in self._tombstones[kind].values() if k == key]

    def awaited(self, namespace: str) -> frozenset[str]:
        return frozenset(name for (ns, name) in self._awaited if ns == namespace)

    # ----- writes from watch events and from the operator's own creates -----
    def bury(self, kind: str, key: Key, body: Mapping[str, Any]) -> None:
        """Keep the last state of a deleted object (its DELETED watch event)."""
        uid = (body.get("metadata") or {}).get("uid") or (body.get("metadata") or {}).get("name", "")
        last = dict(body) if kind == "Job" else pod_summary(body)
        self._tombstones[kind][uid] = (time.monotonic(), key, last)
        self._tombstones[kind].move_to_end(uid)
        while len(self._tombstones[kind]) > self.max_tombstones:
            self._tombstones[kind].popitem(last=False)

    def saw_job(self, namespace: str, name: str) -> None:
        self._awaited.pop((namespace, name), None)

    def created_job(self, namespace: str, name: str) -> None:
        self._awaited[(namespace, name)] = time.monotonic()

    def forget(self, key: Key, label_key: Key) -> None:
        """Drop the tombstones of a deleted fine-tune."""
        for kind, k in (("Job", key), ("Pod", label_key)):
            for uid in [u for u, (_, owner, _) in self._tombstones[kind].items() if owner == k]:
                del self._tombstones[kind][uid]

    def _expire(self, kind: str) -> None:
        stones = self._tombstones[kind]
        cutoff = time.monotonic() - self.tombstone_seconds
        while stones and next(iter(stones.values()))[0] < cutoff:
            stones.popitem(last=False)

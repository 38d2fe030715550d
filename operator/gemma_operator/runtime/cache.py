"""What the operator knows of Jobs and pods, fed by watches only (like controller-runtime's informer cache).

Live objects sit in kopf indexes (``@kopf.index`` in :mod:`.main`): kopf fills them from its initial LIST and
then its WATCH, and starts no resource handler before every index is filled, so a reconcile never sees a
half-listed cache. This module adds what an index forgets:

* tombstones: the last watched state of a deleted Job or pod (a Job that ``ttlSecondsAfterFinished: 0``
  deletes right after it fails is judged from its last state, not re-created);
* awaited Jobs: created by this process but not watched yet (not vanished: not seen yet);
* the Job controller's ``FailedCreate`` Events (a missing ServiceAccount, a quota or admission refusal):
  nothing in a Job's status says why it has no pods.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping
from typing import Any

NamespacedName = tuple[str, str]  # (namespace, fine-tune name or label value)


def _values(index: Mapping[NamespacedName, Iterable[Any]] | None, key: NamespacedName) -> list[dict[str, Any]]:
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
        self.jobs_index: Mapping[NamespacedName, Iterable[Any]] | None = None
        self.pods_index: Mapping[NamespacedName, Iterable[Any]] | None = None
        self.finetunes_index: Mapping[NamespacedName, Iterable[Any]] | None = None  # (namespace, name) -> the fine-tune
        self.teacher_refs_index: Mapping[NamespacedName, Iterable[Any]] | None = None  # (ns, fromFineTune) -> dependents
        # Tombstones per kind: by owner key (what a reconcile reads, O(its own objects)) and in age order (expiry).
        self._buried: dict[str, dict[NamespacedName, dict[str, dict[str, Any]]]] = {"Job": {}, "Pod": {}}
        self._ages: dict[str, collections.OrderedDict[str, tuple[float, NamespacedName]]] = {
            "Job": collections.OrderedDict(), "Pod": collections.OrderedDict()}
        self._awaited: dict[NamespacedName, set[str]] = {}  # fine-tune key -> Jobs created by this process, not seen yet
        self._owners: dict[NamespacedName, str] = {}  # (namespace, Job name) -> fine-tune name
        self._failed_create: dict[NamespacedName, str] = {}  # (namespace, Job name) -> the Event's message
        self.tombstone_seconds = tombstone_seconds
        self.max_tombstones = max_tombstones

    @property
    def ready(self) -> bool:
        return self.jobs_index is not None and self.pods_index is not None

    def attach(self, jobs: Mapping[NamespacedName, Iterable[Any]], pods: Mapping[NamespacedName, Iterable[Any]],
               finetunes: Mapping[NamespacedName, Iterable[Any]] | None = None,
               teacher_refs: Mapping[NamespacedName, Iterable[Any]] | None = None) -> None:
        self.jobs_index, self.pods_index = jobs, pods
        self.finetunes_index, self.teacher_refs_index = finetunes, teacher_refs

    def finetune(self, key: NamespacedName) -> dict[str, Any] | None:
        """A GemmaFineTune as last watched (spec and status), e.g. the teacher source of a distillation."""
        found = _values(self.finetunes_index, key)
        return found[0] if found else None

    def dependents(self, key: NamespacedName) -> list[str]:
        """Names of the fine-tunes whose teacher is ``fromFineTune: key``."""
        return sorted({str(v) for v in (self.teacher_refs_index or {}).get(key, ())})

    # ----- reads -----
    def jobs(self, key: NamespacedName) -> list[dict[str, Any]]:
        return _values(self.jobs_index, key)

    def pods(self, key: NamespacedName) -> list[dict[str, Any]]:
        return _values(self.pods_index, key)

    def gone(self, kind: str, key: NamespacedName) -> list[dict[str, Any]]:
        self._expire(kind)
        return list(self._buried[kind].get(key, {}).values())

    def job_problems(self, namespace: str, jobs: list[dict[str, Any]]) -> dict[str, str]:
        """Job name -> the last FailedCreate message, for ``jobs``."""
        names = [(j.get("metadata") or {}).get("name") for j in jobs]
        return {n: self._failed_create[(namespace, n)] for n in names if (namespace, n) in self._failed_create}

    def failed_create(self, namespace: str, job: str, message: str) -> str | None:
        """Record a FailedCreate Event of a Job; the owning fine-tune's name if the Job is ours and the message
        is new (the Job controller repeats the Event every retry)."""
        owner = self._owners.get((namespace, job))
        if owner is None or self._failed_create.get((namespace, job)) == message:
            return None  # not ours, or the Job controller repeating itself: nothing new to reconcile
        self._failed_create[(namespace, job)] = message
        return owner

    def awaited(self, key: NamespacedName) -> frozenset[str]:
        return frozenset(self._awaited.get(key, ()))

    # ----- writes from watch events and from the operator's own creates -----
    def bury(self, kind: str, key: NamespacedName, body: Mapping[str, Any]) -> None:
        """Keep the last state of a deleted object (its DELETED watch event)."""
        meta = body.get("metadata") or {}
        uid = meta.get("uid") or meta.get("name", "")
        if kind == "Job":
            self._owners.pop((key[0], meta.get("name")), None)
            self._failed_create.pop((key[0], meta.get("name")), None)
        self._buried[kind].setdefault(key, {})[uid] = dict(body) if kind == "Job" else pod_summary(body)
        self._ages[kind][uid] = (time.monotonic(), key)
        self._ages[kind].move_to_end(uid)
        while len(self._ages[kind]) > self.max_tombstones:
            self._drop(kind, *self._ages[kind].popitem(last=False))

    def saw_job(self, namespace: str, name: str, owner: str) -> None:
        self._owners[(namespace, name)] = owner
        waiting = self._awaited.get((namespace, owner))
        if waiting is not None:
            waiting.discard(name)
            if not waiting:
                del self._awaited[(namespace, owner)]

    def created_job(self, key: NamespacedName, name: str) -> None:
        if (key[0], name) not in self._owners:  # not watched yet
            self._awaited.setdefault(key, set()).add(name)

    def forget(self, key: NamespacedName, label_key: NamespacedName) -> None:
        """Drop what is kept for a deleted fine-tune."""
        self._awaited.pop(key, None)
        for kind, k in (("Job", key), ("Pod", label_key)):
            for uid in self._buried[kind].pop(k, {}):
                self._ages[kind].pop(uid, None)

    def _drop(self, kind: str, uid: str, entry: tuple[float, NamespacedName]) -> None:
        owned = self._buried[kind].get(entry[1], {})
        owned.pop(uid, None)
        if not owned:
            self._buried[kind].pop(entry[1], None)

    def _expire(self, kind: str) -> None:
        ages = self._ages[kind]
        cutoff = time.monotonic() - self.tombstone_seconds
        while ages and next(iter(ages.values()))[0] < cutoff:
            self._drop(kind, *ages.popitem(last=False))

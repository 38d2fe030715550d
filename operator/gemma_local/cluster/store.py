"""The object store behind the local API server: objects, one resourceVersion counter, an ordered event log.

Every write (from an HTTP request or from a controller of this layer) goes through :class:`Store`, gets the
next resourceVersion and appends one watch event to the log, in the order it happened, so every watcher sees
the same sequence a real API server would deliver (a status change, then the deletion; the last event of a
deleted object is ``DELETED``). Objects are never changed in place: a write stores a new dict, so the log's
entries stay as they were when written. Watchers that fall behind the compacted log get ``410 Gone``.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import datetime
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kmock

from ..crd_schema import without_keys

Resource = kmock.resource
StoredKey = tuple[Any, str | None, str]  # (resource, namespace or None, name)

LOG_LIMIT = 50_000  # events kept for watches that resume from a resourceVersion (etcd compacts too)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(moment: datetime.datetime | None = None) -> str:
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def seconds_since(text: str) -> float:
    """How long ago a metadata/status timestamp was."""
    return (now() - parse_timestamp(text)).total_seconds()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (a new object; ``target`` is not changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def without_directives(patch: Any) -> Any:
    """A strategic merge patch read as a merge patch: its ``$patch``/``$setElementOrder`` directives dropped."""
    return without_keys(patch, "$")


@dataclass(frozen=True)
class Change:
    """One entry of the event log: what a watcher of ``resource`` receives."""

    version: int
    resource: Any
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    before: dict[str, Any] | None  # the previous state, to tell selector entries and exits


class Gone(Exception):
    """The requested resourceVersion is older than the log keeps (answered 410 Expired)."""


class Store:
    def __init__(self) -> None:
        self.objects: dict[StoredKey, dict[str, Any]] = {}
        self._by_resource: dict[Any, dict[StoredKey, dict[str, Any]]] = {}  # the same objects, per resource
        self.version = 0
        self.log: list[Change] = []
        self._waiters: set[asyncio.Event] = set()

    # ----- reading -----
    def get(self, key: StoredKey) -> dict[str, Any] | None:
        return self.objects.get(key)

    def items(self, resource: Any, namespace: str | None = None) -> list[dict[str, Any]]:
        return [obj for (_, ns, _), obj in self._by_resource.get(resource, {}).items()
                if namespace is None or ns == namespace]

    def all_objects(self) -> Iterator[tuple[StoredKey, dict[str, Any]]]:
        yield from list(self.objects.items())

    # ----- writing -----
    def _next(self) -> int:
        self.version += 1
        return self.version

    def _record(self, version: int, resource: Any, kind: str, obj: dict[str, Any], before: dict | None) -> None:
        self.log.append(Change(version, resource, kind, obj, before))
        if len(self.log) > LOG_LIMIT:
            del self.log[: len(self.log) - LOG_LIMIT]
        for waiter in self._waiters:
            waiter.set()

    def create(self, key: StoredKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object with its server-side metadata; the caller checked that the key is free."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        resource, namespace, name = key
        if namespace:
            meta["namespace"] = namespace
        meta["name"] = name
        version = self._next()
        meta.update(uid=meta.get("uid") or str(uuid.uuid4()), resourceVersion=str(version), generation=1,
                    creationTimestamp=timestamp())
        self.objects[key] = self._by_resource.setdefault(resource, {})[key] = obj
        self._record(version, resource, "ADDED", obj, None)
        return obj

    def replace(self, key: StoredKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new state of an existing object (a new dict, a new resourceVersion, one MODIFIED event)."""
        before = self.objects[key]
        obj = copy.deepcopy(obj)
        version = self._next()
        obj.setdefault("metadata", {})["resourceVersion"] = str(version)
        self.objects[key] = self._by_resource[key[0]][key] = obj
        self._record(version, key[0], "MODIFIED", obj, before)
        return obj

    def delete(self, key: StoredKey) -> dict[str, Any]:
        before = self.objects.pop(key)
        del self._by_resource[key[0]][key]
        version = self._next()
        last = {**before, "metadata": {**before["metadata"], "resourceVersion": str(version)}}
        self._record(version, key[0], "DELETED", last, before)
        return last

    # ----- watching -----
    async def after(self, version: int) -> list[Change]:
        """The changes after ``version``, waiting until there is one; :class:`Gone` when compacted away."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            while self.version <= version:
                await waiter.wait()
                waiter.clear()
        finally:
            self._waiters.discard(waiter)
        if not self.log or self.log[0].version > version + 1:
            raise Gone(f"too old resource version: {version} ({self.log[0].version - 1 if self.log else 0})")
        return self.log[bisect.bisect_right(self.log, version, key=lambda c: c.version):]


def new_name(meta: dict[str, Any]) -> str | None:
    """``metadata.name``, or one made from ``generateName`` as the API server does."""
    if meta.get("name"):
        return meta["name"]
    if meta.get("generateName"):
        return meta["generateName"] + secrets.token_hex(3)[:5]
    return None

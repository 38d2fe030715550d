"""The layer's own reads and writes (its controllers and the test API), garbage collection and Events.

Everything here runs on the cluster's event loop and goes through the :class:`~.store.Store`, so controllers'
writes reach watchers exactly like API writes: one event each, in order.
"""

from __future__ import annotations

import secrets
from typing import Any

import kmock
from gemma_api import GROUP, KIND, PLURAL, VERSION

from .store import Store, StoredKey, merge_patch, timestamp

RESOURCES = {
    KIND: kmock.resource(GROUP, VERSION, PLURAL),
    "Job": kmock.resource("batch", "v1", "jobs"),
    "Pod": kmock.resource("", "v1", "pods"),
    "ConfigMap": kmock.resource("", "v1", "configmaps"),
    "Secret": kmock.resource("", "v1", "secrets"),
    "Service": kmock.resource("", "v1", "services"),
    "Deployment": kmock.resource("apps", "v1", "deployments"),
    "ServiceAccount": kmock.resource("", "v1", "serviceaccounts"),
    "Event": kmock.resource("", "v1", "events"),
    "Node": kmock.resource("", "v1", "nodes"),
    "Namespace": kmock.resource("", "v1", "namespaces"),
}
FOREGROUND = "foregroundDeletion"


def api_version(resource: Any) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def qualified_plural(resource: Any) -> str:
    """``jobs.batch``, ``pods``: how the API server names a resource in its messages."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def status_details(resource: Any, name: str) -> dict[str, Any]:
    """A Status answer's ``details`` naming one object."""
    return {"name": name, "group": resource.group, "kind": resource.plural}


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {o.get("uid") for o in (obj.get("metadata") or {}).get("ownerReferences") or ()}


class Objects:
    """Mixin of :class:`~.server.ClusterEmulator`: typed access to the store by kind."""

    store: Store
    resources: Any

    # ----- kinds and resources -----
    def resource_of(self, kind: str) -> Any:
        if kind in RESOURCES:
            return RESOURCES[kind]
        for resource in self.resources:
            if self.resources[resource].kind == kind and "/" not in (resource.plural or ""):
                return resource
        raise KeyError(f"unknown kind {kind!r}")

    def kind_of(self, resource: Any) -> str:
        for kind, res in RESOURCES.items():
            if res == resource:
                return kind
        info = self.resources[resource] if resource in self.resources else None  # noqa: SIM401 (no .get)
        return (info.kind if info and info.kind else str(resource.plural).capitalize())

    def namespaced(self, resource: Any) -> bool:
        info = self.resources[resource] if resource in self.resources else None  # noqa: SIM401 (no .get)
        return bool(info.namespaced) if info and info.namespaced is not None else True

    def key(self, kind: str, namespace: str | None, name: str) -> StoredKey:
        resource = self.resource_of(kind)
        return (resource, namespace if self.namespaced(resource) else None, name)

    # ----- reading -----
    def find(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.items(self.resource_of(kind), namespace)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get(self.key(kind, namespace, name))

    # ----- writing (the layer's own controllers and the test API; no admission) -----
    async def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        key = self.key(kind, meta.get("namespace") or "default", meta["name"])
        if key in self.store.objects:
            raise ValueError(f"{kind} {meta['name']} exists")
        resource = key[0]
        obj = {"apiVersion": api_version(resource), "kind": kind, **obj}
        stored = self.store.create(key, self.admit(resource, key, obj))
        self.changed.set()
        return stored

    async def update(self, kind: str, namespace: str | None, name: str, patch: dict[str, Any]) -> dict | None:
        key = self.key(kind, namespace, name)
        current = self.store.get(key)
        if current is None:
            return None
        stored = self.store.replace(key, merge_patch(current, patch))
        self.changed.set()
        return stored

    async def set_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.update("Pod", namespace, name, {"status": status})

    async def remove(self, kind: str, namespace: str | None, name: str, propagation: str = "Background") -> dict | None:
        key = self.key(kind, namespace, name)
        return await self.delete_key(key, propagation)

    async def delete_key(self, key: StoredKey, propagation: str = "Background") -> dict | None:
        """Delete as the API server does (:meth:`_delete_one`), then collect the garbage that leaves."""
        current = await self._delete_one(key, propagation)
        await self.collect_garbage()
        self.changed.set()
        return current

    async def _delete_one(self, key: StoredKey, propagation: str) -> dict | None:
        """One object: its finalizers first (deletionTimestamp, ``foregroundDeletion`` added for Foreground),
        else gone; Orphan takes it out of its dependents' ownerReferences first. Dependents are not touched."""
        current = self.store.get(key)
        if current is None:
            return None
        if propagation == "Orphan":
            self._orphan_dependents(current["metadata"]["uid"])
        meta = current["metadata"]
        finalizers = list(meta.get("finalizers") or ())
        if propagation == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if not finalizers:
            return await self._terminate(key, current)
        if not meta.get("deletionTimestamp"):
            current = self.store.replace(key, {**current, "metadata": {
                **meta, "finalizers": finalizers, "deletionTimestamp": timestamp(), "deletionGracePeriodSeconds": 0}})
        return current

    def _orphan_dependents(self, uid: str) -> None:
        for key, obj in self.store.all_objects():
            if uid in owner_uids(obj):
                owners = [o for o in obj["metadata"]["ownerReferences"] if o.get("uid") != uid]
                self.store.replace(key, {**obj, "metadata": {**obj["metadata"], "ownerReferences": owners}})

    async def _terminate(self, key: StoredKey, current: dict[str, Any]) -> dict[str, Any]:
        """A running pod shows Terminating (deletionTimestamp) before it goes; everything else goes at once."""
        if key[0] == RESOURCES["Pod"] and (current.get("status") or {}).get("phase") in ("Running", "Pending"):
            if (current.get("spec") or {}).get("nodeName") and not current["metadata"].get("deletionTimestamp"):
                current = self.store.replace(key, {**current, "metadata": {
                    **current["metadata"], "deletionTimestamp": timestamp(), "deletionGracePeriodSeconds": 30}})
            await self.runner.stop(self, current)
        return self.store.delete(key)

    async def collect_garbage(self) -> None:
        """Owner-reference garbage collection, pass after pass until a pass finds no work. Each pass deletes
        (Background) every object whose owners are all gone or one of whose owners waits in foreground deletion,
        then releases the foreground owners no object names any more. A work list, not recursion: any number
        of dependents, any depth. Each pass deletes or marks what it found, so the passes end."""
        while True:
            doomed, released = self._garbage()
            if not (doomed or released):
                return
            for key in doomed:
                await self._delete_one(key, "Background")
            for key in released:
                await self.release(key, FOREGROUND)

    def _garbage(self) -> tuple[list[StoredKey], list[StoredKey]]:
        """One pass's work: the objects to delete and the foreground owners to release. An object already being
        deleted is no work: it goes when its own finalizers are removed (its foreground owner waits for that)."""
        objects = self.store.objects
        owners = {key: owner_uids(obj) for key, obj in objects.items()}
        live = {obj["metadata"].get("uid") for obj in objects.values()}
        waiting = {obj["metadata"]["uid"]: key for key, obj in objects.items()
                   if FOREGROUND in (obj["metadata"].get("finalizers") or ())}
        doomed = [key for key, uids in owners.items() if uids and (not uids & live or uids & waiting.keys())
                  and not objects[key]["metadata"].get("deletionTimestamp")]
        owning = set().union(*owners.values())
        released = [key for uid, key in waiting.items() if uid not in owning]
        return doomed, released

    async def release(self, key: StoredKey, finalizer: str) -> None:
        """Drop one finalizer; an object being deleted goes when none is left."""
        current = self.store.get(key)
        if current is None:
            return
        meta = current["metadata"]
        left = [f for f in meta.get("finalizers") or () if f != finalizer]
        current = self.store.replace(key, {**current, "metadata": {**meta, "finalizers": left}})
        if meta.get("deletionTimestamp") and not left:
            self.store.delete(key)
        self.changed.set()

    # ----- Events, as controllers and the kubelet record them -----
    async def record_event(self, obj: dict[str, Any], kind: str, type_: str, reason: str, message: str,
                           component: str) -> None:
        """An Event about ``obj``; the same reason and message again bumps ``count`` (the client aggregates)."""
        meta = obj["metadata"]
        seen = self.recorded_events.get((meta.get("uid"), reason, message))
        event = self.get("Event", *seen) if seen else None
        if event is not None:
            await self.update("Event", *seen, {"count": int(event.get("count") or 1) + 1, "lastTimestamp": timestamp()})
            return
        name = f"{meta['name']}.{secrets.token_hex(8)}"
        self.recorded_events[(meta.get("uid"), reason, message)] = (meta.get("namespace"), name)
        await self.put("Event", {
            "metadata": {"name": name, "namespace": meta.get("namespace")},
            "involvedObject": {"kind": kind, "namespace": meta.get("namespace"), "name": meta["name"],
                               "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": timestamp(), "lastTimestamp": timestamp(),
            "source": {"component": component}, "reportingComponent": component})

"""Writes through the API: create, update (PUT), patch, delete, with the API server's rules.

* server-set metadata (uid, resourceVersion, generation, creationTimestamp) can't be written by clients;
* ``generation`` increments when anything but metadata and status changes;
* for kinds with a ``status`` subresource, the main endpoint ignores status and ``/status`` ignores the rest;
* a stale ``metadata.resourceVersion`` (PUT, or in a patch body) is a 409 Conflict; a failed JSON-patch
  ``test`` a 422; a write that changes nothing is no write (no new resourceVersion, no watch event);
* ``dryRun=All`` answers what would be stored without storing it.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError
from .objects import qualified_plural, status_details
from .store import StoredKey, merge_patch, without_directives

SERVER_SET = ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp",
              "deletionGracePeriodSeconds", "name", "namespace")


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Writes:
    """Mixin of :class:`~.server.HttpApi`."""

    def _has_status(self, resource: Any) -> bool:
        return resource in self.resources and "status" in self.resources[resource].subresources

    async def create(self, resource: Any, namespace: str | None, body: Any, params: dict[str, str]) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        body = copy.deepcopy(body)
        key = self.new_key(resource, namespace, body)
        if key[1] is not None and self.get("Namespace", None, key[1]) is None:
            raise ApiError(404, f'namespaces "{key[1]}" not found', {"name": key[1], "kind": "namespaces"})
        if key in self.store.objects:
            raise ApiError(409, f'{qualified_plural(resource)} "{key[2]}" already exists',
                            status_details(resource, key[2]))
        meta = body["metadata"]
        for field in SERVER_SET[:-2]:
            meta.pop(field, None)
        if self._has_status(resource) and resource != self.resource_of("Pod"):
            body.pop("status", None)
        body = self.admit(resource, key, body, params)
        if params.get("dryRun") == "All":
            return body
        stored = self.store.create(key, body)
        self.changed.set()
        return stored

    async def replace(self, resource: Any, key: StoredKey, body: Any, sub: str | None, params: dict[str, str]) -> dict:
        current = self._existing(*key)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        wanted_version = (body.get("metadata") or {}).get("resourceVersion")
        if not wanted_version:
            raise ApiError(422, f'{self.kind_of(resource)} "{key[2]}" is invalid: metadata.resourceVersion: '
                                 "Invalid value: 0x0: must be specified for an update")
        return await self._update(resource, key, current, body, sub, params)

    async def patch(self, resource: Any, key: StoredKey, body: Any, content: str, sub: str | None,
                    params: dict[str, str]) -> dict:
        current = self._existing(*key)
        if "json-patch" in content:
            wanted = self._json_patch(current, body)
        elif "apply-patch" in content:
            raise ApiError(415, "server-side apply is not supported by the local cluster: use kubectl apply "
                                 "without --server-side")
        elif "strategic-merge-patch" in content:
            wanted = merge_patch(current, without_directives(body))
        else:
            wanted = merge_patch(current, body)
        return await self._update(resource, key, current, wanted, sub, params)

    @staticmethod
    def _json_patch(current: dict[str, Any], ops: Any) -> dict[str, Any]:
        import jsonpatch

        try:
            return jsonpatch.apply_patch(current, ops)
        except jsonpatch.JsonPatchTestFailed as err:
            raise ApiError(422, f"the server rejected our request due to an error in our request: {err}") from err
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as err:
            raise ApiError(400, f"the patch is not a valid JSON patch: {err}") from err

    async def _update(self, resource: Any, key: StoredKey, current: dict, wanted: dict, sub: str | None,
                      params: dict[str, str]) -> dict:
        wanted_version = (wanted.get("metadata") or {}).get("resourceVersion")
        if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {qualified_plural(resource)} "{key[2]}": the '
                                 "object has been modified; please apply your changes to the latest version and try "
                                 "again", status_details(resource, key[2]))
        if sub == "status":  # only status changes
            new = {**current, "status": wanted.get("status")} if "status" in wanted else dict(current)
            if new.get("status") is None:
                new.pop("status", None)
        else:
            new = dict(wanted)
            if self._has_status(resource):
                new.pop("status", None)
                if "status" in current:
                    new["status"] = current["status"]
        meta = dict(new.get("metadata") or {})
        meta.update({f: current["metadata"][f] for f in SERVER_SET if f in current["metadata"]})
        if "deletionTimestamp" not in current["metadata"]:
            meta.pop("deletionTimestamp", None)
        if _content(new) != _content(current):
            meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
        new["metadata"] = meta
        new = self.admit(resource, key, new, params, old=current)
        if new == current or params.get("dryRun") == "All":
            return current if new == current else new
        stored = self.store.replace(key, new)
        self.changed.set()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            last = self.store.delete(key)
            await self.collect_garbage()
            return last
        return stored

    async def delete(self, key: StoredKey, propagation: str) -> dict:
        self._existing(*key)
        return await self.delete_key(key, propagation)

"""The HTTP side of the local API server: the requests kubectl and kopf make, answered from the store.

kmock provides the HTTP server, the request parsing and recording (the emulator iterates them) and discovery;
every Kubernetes request on a resource is answered here: get, list and watch (selectors, resourceVersion,
server-side Tables), create, update (PUT), patch (merge, strategic read as merge, JSON patch), the ``status``
subresource, delete (finalizers, propagation), delete-collection and ``pods/log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock

from . import discovery
from .admission import Admission, Invalid
from .errors import ApiError
from .jobs import TERMINAL, phase
from .objects import RESOURCES, Objects, api_version, qualified_plural, status_details
from .selectors import SelectorError, selector_from
from .store import Gone, Store, StoredKey, new_name
from .tables import table, wants_table
from .writes import Writes


def method_of(request: Any) -> str:
    return str(getattr(request.method, "value", request.method)).upper()


@dataclass
class Fault:
    method: str  # GET, POST, PATCH, DELETE (or "*")
    kind: str | None  # a key of RESOURCES, or None for any
    status: int
    remaining: int | None  # None: until cleared
    apply: bool  # the request takes effect, only its answer is an error (a lost response)
    subresource: str | None = None
    seen: int = 0

    def matches(self, request: Any) -> bool:
        kind_ok = self.kind is None or RESOURCES.get(self.kind) == request.resource
        sub_ok = self.subresource is None or self.subresource == request.subresource
        watch = request.params.get("watch") in ("true", "1")
        return kind_ok and sub_ok and not watch and self.method in ("*", method_of(request))


@attrs.define(kw_only=True)
class HttpApi(Objects, Writes, Admission, kmock.KubernetesScaffold):
    """kmock's HTTP server and discovery, with every resource request answered from :class:`Store`."""

    store: Store = attrs.field(factory=Store)
    faults: list[Fault] = attrs.field(factory=list)
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)

    # kmock 0.8 has no public hooks for what follows: discovery answers (``_serve_version``), requests it
    # cannot parse (``__call__`` records them in ``_requests``, where its own parser puts the rest) and the
    # dispatch of a parsed request (``_handle``) are overridden through its protected methods and attributes.
    async def _serve_version(self, request: Any) -> Any:
        return discovery.fix_resource_list(await super()._serve_version(request), request.resource.group == "")

    async def __call__(self, raw_request: Any) -> aiohttp.web.StreamResponse:
        if not discovery.NAMESPACES_PATH.match(raw_request.path):
            return await super().__call__(raw_request)
        request = await discovery.parse_namespaces_request(raw_request, len(self._requests))
        self._requests.append(request)
        return await self._handle(request)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is None:
            openapi = await discovery.serve_openapi(self.resources, request)
            return openapi if openapi is not None else await super()._handle(request)
        if request.resource.plural is None and not request.namespace:
            return await super()._handle(request)
        fault = self._take_fault(request)
        if fault is not None and not fault.apply:
            return ApiError(fault.status, f"injected error {fault.status}").response()
        try:
            response = await self._route(request)
        except ApiError as err:
            response = err.response()
        except SelectorError as err:
            response = ApiError(400, str(err)).response()
        except Invalid as err:
            response = err.error().response()
        if fault is not None:
            return ApiError(fault.status, f"injected error {fault.status}").response()
        return response

    def _take_fault(self, request: Any) -> Fault | None:
        for fault in self.faults:
            if not fault.matches(request) or (fault.remaining is not None and fault.remaining <= 0):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            fault.seen += 1
            return fault
        return None

    # ----- routing -----
    def _target(self, request: Any) -> tuple[Any, str | None, str | None]:
        resource, namespace, name = request.resource, request.namespace, request.name
        if resource.plural is None:  # /api/v1/namespaces/NAME is the Namespace NAME
            resource, namespace, name = RESOURCES["Namespace"], None, namespace
        if resource not in self.resources and resource not in RESOURCES.values():
            raise ApiError(404, "the server could not find the requested resource")
        if not self.namespaced(resource):
            namespace = None
        return resource, namespace, name

    async def _route(self, request: Any) -> aiohttp.web.StreamResponse:
        resource, namespace, name = self._target(request)
        method, params, sub = method_of(request), request.params, request.subresource
        if sub not in (None, "status", "log"):
            raise ApiError(404, f"the server could not find the requested resource ({sub})")
        if method == "GET" and sub == "log":
            return await self.serve_log(request, namespace, name)
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self.serve_watch(request, resource, namespace, name)
        if method == "GET" and name:
            return self._answer(request, resource, self._existing(resource, namespace, name))
        if method == "GET":
            return self.serve_list(request, resource, namespace)
        body = request.data
        if "protobuf" in request.headers.get("Content-Type", ""):
            raise ApiError(415, "the local API server reads JSON only, not protobuf (kubectl's imperative `create "
                                "namespace/secret/...` send protobuf): use kubectl apply -f with a manifest")
        if method == "POST" and not name:
            return self._answer(request, resource, await self.create(resource, namespace, body, params), 201)
        if method == "PUT" and name:
            return self._answer(request, resource, await self.replace(resource, (resource, namespace, name),
                                                                          body, sub, params))
        if method == "PATCH" and name:
            content = request.headers.get("Content-Type", "")
            return self._answer(request, resource, await self.patch(resource, (resource, namespace, name),
                                                                        body, content, sub, params))
        if method == "DELETE" and name:
            return self._answer(request, resource, await self.delete(
                (resource, namespace, name), self._propagation(resource, body, params)))
        if method == "DELETE":
            return await self.delete_collection(request, resource, namespace)
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")

    def _existing(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get((resource, namespace, name))
        if obj is None:
            raise self.not_found(resource, name)
        return obj

    def not_found(self, resource: Any, name: str) -> ApiError:
        return ApiError(404, f'{qualified_plural(resource)} "{name}" not found', status_details(resource, name))

    @staticmethod
    def _propagation(resource: Any, body: Any, params: dict[str, str]) -> str:
        options = body if isinstance(body, dict) else {}
        policy = params.get("propagationPolicy") or options.get("propagationPolicy")
        if policy:
            return policy
        if options.get("orphanDependents") is True:
            return "Orphan"
        return "Orphan" if resource == RESOURCES["Job"] else "Background"  # batch/v1 Jobs orphan by default

    def _answer(self, request: Any, resource: Any, obj: dict[str, Any], code: int = 200):
        if wants_table(request.headers.get("Accept")):
            return self._table(request, resource, [obj], str(self.store.version))
        return aiohttp.web.json_response(obj, status=code)

    def _table(self, request: Any, resource: Any, items: list[dict[str, Any]], version: str):
        """The server-side Table ``kubectl get`` asks for (``Accept: ...;as=Table``)."""
        include = request.params.get("includeObject", "Metadata")
        return aiohttp.web.json_response(table(self.kind_of(resource), items, version, include))

    # ----- reading -----
    def serve_list(self, request: Any, resource: Any, namespace: str | None) -> aiohttp.web.StreamResponse:
        matches = selector_from(request.params)
        items = [obj for obj in self.store.items(resource, namespace) if matches(obj)]
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        version = str(self.store.version)
        if wants_table(request.headers.get("Accept")):
            return self._table(request, resource, items, version)
        return aiohttp.web.json_response({"apiVersion": api_version(resource), "kind": f"{self.kind_of(resource)}List",
                                          "metadata": {"resourceVersion": version}, "items": items})

    async def serve_watch(self, request: Any, resource: Any, namespace: str | None, name: str | None):
        params = request.params
        selected = selector_from(params)

        def matches(obj: dict[str, Any] | None) -> bool:
            meta = (obj or {}).get("metadata") or {}
            return (obj is not None and (namespace is None or meta.get("namespace") == namespace)
                    and (name is None or meta.get("name") == name) and selected(obj))

        start = params.get("resourceVersion") or "0"
        try:
            version = int(start)
        except ValueError as err:
            raise ApiError(400, f"invalid resourceVersion {start!r}") from err
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        response._payload_writer.send_headers()  # aiohttp sends headers with the first chunk; a watch may wait
        as_table = wants_table(request.headers.get("Accept"))
        include = params.get("includeObject", "Metadata")
        kind = self.kind_of(resource)

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            shown = table(kind, [obj], obj["metadata"].get("resourceVersion", ""), include) if as_table else obj
            await response.write(json.dumps({"type": event_type, "object": shown}).encode() + b"\n")

        with contextlib.suppress(ConnectionError, asyncio.CancelledError, TimeoutError):
            timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
            async with asyncio.timeout(timeout):
                if version == 0:
                    version = self.store.version
                    for obj in self.store.items(resource, namespace):
                        if matches(obj):
                            await send("ADDED", obj)
                    if params.get("sendInitialEvents") == "true":
                        await send("BOOKMARK", {"kind": kind, "apiVersion": api_version(resource), "metadata": {
                            "resourceVersion": str(version),
                            "annotations": {"k8s.io/initial-events-end": "true"}}})
                await self._stream(resource, version, matches, send)
        return response

    async def _stream(self, resource: Any, version: int, matches, send) -> None:
        while True:
            try:
                changes = await self.store.after(version)
            except Gone as err:
                await send("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                     "message": str(err), "reason": "Expired", "code": 410})
                return
            for change in changes:
                version = change.version
                if change.resource != resource:
                    continue
                now_in, was_in = matches(change.obj), matches(change.before)
                if change.type == "DELETED":
                    if was_in:
                        await send("DELETED", change.obj)
                elif now_in:
                    await send("MODIFIED" if was_in else "ADDED", change.obj)
                elif was_in:
                    await send("DELETED", change.obj)  # it left the selection

    async def serve_log(self, request: Any, namespace: str | None, name: str | None) -> aiohttp.web.StreamResponse:
        pod = self._existing(RESOURCES["Pod"], namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or ()]
        container = request.params.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            waiting = (status.get("state") or {}).get("waiting")
            if status.get("name") == container and waiting:
                raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: '
                                    f'{waiting.get("reason", "ContainerCreating")}')
        written = self.runner.read_log(pod)
        if written is None:
            raise ApiError(400, f'logs of container "{container}" in pod "{name}" are not available: the local '
                                f"cluster's pod runner ({type(self.runner).__name__}) runs no process")
        shown = written
        if request.params.get("tailLines"):
            shown = b"".join(written.splitlines(keepends=True)[-int(request.params["tailLines"]):])
        if request.params.get("follow") not in ("true", "1"):
            return aiohttp.web.Response(body=shown, content_type="text/plain", charset="utf-8")
        return await self._follow_log(request, pod, shown, len(written))

    async def _follow_log(self, request: Any, pod: dict[str, Any], shown: bytes, offset: int):
        """``kubectl logs -f``: ``shown``, then the bytes the container writes after byte ``offset``, each poll
        reading from where the last one ended, until the pod has ended and the rest of its log was sent."""
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request._raw_request)
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await response.write(shown)
            while True:
                current = self.get("Pod", namespace, name)
                ended = current is None or phase(current) in TERMINAL  # before the read: nothing comes after it
                appended = self.runner.read_log(current or pod, offset) or b""
                if appended:
                    await response.write(appended)
                    offset += len(appended)
                if ended:
                    break
                await asyncio.sleep(0.2)
        return response

    async def delete_collection(self, request: Any, resource: Any, namespace: str | None):
        matches = selector_from(request.params)
        policy = self._propagation(resource, request.data, request.params)
        gone = [await self.delete((resource, namespace, o["metadata"]["name"]), policy)
                for o in list(self.store.items(resource, namespace)) if matches(o)]
        return aiohttp.web.json_response({"apiVersion": api_version(resource),
                                          "kind": f"{self.kind_of(resource)}List",
                                          "metadata": {"resourceVersion": str(self.store.version)}, "items": gone})

    def new_key(self, resource: Any, namespace: str | None, body: dict[str, Any]) -> StoredKey:
        meta = body.setdefault("metadata", {})
        if self.namespaced(resource):
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            namespace = namespace or meta.get("namespace") or "default"
        name = new_name(meta)
        if not name:
            raise ApiError(422, f'{self.kind_of(resource)} "" is invalid: metadata.name: Required value: name or '
                                "generateName is required")
        meta["name"] = name
        return (resource, namespace, name)

"""Discovery and OpenAPI answers that kubectl 1.32 needs beyond what kmock serves.

* ``/api/v1`` says ``groupVersion: v1`` (kmock says ``/v1``); subresources (``pods/status``) carry no short
  names or categories (kmock copies them, so ``kubectl get gft`` warned about ``gemmafinetunes/status``);
  ``pods/log`` is listed.
* ``/openapi/v3`` and one document per group version with, for each resource, a PATCH operation that accepts
  ``fieldValidation``: kubectl's default ``--validate=strict`` then leaves validation to this server
  (``fieldValidation=Strict``) instead of failing to download OpenAPI v2. The documents hold no schemas:
  ``kubectl explain`` does not work.
* ``/api/v1/namespaces`` (kmock's path parser fails on it) is parsed here.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp.web
import kmock

NAMESPACES_PATH = re.compile(r"^/api/v1/namespaces/?$")


def fix_resource_list(answer: dict[str, Any], core: bool) -> dict[str, Any]:
    if core:
        answer["groupVersion"] = "v1"
    for entry in answer.get("resources") or ():
        if "/" in entry["name"]:
            entry.update(shortNames=[], categories=[], singularName="")
    names = {e["name"] for e in answer.get("resources") or ()}
    if core and "pods" in names and "pods/log" not in names:
        answer["resources"].append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                    "verbs": ["get"], "shortNames": [], "categories": []})
    return answer


def group_versions(resources: Any) -> dict[str, list[tuple[Any, Any]]]:
    """``"api/v1"`` / ``"apis/<group>/<version>"`` -> [(resource, info)] of the top-level resources."""
    out: dict[str, list] = {}
    for resource in resources:
        if "/" in (resource.plural or "") or resource.plural is None:
            continue
        key = f"apis/{resource.group}/{resource.version}" if resource.group else f"api/{resource.version}"
        out.setdefault(key, []).append((resource, resources[resource]))
    return out


def openapi_root(resources: Any) -> dict[str, Any]:
    return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash=local"}
                      for key in group_versions(resources)}}


def openapi_document(resources: Any, key: str) -> dict[str, Any] | None:
    entries = group_versions(resources).get(key)
    if entries is None:
        return None
    paths = {}
    for resource, info in entries:
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        gvk = {"group": resource.group, "version": resource.version, "kind": info.kind}
        paths[f"/{key}{scope}/{resource.plural}/{{name}}"] = {"patch": {
            "operationId": f"patch{info.kind}", "x-kubernetes-group-version-kind": gvk,
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
                            "description": "Ignore, Warn or Strict"}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (local)", "version": "v1.32.0"}, "paths": paths,
            "components": {}}


async def serve_openapi(resources: Any, request: Any) -> aiohttp.web.StreamResponse | None:
    path = request.url.path
    if path.rstrip("/") == "/openapi/v3":
        return aiohttp.web.json_response(openapi_root(resources))
    if path.startswith("/openapi/v3/"):
        document = openapi_document(resources, path[len("/openapi/v3/"):].strip("/"))
        if document is not None:
            return aiohttp.web.json_response(document)
    return None


async def parse_namespaces_request(raw_request: Any, request_id: int) -> Any:
    """kmock's Request for ``/api/v1/namespaces`` (cluster-scoped list, watch or create)."""
    await raw_request.read()
    try:
        data = await raw_request.json()
    except ValueError:
        data = None
    params = dict(raw_request.query)
    method = raw_request.method.upper()
    action = (kmock.action.WATCH if method == "GET" and params.get("watch") in ("true", "1") else
              kmock.action.LIST if method == "GET" else kmock.action.CREATE if method == "POST" else None)
    return kmock.Request(id=request_id, raw_request=raw_request, url=raw_request.url, method=method,
                         params=params, headers=dict(raw_request.headers), data=data, action=action,
                         resource=kmock.resource("", "v1", "namespaces"))

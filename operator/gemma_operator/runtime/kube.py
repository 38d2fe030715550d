"""A small Kubernetes client: the calls the operator makes, with retries on 429, 5xx and lost connections.

Built on the official client's ``ApiClient`` (kubeconfig or in-cluster credentials); each call runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from typing import Any

from gemma_api import GROUP, PLURAL, VERSION

log = logging.getLogger("gemma_operator.kube")

RETRIED = {429, 500, 502, 503, 504}
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "gemmaft-operator/0.1"


def now_rfc3339() -> str:
    """Now, as the API server writes times (RFC 3339, UTC, whole seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeError(Exception):
    def __init__(self, status: int, reason: str):
        self.status = status
        super().__init__(f"HTTP {status}: {reason}")


def _paths(kind: str, namespace: str, name: str | None = None) -> str:
    base = {
        "GemmaFineTune": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
        "Job": f"/apis/batch/v1/namespaces/{namespace}/jobs",
        "Pod": f"/api/v1/namespaces/{namespace}/pods",
        "ConfigMap": f"/api/v1/namespaces/{namespace}/configmaps",
        "Service": f"/api/v1/namespaces/{namespace}/services",
        "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "Event": f"/api/v1/namespaces/{namespace}/events",
    }[kind]
    return f"{base}/{name}" if name else base


class Kube:
    def __init__(self, api_client: Any = None, attempts: int = 6, base_delay: float = 0.2):
        if api_client is None:
            import kubernetes

            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()
            api_client = kubernetes.client.ApiClient()
        api_client.user_agent = USER_AGENT
        self._api = api_client
        self._attempts = attempts
        self._base_delay = base_delay

    def _call_sync(self, method: str, path: str, body: Any, query: list[tuple[str, str]], content_type: str) -> Any:
        import json

        from kubernetes.client.exceptions import ApiException

        try:
            _, url, headers, payload, _ = self._api.param_serialize(
                method, path, query_params=query, body=body, auth_settings=["BearerToken"],
                header_params={"Accept": "application/json", "Content-Type": content_type})
            response = self._api.call_api(method, url, header_params=headers, body=payload, _request_timeout=30)
            response.read()
        except ApiException as err:
            raise KubeError(err.status or 0, err.reason or str(err)) from None
        if response.status >= 400:
            raise KubeError(response.status, (response.data or b"")[:300].decode(errors="replace"))
        return json.loads(response.data) if response.data else None

    async def call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
                   content_type: str = "application/json") -> Any:
        for attempt in range(self._attempts):
            try:
                return await asyncio.to_thread(self._call_sync, method, path, body, query or [], content_type)
            except KubeError as err:
                if err.status not in RETRIED or attempt == self._attempts - 1:
                    raise
                reason = str(err)
            except OSError as err:  # connection refused or reset (urllib3 errors derive from it too)
                if attempt == self._attempts - 1:
                    raise
                reason = repr(err)
            except Exception as err:  # urllib3.exceptions.MaxRetryError and friends
                if "urllib3" not in type(err).__module__ or attempt == self._attempts - 1:
                    raise
                reason = repr(err)
            delay = min(3.0, self._base_delay * 2**attempt) * (0.5 + random.random())
            log.info("retrying %s %s in %.1fs: %s", method, path, delay, reason)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # The operations the operator needs (and so its RBAC verbs).
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("GET", _paths(kind, namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create; the stored object, or None when it exists already (deterministic names make that a success)."""
        meta = obj["metadata"]
        try:
            return await self.call("POST", _paths(obj["kind"], meta["namespace"]), body=obj) or {}
        except KubeError as err:
            if err.status == 409:
                return None
            raise

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                    status: bool = False) -> dict[str, Any] | None:
        """Merge-patch; the object as stored after the patch."""
        path = _paths(kind, namespace, name) + ("/status" if status else "")
        return await self.call("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        try:
            await self.call("DELETE", _paths(kind, namespace, name),
                            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
            return True
        except KubeError as err:
            if err.status == 404:
                return False
            raise

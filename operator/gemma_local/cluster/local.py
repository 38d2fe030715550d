"""``LocalCluster``: the emulator and its controllers on a background thread, with a synchronous API."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import pathlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import kmock
from gemma_api import GROUP, KIND, PLURAL, VERSION

from .controllers import ClusterEmulator, PodRunner
from .nodes import NodePool
from .objects import RESOURCES
from .selectors import label_selector
from .server import Fault, method_of


def load_discovery(emulator: ClusterEmulator) -> None:
    emulator.resources.load_bundled()  # the built-in kinds kmock ships (a K3s cluster's discovery)
    emulator.resources[f"{GROUP}/{VERSION}/{PLURAL}"] = kmock.ResourceInfo(
        kind=KIND, namespaced=True, singular="gemmafinetune", shortnames=["gft"], categories=["all"],
        verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        subresources=["status"])


class LocalCluster:
    """The emulator and its controllers on a background thread, with a synchronous API for tests and the demo.

    ``service_accounts``: created in every namespace with ``default`` (a real namespace has ``default``; the
    chart creates the trainer's). ``node_pools``: Node objects the scheduler places pods on (None: any pod
    schedules).
    """

    def __init__(self, runner: PodRunner | None = None, namespaces: tuple[str, ...] = ("default",),
                 service_accounts: Iterable[str] = (), node_pools: list[NodePool] | None = None):
        self._runner = runner
        self._namespaces = namespaces
        self._service_accounts = ("default", *service_accounts)
        self._node_pools = node_pools
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="local-cluster", daemon=True)
        self.emulator: ClusterEmulator | None = None
        self._server: kmock.Server | None = None
        self._controller: asyncio.Task | None = None

    # lifecycle
    def __enter__(self) -> LocalCluster:  # noqa: PYI034
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._stop(), timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _start(self) -> None:
        kwargs = {"runner": self._runner} if self._runner is not None else {}
        self.emulator = ClusterEmulator(**kwargs)
        load_discovery(self.emulator)
        await self.emulator.__aenter__()
        self._server = kmock.Server(self.emulator)
        await self._server.__aenter__()
        for ns in self._namespaces:
            await self.emulator.put("Namespace", {"metadata": {"name": ns}, "status": {"phase": "Active"}})
            for account in self._service_accounts:
                await self.emulator.put("ServiceAccount", {"metadata": {"name": account, "namespace": ns}})
        if self._node_pools is not None:
            await self.emulator.set_node_pools(self._node_pools)
        self._controller = asyncio.get_running_loop().create_task(self.emulator.control())

    async def _stop(self) -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # the controllers, open watch streams, kmock's feeder
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server:
            with contextlib.suppress(Exception):
                await self._server.__aexit__(None, None, None)
        if self.emulator:
            with contextlib.suppress(Exception, ExceptionGroup):
                await self.emulator.__aexit__(None, None, None)

    def call(self, coro, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _sync(self, fn: Callable[[], Any]) -> Any:
        async def run():
            return fn()
        return self.call(run())

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.url).rstrip("/")

    def write_kubeconfig(self, path: pathlib.Path, namespace: str = "default") -> pathlib.Path:
        """A kubeconfig for this server. Run kubectl with ``kubectl_flags(path)`` (or ``KUBECACHEDIR`` set to
        ``kubectl_cache_dir(path)``): its default discovery cache is keyed by host:port, and loopback ports are
        reused."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {"server": self.url}}],
            "users": [{"name": "local", "user": {"token": "local"}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    # reading
    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self._sync(lambda: copy.deepcopy(self.emulator.get(kind, namespace, name)))

    def list(self, kind: str, namespace: str | None = "default", labels: dict[str, str] | str | None = None):
        """Objects of a kind; ``labels``: a dict of equalities or a label selector string (``a in (x,y)``)."""
        text = labels if isinstance(labels, str) else ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        matches = label_selector(text)
        return self._sync(lambda: [copy.deepcopy(i) for i in self.emulator.find(kind, namespace) if matches(i)])

    def pods_of(self, job_name: str, namespace: str = "default") -> list[dict[str, Any]]:
        return self.list("Pod", namespace, {"job-name": job_name})

    def events_for(self, name: str, namespace: str = "default", kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.list("Event", namespace) if (e.get("involvedObject") or {}).get("name") == name
                and kind in (None, (e.get("involvedObject") or {}).get("kind"))]

    def requests(self, method: str, kind: str) -> int:
        res = RESOURCES[kind]
        return self._sync(lambda: sum(1 for r in self.emulator  # kmock: a view iterates its requests
                                      if r.resource == res and method_of(r) == method.upper()))

    # acting: objects
    def create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as an admin would create it (admission defaults and validation apply)."""
        return copy.deepcopy(self.call(self.emulator.put(kind, copy.deepcopy(obj))))

    def delete(self, kind: str, name: str, namespace: str = "default", propagation: str = "Background") -> None:
        self.call(self.emulator.remove(kind, namespace, name, propagation))

    # acting: pods and nodes
    def succeed_pod(self, name: str, namespace: str = "default") -> None:
        self.call(self.emulator.end_pod(namespace, name, 0))

    def fail_pod(self, name: str, exit_code: int = 1, namespace: str = "default", reason: str | None = None) -> None:
        """The container exits with ``exit_code`` (terminated reason ``reason``, default Error)."""
        self.call(self.emulator.end_pod(namespace, name, exit_code, reason=reason))

    def preempt_pod(self, name: str, exit_code: int = 143, namespace: str = "default") -> None:
        self.call(self.emulator.end_pod(namespace, name, exit_code, disrupted=True))

    def oom(self, name: str, namespace: str = "default") -> None:
        """The pod's container exceeds its memory limit: terminated, reason OOMKilled, exit code 137."""
        self.call(self.emulator.oom_kill(namespace, name))

    def fail_image_pull(self, image_prefix: str, message: str | None = None) -> None:
        """Images starting with ``image_prefix`` can't be pulled (ErrImagePull, then ImagePullBackOff)."""
        self._sync(lambda: self.emulator.image_pull_failures.__setitem__(image_prefix, message))

    def allow_image_pull(self, image_prefix: str) -> None:
        self._sync(lambda: self.emulator.image_pull_failures.pop(image_prefix, None))
        self._sync(self.emulator.changed.set)

    def set_node_pools(self, pools: list[NodePool]) -> None:
        self.call(self.emulator.set_node_pools(pools))

    # acting: API faults
    def inject(self, method: str, kind: str | None, status: int, times: int | None = 1, apply: bool = False,
               subresource: str | None = None) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (``apply``: the request still acts)."""
        fault = Fault(method.upper(), kind, status, times, apply, subresource)
        self._sync(lambda: self.emulator.faults.append(fault))
        return fault

    def clear_faults(self) -> None:
        self._sync(lambda: self.emulator.faults.clear())


def kubectl_cache_dir(kubeconfig: pathlib.Path) -> pathlib.Path:
    """kubectl's discovery cache for the server of ``kubeconfig`` alone.

    kubectl keeps discovery in ``$HOME/.kube/cache/discovery/<host>_<port>`` for hours. A local server's port
    is an ephemeral one that an earlier server (of another project, or an older build) may have used, and
    kubectl then maps names from that server's groups: ``get pods`` listed ``metrics.k8s.io`` PodMetrics.
    """
    return kubeconfig.with_name(f"{kubeconfig.name}.kubectl-cache")


def kubectl_flags(kubeconfig: pathlib.Path) -> list[str]:
    """kubectl's flags for the server of ``kubeconfig``: that kubeconfig, and its own discovery cache
    (:func:`kubectl_cache_dir`)."""
    return ["--kubeconfig", str(kubeconfig), "--cache-dir", str(kubectl_cache_dir(kubeconfig))]

"""A Kubernetes cluster on one machine: the real kmock emulator plus a small cluster-behaviour layer.

kmock stores what it is sent and serves list/watch/get/create/patch/delete over HTTP. This layer adds what the
operator relies on from a real cluster, and nothing more:

* server-side metadata: uid, namespace, resourceVersion, generation (bumped when spec changes),
  creationTimestamp; the status subresource (``/status`` writes only status, the main endpoint never does);
* a Job controller: pods for Jobs (one per index for Indexed Jobs), suspend, podFailurePolicy (FailJob, Ignore),
  backoffLimit, Job status and conditions, ttlSecondsAfterFinished;
* owner-reference garbage collection;
* pod phases driven from outside (``succeed_pod``, ``fail_pod``, ``preempt_pod``) or by a :class:`PodRunner`
  that runs pods as local processes (``gemmaft demo``);
* injected API errors (409, 429, 500...) for chosen requests.

:class:`LocalCluster` runs it all on a background thread and offers a synchronous API to tests and the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import pathlib
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp.web
import attrs
import kmock

from gemma_operator.api import GROUP, KIND, PLURAL, VERSION

RESOURCES = {
    KIND: kmock.resource(GROUP, VERSION, PLURAL),
    "Job": kmock.resource("batch", "v1", "jobs"),
    "Pod": kmock.resource("", "v1", "pods"),
    "ConfigMap": kmock.resource("", "v1", "configmaps"),
    "Service": kmock.resource("", "v1", "services"),
    "Event": kmock.resource("", "v1", "events"),
}
WITH_STATUS = {RESOURCES[KIND], RESOURCES["Job"], RESOURCES["Pod"]}
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ts(moment: datetime.datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _method(request: Any) -> str:
    return str(getattr(request.method, "value", request.method)).upper()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Fault:
    method: str  # GET, POST, PATCH, DELETE (or "*")
    kind: str | None  # a key of RESOURCES, or None for any
    status: int
    remaining: int | None  # None: until cleared
    apply: bool  # the request takes effect, only its answer is an error (a lost response)
    subresource: str | None = None
    seen: int = 0


class PodRunner(Protocol):
    """Runs a pod somewhere (e.g. a local process) and reports its end through the cluster."""

    async def start(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None: ...

    async def stop(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None: ...


class SchedulingOnly:
    """The default runner: pods get scheduled (phase Running) and wait for the test to end them."""

    def __init__(self, run: bool = True):
        self.run = run

    async def start(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        if self.run:
            meta = pod["metadata"]
            await cluster.set_pod_status(meta["namespace"], meta["name"], {
                "phase": "Running", "startTime": _ts(),
                "containerStatuses": [{"name": c["name"], "ready": True, "state": {"running": {"startedAt": _ts()}}}
                                      for c in pod["spec"].get("containers", [])]})

    async def stop(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        return None


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    runner: Any = attrs.field(factory=SchedulingOnly)
    faults: list[Fault] = attrs.field(factory=list)
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)
    _versions: Any = attrs.field(factory=lambda: itertools.count(1))
    _finished_at: dict[str, datetime.datetime] = attrs.field(factory=dict)  # Job uid -> exact end time

    # ----- storage helpers (the layer's own writes, with watch events) -----
    def _next_version(self) -> str:
        return str(next(self._versions))

    def stamp_new(self, obj: dict[str, Any], namespace: str | None) -> None:
        meta = obj.setdefault("metadata", {})
        if namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_version()
        meta["generation"] = 1
        meta["creationTimestamp"] = _ts()

    def find(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        res = RESOURCES[kind]
        return [obj.raw for (r, ns, _), obj in list(self.objects.items())
                if r == res and not obj.deleted and (namespace is None or ns == namespace)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (RESOURCES[kind], namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw

    async def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        res = RESOURCES[kind]
        meta = obj["metadata"]
        self.stamp_new(obj, meta.get("namespace"))
        async with self._lock:
            key = (res, meta.get("namespace"), meta["name"])
            if key in self.objects and not self.objects[key].deleted:
                raise ValueError(f"{kind} {meta['name']} exists")
            if key in self.objects:
                self.objects[key].create(obj)
            else:
                self.objects[key] = obj
            await self._buses[res].put({"type": "ADDED", "object": self.objects[key].raw})
        self.changed.set()
        return obj

    async def update(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        res = RESOURCES[kind]
        key = (res, namespace, name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return None
            patch = merge_patch(patch, {"metadata": {"resourceVersion": self._next_version()}})
            self.objects[key].patch(patch)
            raw = self.objects[key].raw
            await self._buses[res].put({"type": "MODIFIED", "object": raw})
        self.changed.set()
        return raw

    async def remove(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        res = RESOURCES[kind]
        key = (res, namespace, name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return None
            raw = self.objects[key].raw
            self.objects[key].delete()
            await self._buses[res].put({"type": "DELETED", "object": raw})
        self.changed.set()
        if kind == "Pod":
            await self.runner.stop(self, raw)
        return raw

    async def set_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.update("Pod", namespace, name, {"status": status})

    # ----- the API server side: metadata, subresources, faults -----
    def _fault_for(self, request: kmock.Request) -> Fault | None:
        for fault in self.faults:
            kind_ok = fault.kind is None or RESOURCES.get(fault.kind) == request.resource
            method_ok = fault.method in ("*", _method(request))
            sub_ok = fault.subresource is None or fault.subresource == request.subresource
            if kind_ok and method_ok and sub_ok and request.action != kmock.action.WATCH:
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                fault.seen += 1
                return fault
        return None

    @staticmethod
    def _error(status: int) -> aiohttp.web.StreamResponse:
        reasons = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
        body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": status,
                "reason": reasons.get(status, "InternalError"), "message": f"injected error {status}"}
        headers = {"Retry-After": "1"} if status == 429 else None
        return aiohttp.web.json_response(body, status=status, headers=headers)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        fault = self._fault_for(request) if request.resource is not None else None
        if fault is not None and not fault.apply:
            return self._error(fault.status)
        deleted_uid = None
        if request.resource is not None and isinstance(request.data, dict):
            self._server_side(request)
        if request.resource is not None and request.action == kmock.action.DELETE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:
                deleted_uid = (self.objects[key].raw.get("metadata") or {}).get("uid")
        response = await super()._handle(request)
        if request.resource is not None and request.action in (
                kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            self.changed.set()
        if deleted_uid:
            await self.collect_garbage()
            if request.resource == RESOURCES["Pod"]:
                await self.runner.stop(self, {"metadata": {"name": request.name, "namespace": request.namespace}})
        if fault is not None:
            return self._error(fault.status)
        return response

    def _server_side(self, request: kmock.Request) -> None:
        data = request.data
        if request.action == kmock.action.CREATE:
            key = (request.resource, request.namespace or (data.get("metadata") or {}).get("namespace"),
                   (data.get("metadata") or {}).get("name"))
            if key in self.objects and not self.objects[key].deleted:
                return  # kmock answers 409
            self.stamp_new(data, request.namespace)
            if request.resource in WITH_STATUS and request.resource != RESOURCES["Pod"]:
                data.pop("status", None)
        elif request.action == kmock.action.UPDATE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                return
            current = self.objects[key].raw
            if request.subresource == "status":
                kept = {"status": data.get("status")}
                data.clear()
                data.update(kept)
            elif request.resource in WITH_STATUS:
                data.pop("status", None)
            merged = merge_patch(current, data)
            meta = data.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "namespace", "name"):
                meta.pop(field, None)
            meta["resourceVersion"] = self._next_version()
            if merged.get("spec") != current.get("spec"):
                meta["generation"] = int((current.get("metadata") or {}).get("generation") or 1) + 1

    # ----- controllers -----
    async def collect_garbage(self) -> None:
        """Delete objects whose owners are all gone (background propagation, repeated until stable)."""
        while True:
            uids = {(o.raw.get("metadata") or {}).get("uid") for o in self.objects.values() if not o.deleted}
            orphans = []
            for (res, ns, name), obj in list(self.objects.items()):
                if obj.deleted:
                    continue
                owners = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
                if owners and not any(o.get("uid") in uids for o in owners):
                    kind = next(k for k, r in RESOURCES.items() if r == res) if res in RESOURCES.values() else None
                    if kind:
                        orphans.append((kind, ns, name))
            if not orphans:
                return
            for kind, ns, name in orphans:
                await self.remove(kind, ns, name)

    async def control(self, interval: float = 0.1) -> None:
        while True:
            try:
                await asyncio.wait_for(self.changed.wait(), interval)
            except TimeoutError:
                pass
            self.changed.clear()
            for job in self.find("Job"):
                try:
                    await self.sync_job(job)
                except Exception as err:  # noqa: BLE001  keep the controller alive; a test sees the Job stuck
                    print(f"cluster: job controller error on {job['metadata'].get('name')}: {err!r}")

    def _pods_of(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [p for p in self.find("Pod", job["metadata"]["namespace"])
                if any(o.get("uid") == uid for o in (p["metadata"].get("ownerReferences") or []))]

    @staticmethod
    def _policy_action(job: dict[str, Any], pod: dict[str, Any]) -> str | None:
        status = pod.get("status") or {}
        codes = {c.get("name"): ((c.get("state") or {}).get("terminated") or {}).get("exitCode")
                 for c in status.get("containerStatuses") or ()}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
        for rule in ((job["spec"].get("podFailurePolicy") or {}).get("rules") or ()):
            on_codes = rule.get("onExitCodes")
            if on_codes:
                names = [on_codes["containerName"]] if on_codes.get("containerName") else list(codes)
                values = set(on_codes.get("values") or ())
                for name in names:
                    code = codes.get(name)
                    if code is None:
                        continue
                    hit = code in values if on_codes.get("operator", "In") == "In" else code not in values and code != 0
                    if hit:
                        return rule["action"]
            for cond in rule.get("onPodConditions") or ():
                if conditions.get(cond.get("type")) == cond.get("status", "True"):
                    return rule["action"]
        return None

    async def _finish(self, job: dict[str, Any], kind: str, reason: str, message: str, pods) -> None:
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Pending", "Running", None):
                await self.remove("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._finished_at[job["metadata"]["uid"]] = _now()
        cond = {"type": kind, "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": _ts(), "lastProbeTime": _ts()}
        await self.update("Job", job["metadata"]["namespace"], job["metadata"]["name"],
                          {"status": {"conditions": [cond], "completionTime": _ts(), "active": 0, "ready": 0}})

    async def sync_job(self, job: dict[str, Any]) -> None:
        meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
        ns, name = meta["namespace"], meta["name"]
        conds = {c["type"]: c for c in status.get("conditions") or () if c.get("status") == "True"}
        if "Complete" in conds or "Failed" in conds:
            ttl = spec.get("ttlSecondsAfterFinished")
            done = status.get("completionTime")
            if ttl is not None and done:
                finished = self._finished_at.get(meta["uid"]) or datetime.datetime.strptime(
                    done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
                if (_now() - finished).total_seconds() >= ttl:
                    await self.remove("Job", ns, name)
                    await self.collect_garbage()
            return
        pods = self._pods_of(job)
        active = [p for p in pods if (p.get("status") or {}).get("phase", "Pending") in ("Pending", "Running")]
        if spec.get("suspend"):
            for pod in active:
                await self.remove("Pod", ns, pod["metadata"]["name"])
            want = {"active": 0, "ready": 0,
                    "conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended",
                                    "message": "Job suspended", "lastTransitionTime": _ts()}]}
            if status.get("active") or "Suspended" not in conds:
                await self.update("Job", ns, name, {"status": want})
            return
        counted, ignored = 0, 0
        for pod in pods:
            if (pod.get("status") or {}).get("phase") != "Failed":
                continue
            action = self._policy_action(job, pod)
            if action == "FailJob":
                await self._finish(job, "Failed", "PodFailurePolicy",
                                   f"Container of pod {pod['metadata']['name']} matched a FailJob rule", pods)
                return
            if action == "Ignore":
                ignored += 1
            else:
                counted += 1
        if counted > int(spec.get("backoffLimit", 6)):
            await self._finish(job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                               pods)
            return
        indexed = spec.get("completionMode") == "Indexed"
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") or 1)
        succeeded = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        done_indexes = {int((p["metadata"].get("annotations") or {}).get(INDEX_KEY, 0)) for p in succeeded}
        if (len(done_indexes) if indexed else len(succeeded)) >= completions:
            await self._finish(job, "Complete", "Completed", "Job completed", pods)
            return
        if indexed:
            busy = {int((p["metadata"].get("annotations") or {}).get(INDEX_KEY, 0)) for p in active}
            missing = [i for i in range(completions) if i not in done_indexes and i not in busy]
        else:
            need = min(parallelism, completions - len(succeeded)) - len(active)
            missing = [None] * max(0, need)
        for index in missing:
            await self.start_pod(job, index)
        running = [p for p in self._pods_of(job) if (p.get("status") or {}).get("phase") == "Running"]
        want = {"active": len(active) + len(missing), "ready": len(running), "succeeded": len(succeeded),
                "failed": counted + ignored, "startTime": status.get("startTime") or _ts(), "conditions": []}
        if any(status.get(k) != v for k, v in want.items()):
            await self.update("Job", ns, name, {"status": want})

    async def start_pod(self, job: dict[str, Any], index: int | None) -> dict[str, Any]:
        meta, template = job["metadata"], copy.deepcopy(job["spec"]["template"])
        pod_meta = template.get("metadata") or {}
        labels = {**(pod_meta.get("labels") or {}), "job-name": meta["name"], "controller-uid": meta["uid"],
                  "batch.kubernetes.io/job-name": meta["name"]}
        annotations = dict(pod_meta.get("annotations") or {})
        spec = template["spec"]
        suffix = secrets.token_hex(3)[:5]
        if index is not None:
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            spec["hostname"] = f"{meta['name']}-{index}"
            name = f"{meta['name']}-{index}-{suffix}"
        else:
            name = f"{meta['name']}-{suffix}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                            "annotations": annotations,
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": spec, "status": {"phase": "Pending"}}
        await self.put("Pod", pod)
        await self.runner.start(self, pod)
        return pod

    # ----- what a test (or the demo) does to pods -----
    async def end_pod(self, namespace: str, name: str, exit_code: int, disrupted: bool = False) -> None:
        pod = self.get("Pod", namespace, name)
        if pod is None:
            raise KeyError(f"pod {namespace}/{name} not found")
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        status: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 and not disrupted else "Failed",
            "containerStatuses": [{"name": c, "ready": False,
                                   "state": {"terminated": {"exitCode": exit_code, "finishedAt": _ts(),
                                                            "reason": "Completed" if exit_code == 0 else "Error"}}}
                                  for c in containers]}
        if disrupted:
            status["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                                     "message": "node is shutting down (spot preemption)",
                                     "lastTransitionTime": _ts()}]
        await self.set_pod_status(namespace, name, status)


def _load_discovery(emulator: ClusterEmulator) -> None:
    emulator.resources.load_path(pathlib.Path(kmock._internal.__file__).parent / "resources.json.gz")
    emulator.resources[f"{GROUP}/{VERSION}/{PLURAL}"] = kmock.ResourceInfo(
        kind=KIND, namespaced=True, singular="gemmafinetune", shortnames=["gft"],
        verbs=["create", "delete", "get", "list", "patch", "update", "watch"], subresources=["status"])


class LocalCluster:
    """The emulator and its controllers on a background thread, with a synchronous API."""

    def __init__(self, runner: PodRunner | None = None, namespaces: tuple[str, ...] = ("default",)):
        self._runner = runner
        self._namespaces = namespaces
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
            self.call(self._stop(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _start(self) -> None:
        kwargs = {"runner": self._runner} if self._runner is not None else {}
        self.emulator = ClusterEmulator(**kwargs)
        _load_discovery(self.emulator)
        await self.emulator.__aenter__()
        self._server = kmock.Server(self.emulator)
        await self._server.__aenter__()
        for ns in self._namespaces:
            await self.emulator.put("Namespace", {"metadata": {"name": ns}}) if "Namespace" in RESOURCES else None
        self._controller = asyncio.get_running_loop().create_task(self.emulator.control())

    async def _stop(self) -> None:
        if self._controller:
            self._controller.cancel()
        if self._server:
            with contextlib.suppress(Exception):
                await self._server.__aexit__(None, None, None)
        if self.emulator:
            # kmock re-raises the request errors it answered (409s and injected faults): expected here.
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

    def list(self, kind: str, namespace: str | None = "default", labels: dict[str, str] | None = None):
        def pick():
            items = self.emulator.find(kind, namespace)
            return [copy.deepcopy(i) for i in items
                    if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in (labels or {}).items())]
        return self._sync(pick)

    def pods_of(self, job_name: str, namespace: str = "default") -> list[dict[str, Any]]:
        return self.list("Pod", namespace, {"job-name": job_name})

    def events_for(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        return [e for e in self.list("Event", namespace) if (e.get("involvedObject") or {}).get("name") == name]

    def requests(self, method: str, kind: str) -> int:
        res = RESOURCES[kind]
        return self._sync(lambda: sum(1 for r in self.emulator._requests
                                      if r.resource == res and _method(r) == method.upper()))

    # acting
    def succeed_pod(self, name: str, namespace: str = "default") -> None:
        self.call(self.emulator.end_pod(namespace, name, 0))

    def fail_pod(self, name: str, exit_code: int = 1, namespace: str = "default") -> None:
        self.call(self.emulator.end_pod(namespace, name, exit_code))

    def preempt_pod(self, name: str, exit_code: int = 143, namespace: str = "default") -> None:
        self.call(self.emulator.end_pod(namespace, name, exit_code, disrupted=True))

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        async def run():
            await self.emulator.remove(kind, namespace, name)
            await self.emulator.collect_garbage()
        self.call(run())

    def inject(self, method: str, kind: str | None, status: int, times: int | None = 1, apply: bool = False,
               subresource: str | None = None) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (``apply``: the request still acts)."""
        fault = Fault(method.upper(), kind, status, times, apply, subresource)
        self._sync(lambda: self.emulator.faults.append(fault))
        return fault

    def clear_faults(self) -> None:
        self._sync(lambda: self.emulator.faults.clear())

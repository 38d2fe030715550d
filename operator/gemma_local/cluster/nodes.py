"""Scheduler and kubelet in miniature: where a pod may run, and how it fails to start the way GKE reports it.

Scheduling: with no Node objects the cluster is permissive (every pod binds to ``local-node``). Once node
pools are set (:meth:`Kubelet.set_node_pools`, Node objects in the API), a pod binds to the first node whose
labels satisfy its ``nodeSelector`` and required node affinity, whose ``NoSchedule`` taints it tolerates,
and whose allocatable resources minus those of the pods already bound there cover its requests (limits
where requests are missing). Otherwise it stays Pending with ``PodScheduled=False`` reason ``Unschedulable``
and the scheduler's message (``0/3 nodes are available: 3 Insufficient google.com/tpu. preemption: ...``)
and a ``FailedScheduling`` Event; it is retried whenever something changes.

Starting a bound pod, in the kubelet's order: volumes (a missing ConfigMap/Secret: ``ContainerCreating`` and
``FailedMount``), the image (a prefix set by :meth:`Kubelet.fail_image_pull`: ``ErrImagePull``, then
``ImagePullBackOff`` with ``Back-off pulling image``), the container config (a missing Secret/ConfigMap or
key in ``env``/``envFrom``: ``CreateContainerConfigError``). Each is retried, so creating the Secret lets the
pod start. Then the :class:`PodRunner` runs it. Ends: ``end_pod`` (exit code; ``disrupted`` adds the
``DisruptionTarget`` condition a node shutdown or spot reclaim sets), ``oom_kill`` (terminated reason
``OOMKilled``, exit code 137).

Not modelled: preemption by priority, inter-pod (anti-)affinity and topology spread, PreferNoSchedule, image
pull back-off doubling, container restarts (restartPolicy is taken as Never), probes, init containers.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .jobs import TERMINAL, phase
from .selectors import match_expression
from .store import timestamp

PULL_BACKOFF_SECONDS = 0.5
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}


def quantity(text: Any) -> float:
    """A Kubernetes quantity (``500m``, ``16Gi``, ``4``) as a number."""
    found = re.fullmatch(r"([0-9.e+-]+)([A-Za-z]*)", str(text).strip())
    if not found:
        raise ValueError(f"not a quantity: {text!r}")
    return float(found.group(1)) * _UNITS.get(found.group(2), 1)


@dataclass
class NodePool:
    """``nodes`` identical nodes: their labels, allocatable resources and taints."""

    name: str
    nodes: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    allocatable: dict[str, str] = field(default_factory=lambda: {"cpu": "8", "memory": "32Gi", "pods": "110"})
    taints: list[dict[str, str]] = field(default_factory=list)

    def node_objects(self) -> list[dict[str, Any]]:
        return [{"metadata": {"name": f"{self.name}-{i}", "labels": {
                    **self.labels, "cloud.google.com/gke-nodepool": self.name,
                    "kubernetes.io/hostname": f"{self.name}-{i}"}},
                 "spec": {"taints": list(self.taints)},
                 "status": {"allocatable": dict(self.allocatable), "capacity": dict(self.allocatable),
                            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
                for i in range(self.nodes)]


def requests_of(pod: dict[str, Any]) -> Counter:
    total: Counter = Counter()
    for container in pod["spec"].get("containers") or ():
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in wanted.items():
            total[name] += quantity(value)
    return total


def _tolerated(taint: dict[str, str], tolerations: list[dict[str, Any]]) -> bool:
    for tol in tolerations:
        if tol.get("effect") not in (None, "", taint.get("effect")):
            continue
        if tol.get("operator") == "Exists" and tol.get("key") in (None, "", taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _affinity_ok(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    spec = pod["spec"]
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or ()
    return not terms or any(all(match_expression(e, labels) for e in t.get("matchExpressions") or ())
                            for t in terms)


def misfit(pod: dict[str, Any], node: dict[str, Any], used: Counter) -> list[str]:
    """Why ``pod`` can't go on ``node`` (empty: it fits), in the scheduler's words."""
    if not _affinity_ok(pod, node["metadata"].get("labels") or {}):
        return ["node(s) didn't match Pod's node affinity/selector"]
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
                taint, pod["spec"].get("tolerations") or []):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    free = {k: quantity(v) for k, v in (node.get("status") or {}).get("allocatable", {}).items()}
    return [f"Insufficient {name}" for name, amount in sorted(requests_of(pod).items())
            if amount > free.get(name, 0) - used[name] + 1e-9]


def unschedulable_message(reasons: dict[str, list[str]]) -> str:
    counts = Counter(r for found in reasons.values() for r in found)
    total = len(reasons)
    listed = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
    victims = Counter("No preemption victims found for incoming pod" if any(r.startswith("Insufficient") for r in f)
                      else "Preemption is not helpful for scheduling" for f in reasons.values())
    preemption = ", ".join(f"{n} {r}" for r, n in sorted(victims.items()))
    return f"0/{total} nodes are available: {listed}. preemption: 0/{total} nodes are available: {preemption}."


class Kubelet:
    """Mixin of :class:`~.controllers.ClusterEmulator`: scheduling and starting pods, ending them."""

    started: set[str]  # these three are fields of ClusterEmulator
    pull_failed: dict[str, float]
    image_pull_failures: dict[str, str | None]

    async def set_node_pools(self, pools: list[NodePool]) -> None:
        for node in list(self.find("Node")):
            await self.remove("Node", None, node["metadata"]["name"])
        for pool in pools:
            for node in pool.node_objects():
                await self.put("Node", node)

    async def sync_pod(self, pod: dict[str, Any]) -> None:
        pod = self.get("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"]) or {"metadata": {}}
        if not pod["metadata"] or phase(pod) in TERMINAL or pod["metadata"].get("deletionTimestamp"):
            return
        if not pod["spec"].get("nodeName"):
            await self._schedule(pod)
        elif phase(pod) == "Pending" and pod["metadata"]["uid"] not in self.started:
            await self._start(pod)

    async def _schedule(self, pod: dict[str, Any]) -> None:
        nodes = sorted(self.find("Node"), key=lambda n: n["metadata"]["name"])
        used: dict[str, Counter] = defaultdict(Counter)  # node name -> requests of the pods running there
        for other in self.find("Pod"):
            if other["spec"].get("nodeName") and phase(other) not in TERMINAL:
                used[other["spec"]["nodeName"]] += requests_of(other)
        reasons: dict[str, list[str]] = {}
        for node in nodes:
            found = misfit(pod, node, used[node["metadata"]["name"]])
            if not found:
                await self._bind(pod, node["metadata"]["name"])
                return
            reasons[node["metadata"]["name"]] = found
        if not nodes:
            await self._bind(pod, "local-node")
            return
        message = unschedulable_message(reasons)
        scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastProbeTime": None, "lastTransitionTime": timestamp()}
        if not any(c.get("message") == message for c in (pod.get("status") or {}).get("conditions") or ()):
            await self.set_pod_status(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                      {"phase": "Pending", "conditions": [scheduled]})
            await self.record_event(pod, "Pod", "Warning", "FailedScheduling", message, "default-scheduler")

    async def _bind(self, pod: dict[str, Any], node: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        await self.update("Pod", ns, name, {"spec": {"nodeName": node}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()}]}})
        await self.record_event(pod, "Pod", "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}",
                                "default-scheduler")

    async def _start(self, pod: dict[str, Any]) -> None:
        problem = self._mount_problem(pod) or self._pull_problem(pod) or self._config_problem(pod)
        if problem is None:
            self.started.add(pod["metadata"]["uid"])
            await self.runner.start(self, pod)
            return
        reason, message, event = problem
        statuses = (pod.get("status") or {}).get("containerStatuses") or ()
        if any((s.get("state") or {}).get("waiting") == {"reason": reason, "message": message} for s in statuses):
            return
        waiting = [{"name": c["name"], "image": c.get("image", ""), "ready": False, "restartCount": 0,
                    "started": False, "state": {"waiting": {"reason": reason, "message": message}}}
                   for c in pod["spec"].get("containers") or ()]
        await self.set_pod_status(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                  {"phase": "Pending", "containerStatuses": waiting})
        if event:
            await self.record_event(pod, "Pod", *event, "kubelet")

    def _mount_problem(self, pod: dict[str, Any]) -> tuple | None:
        ns = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or ():
            for kind, source_key, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                source = volume.get(source_key)
                if source and not source.get("optional") and self.get(kind, ns, source.get(name_key)) is None:
                    what = f'{kind.lower()} "{source.get(name_key)}" not found'
                    return "ContainerCreating", "", (
                        "Warning", "FailedMount", f'MountVolume.SetUp failed for volume "{volume["name"]}" : {what}')
        return None

    def _pull_problem(self, pod: dict[str, Any]) -> tuple | None:
        failed_at, failures = self.pull_failed, self.image_pull_failures
        for container in pod["spec"].get("containers") or ():
            image = container.get("image", "")
            prefix = next((p for p in failures if image.startswith(p)), None)
            if prefix is None:
                continue
            uid = pod["metadata"]["uid"]
            if uid not in failed_at:
                failed_at[uid] = time.time()
            if time.time() - failed_at[uid] >= PULL_BACKOFF_SECONDS:
                return ("ImagePullBackOff", f'Back-off pulling image "{image}"',
                        ("Normal", "BackOff", f'Back-off pulling image "{image}"'))
            self.wake_at(failed_at[uid] + PULL_BACKOFF_SECONDS)
            message = failures[prefix] or (f'rpc error: code = NotFound desc = failed to pull and unpack image '
                                           f'"{image}": failed to resolve reference "{image}": {image}: not found')
            return "ErrImagePull", message, ("Warning", "Failed", f'Failed to pull image "{image}": {message}')
        return None

    def _config_problem(self, pod: dict[str, Any]) -> tuple | None:
        ns = pod["metadata"]["namespace"]
        for container in pod["spec"].get("containers") or ():
            refs = [((e.get("valueFrom") or {}).get(k), kind) for e in container.get("env") or ()
                    for k, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap"))]
            refs += [(e.get(k), kind) for e in container.get("envFrom") or ()
                     for k, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap"))]
            for ref, kind in refs:
                if not ref or ref.get("optional"):
                    continue
                obj = self.get(kind, ns, ref.get("name"))
                if obj is None:
                    message = f'{kind.lower()} "{ref.get("name")}" not found'
                elif "key" in ref and ref["key"] not in (obj.get("data") or {}) | (obj.get("stringData") or {}):
                    message = f"couldn't find key {ref['key']} in {kind} {ns}/{ref.get('name')}"
                else:
                    continue
                return "CreateContainerConfigError", message, ("Warning", "Failed", f"Error: {message}")
        return None

    # ----- pod ends, as the runner or a test reports them -----
    async def pod_running(self, namespace: str, name: str) -> None:
        ready = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()}
                 for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")]
        pod = self.get("Pod", namespace, name)
        if pod is None:
            return
        statuses = [{"name": c["name"], "image": c.get("image", ""), "ready": True, "restartCount": 0,
                     "started": True, "state": {"running": {"startedAt": timestamp()}}}
                    for c in pod["spec"].get("containers") or ()]
        await self.set_pod_status(namespace, name, {"phase": "Running", "startTime": timestamp(),
                                                    "podIP": "10.8.0.10", "hostIP": "10.128.0.2",
                                                    "conditions": ready, "containerStatuses": statuses})

    async def end_pod(self, namespace: str, name: str, exit_code: int, disrupted: bool = False,
                      reason: str | None = None) -> None:
        pod = self.get("Pod", namespace, name)
        if pod is None:
            raise KeyError(f"pod {namespace}/{name} not found")
        if phase(pod) in TERMINAL:
            return
        terminated = {"exitCode": exit_code, "finishedAt": timestamp(),
                      "reason": reason or ("Completed" if exit_code == 0 else "Error")}
        status: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 and not disrupted else "Failed",
            "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "ready": False, "restartCount": 0,
                                   "started": False, "state": {"terminated": terminated}}
                                  for c in pod["spec"].get("containers") or ()],
            "conditions": [{"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": timestamp()}
                           for t in ("Ready", "ContainersReady")]}
        if disrupted:
            status["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                                         "message": "Pod was terminated in response to imminent node shutdown.",
                                         "lastTransitionTime": timestamp()})
        await self.set_pod_status(namespace, name, status)

    async def oom_kill(self, namespace: str, name: str) -> None:
        """The container exceeded its memory limit: the kernel kills it (SIGKILL, 137, reason OOMKilled)."""
        pod = self.get("Pod", namespace, name)
        if pod is None:
            raise KeyError(f"pod {namespace}/{name} not found")
        await self.end_pod(namespace, name, 137, reason="OOMKilled")
        await self.runner.stop(self, pod)

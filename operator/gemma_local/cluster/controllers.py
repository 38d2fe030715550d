"""The emulator: the HTTP API plus its controllers (Job, TTL, garbage collector, scheduler, kubelet)."""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any, Protocol

import attrs

from .jobs import JobController
from .nodes import Kubelet
from .server import HttpApi


class PodRunner(Protocol):
    """Runs a pod somewhere (e.g. a local process) and reports its end through the cluster."""

    async def start(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None: ...

    async def stop(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None: ...

    def read_log(self, pod: dict[str, Any], start: int = 0) -> bytes | None:
        """The container's output from byte ``start`` to what it has written so far (``kubectl logs``; ``-f``
        reads on from where its last read ended); None where this runner keeps none."""


class SchedulingOnly:
    """The default runner: pods start (phase Running, Ready) and wait for the test to end them; no output."""

    def __init__(self, run: bool = True):
        self.run = run

    async def start(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        if self.run:
            await cluster.pod_running(pod["metadata"]["namespace"], pod["metadata"]["name"])

    async def stop(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        return None

    def read_log(self, pod: dict[str, Any], start: int = 0) -> bytes | None:
        return None  # no process, no output


@attrs.define(kw_only=True)
class ClusterEmulator(JobController, Kubelet, HttpApi):
    runner: Any = attrs.field(factory=SchedulingOnly)
    owned_pods: dict[str, list[dict[str, Any]]] | None = None  # owner uid -> pods, during one controller pass
    next_wake: float = float("inf")  # time.time() of the next timed controller pass
    # the Job controller's memory
    counted: dict[str, dict[str, str]] = attrs.field(factory=dict)  # job uid -> pod uid -> succeeded/failed/ignored
    finished_at: dict[str, float] = attrs.field(factory=dict)  # job uid -> time.time() of its terminal condition
    next_create: dict[str, float] = attrs.field(factory=dict)  # job uid -> when a refused pod creation is retried
    # the kubelet's memory
    started: set[str] = attrs.field(factory=set)  # pod uids handed to the runner
    pull_failed: dict[str, float] = attrs.field(factory=dict)  # pod uid -> when its image pull first failed
    image_pull_failures: dict[str, str | None] = attrs.field(factory=dict)  # image prefix -> message (None: not found)
    recorded_events: dict[tuple, tuple[str, str]] = attrs.field(factory=dict)  # (uid, reason, message) -> Event key

    async def control(self, longest_sleep: float = 5.0) -> None:
        """Run the controllers whenever something changed, or when a timer set in the last pass is due
        (TTL, image pull back-off, a pod creation retry, an active deadline)."""
        while True:
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, min(self.next_wake - time.time(), longest_sleep)))
            except TimeoutError:
                pass
            self.changed.clear()
            await self.reconcile_once()

    def wake_at(self, moment: float) -> None:
        """Ask for a controller pass at ``moment`` (time.time()) even if nothing changes until then."""
        self.next_wake = min(self.next_wake, moment)

    async def reconcile_once(self) -> None:
        self.next_wake = float("inf")
        self.owned_pods = {}
        for pod in self.find("Pod"):
            for owner in pod["metadata"].get("ownerReferences") or ():
                self.owned_pods.setdefault(owner.get("uid"), []).append(pod)
        for job in list(self.find("Job")):
            await self._guarded(self.sync_job, job)
        self.owned_pods = None
        for pod in list(self.find("Pod")):
            if pod["metadata"]["uid"] not in self.started or not pod["spec"].get("nodeName"):
                await self._guarded(self.sync_pod, pod)

    @staticmethod
    async def _guarded(step, obj: dict[str, Any]) -> None:
        try:
            await step(obj)
        except Exception:  # noqa: BLE001  keep the controllers alive; a test then sees the object stuck
            print(f"cluster: controller error on {obj['metadata'].get('name')}:\n{traceback.format_exc()}")

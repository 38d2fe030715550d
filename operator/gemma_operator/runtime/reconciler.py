"""Observe one GemmaFineTune, ask :func:`gemma_operator.reconcile.decide`, carry out the decision.

Reconciles of one object never overlap; triggers that arrive meanwhile fold into one more pass. Every action is
idempotent (deterministic names, "exists"/"not found" count as done), so a crash at any point converges.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

from gemma_operator.reconcile import Decision, Observed, decide
from gemma_operator.reconcile.decide import wanted_run
from gemma_operator.render import LABEL_FINETUNE, MANAGED_BY, names
from gemma_operator.settings import OperatorSettings

from . import metrics
from .kube import Kube
from .progress import read_progress

log = logging.getLogger("gemma_operator.reconciler")

Key = tuple[str, str]
EventPoster = Callable[[dict[str, Any], str, str, str], None]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that turns ``old`` into ``new`` at the top level (removed keys become null)."""
    patch: dict[str, Any] = {k: None for k in old if k not in new and k != "kopf"}
    patch.update({k: v for k, v in new.items() if old.get(k) != v})
    return patch


class Reconciler:
    def __init__(self, settings: OperatorSettings, kube: Kube, post_event: EventPoster):
        self.settings = settings
        self.kube = kube
        self.post_event = post_event
        self.known: set[Key] = set()
        self._running: dict[Key, asyncio.Task] = {}
        self._again: set[Key] = set()

    def forget(self, key: Key) -> None:
        self.known.discard(key)

    def trigger(self, key: Key) -> None:
        """Reconcile soon; coalesces with one already running."""
        self.known.add(key)
        if key in self._running:
            self._again.add(key)
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._loop(key))

    async def _loop(self, key: Key) -> None:
        try:
            while True:
                self._again.discard(key)
                try:
                    with metrics.RECONCILE.time():
                        await self.reconcile(*key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    metrics.ERRORS.inc()
                    log.exception("reconcile of %s/%s failed; retrying", *key)
                    await asyncio.sleep(1.0)
                    self._again.add(key)
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)

    async def periodic(self) -> None:
        """Re-read every known fine-tune at GEMMAFT_PROGRESS_INTERVAL_SECONDS (progress, missed events)."""
        while True:
            await asyncio.sleep(self.settings.progress_interval_seconds)
            for key in list(self.known):
                self.trigger(key)

    async def observe(self, namespace: str, name: str) -> Observed | None:
        body = await self.kube.get("GemmaFineTune", namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        labels = {LABEL_FINETUNE: names.label_value(name), "app.kubernetes.io/managed-by": MANAGED_BY}
        jobs = await self.kube.list("Job", namespace, labels)
        pods = await self.kube.list("Pod", namespace, {LABEL_FINETUNE: names.label_value(name)}) if jobs else []
        progress = None
        wanted = wanted_run(body)
        status = body.get("status") or {}
        if wanted and (status.get("runId") != wanted[0] or status.get("phase") not in ("Succeeded", "Failed")):
            progress = await read_progress(wanted[1])
        return Observed(body=body, jobs=jobs, pods=pods, progress=progress, now=now_rfc3339())

    async def reconcile(self, namespace: str, name: str) -> Decision | None:
        observed = await self.observe(namespace, name)
        if observed is None:
            self.forget((namespace, name))
            return None
        decision = decide(observed, self.settings)
        await self.act(observed, decision)
        return decision

    async def act(self, observed: Observed, decision: Decision) -> None:
        body = observed.body
        namespace = body["metadata"]["namespace"]
        # Create first, delete after: a crash in between leaves the newer attempt, never none.
        for obj in decision.create:
            created = await self.kube.create(obj)
            log.info("%s %s/%s", "created" if created else "found existing", obj["kind"], obj["metadata"]["name"])
        for job, patch in decision.patch_jobs:
            await self.kube.patch("Job", namespace, job, patch)
        for kind, obj_name in decision.delete:
            if await self.kube.delete(kind, namespace, obj_name):
                log.info("deleted %s/%s", kind, obj_name)
        old = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        patch = status_patch(old, decision.status)
        if patch:
            await self.kube.patch("GemmaFineTune", namespace, body["metadata"]["name"], {"status": patch}, status=True)
        # Events and metrics only once the status says so: a crash before here repeats them at most once.
        for event in decision.events:
            self.post_event(body, event.type, event.reason, event.message)
        metrics.record(decision)



"""Observe one GemmaFineTune, ask :func:`gemma_operator.reconcile.decide`, carry out the decision.

Reads: one GET of the fine-tune; its Jobs and pods come from the watch-fed :class:`~.cache.Cache`. Only runs
whose trainer is running are polled (every GEMMAFT_PROGRESS_INTERVAL_SECONDS, for progress.json); any other
fine-tune is reconciled again only when a watch event says something changed.

Reconciles of one object never overlap; triggers that arrive meanwhile fold into one more pass. Every action is
idempotent (deterministic names, "exists"/"not found" count as done), so a crash at any point converges.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from gemma_operator.reconcile import Decision, Observed, decide, stages
from gemma_operator.reconcile.staged_run import StagedRun, staged_run
from gemma_operator.render import names
from gemma_operator.settings import OperatorSettings

from . import metrics
from .cache import Cache, NamespacedName
from .events import EventPoster
from .kube import Kube, now_rfc3339
from .progress import read_progress

log = logging.getLogger("gemma_operator.reconciler")



def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that turns ``old`` into ``new`` at the top level (removed keys become null)."""
    patch: dict[str, Any] = {k: None for k in old if k not in new and k != "kopf"}
    patch.update({k: v for k, v in new.items() if old.get(k) != v})
    return patch


def fingerprint(body: Any) -> str:
    """What a watch event of a fine-tune must differ in to need a reconcile: spec (generation), annotations
    (the retry annotation), status, deletion."""
    meta = body.get("metadata") or {}
    status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    return json.dumps([meta.get("generation"), meta.get("annotations") or {}, meta.get("deletionTimestamp"), status],
                      sort_keys=True, default=str)


def label_key(key: NamespacedName) -> NamespacedName:
    return key[0], names.label_value(key[1])


class Reconciler:
    def __init__(self, settings: OperatorSettings, kube: Kube, cache: Cache | None = None,
                 events: EventPoster | None = None):
        self.settings = settings
        self.kube = kube
        self.cache = cache or Cache()
        self.events = events or EventPoster(kube)
        self.active: set[NamespacedName] = set()
        self.names: dict[NamespacedName, str] = {}  # (namespace, label value) -> fine-tune name
        self.written: dict[NamespacedName, str] = {}  # fingerprint of the fine-tune as our last status write left it
        self._running: dict[NamespacedName, asyncio.Task] = {}
        self._again: set[NamespacedName] = set()

    # ----- triggers -----
    def forget(self, key: NamespacedName) -> None:
        self.active.discard(key)
        self.written.pop(key, None)
        self.names.pop(label_key(key), None)
        self.cache.forget(key, label_key(key))

    def finetune_changed(self, key: NamespacedName, body: Any) -> None:
        """A watch event of the fine-tune; the echo of our own status write needs no reconcile."""
        if self.written.get(key) != fingerprint(body):
            self.trigger(key)

    def pod_changed(self, namespace: str, label_value: str) -> None:
        name = self.names.get((namespace, label_value))
        if name:
            self.trigger((namespace, name))

    def trigger(self, key: NamespacedName) -> None:
        """Reconcile soon; coalesces with one already running."""
        self.names[label_key(key)] = key[1]
        if key in self._running:
            self._again.add(key)
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._loop(key))

    async def _loop(self, key: NamespacedName) -> None:
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

    async def poll_active(self) -> None:
        """Re-read the runs whose trainer runs (progress.json); nothing else is polled: watches tell the rest."""
        while True:
            await asyncio.sleep(self.settings.progress_interval_seconds)
            for key in list(self.active):
                self.trigger(key)

    # ----- one reconcile -----
    async def observe(self, namespace: str, name: str) -> Observed | None:
        body = await self.kube.get("GemmaFineTune", namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        key = (namespace, name)
        progress = teacher_progress = None
        ref = stages.source_name(body)
        source = self.cache.finetune((namespace, ref)) if ref else None
        staged = staged_run(body, source)  # once per reconcile: decide follows it
        status = body.get("status") or {}
        jobs, gone_jobs, awaited = self.cache.jobs(key), self.cache.gone("Job", key), self.cache.awaited(key)
        pods_key = label_key(key)
        pods, gone_pods = self.cache.pods(pods_key), self.cache.gone("Pod", pods_key)
        if isinstance(staged, StagedRun):
            run_folder, teacher_folder = staged.progress_folders(status, jobs + gone_jobs, pods + gone_pods, awaited)
            if run_folder:
                progress = await read_progress(run_folder)
            if teacher_folder:
                teacher_progress = await read_progress(teacher_folder)
        return Observed(body=body, jobs=jobs, pods=pods, job_problems=self.cache.job_problems(namespace, jobs),
                        gone_jobs=gone_jobs, gone_pods=gone_pods, awaited=awaited, progress=progress, source=source,
                        teacher_progress=teacher_progress, now=now_rfc3339(), staged=staged)

    async def reconcile(self, namespace: str, name: str) -> Decision | None:
        observed = await self.observe(namespace, name)
        if observed is None:
            self.forget((namespace, name))
            return None
        decision = decide(observed, self.settings)
        await self.act(observed, decision)
        if decision.active:
            self.active.add((namespace, name))
        else:
            self.active.discard((namespace, name))
        return decision

    async def act(self, observed: Observed, decision: Decision) -> None:
        body = observed.body
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        status = decision.wire_status
        # 1. Create (a new attempt's objects), 2. Events, 3. record it all in status, 4. patch and delete.
        for obj in decision.create:
            created = await self.kube.create(obj)
            log.info("%s %s/%s", "created" if created is not None else "found existing", obj["kind"],
                     obj["metadata"]["name"])
            record = status.get("job") or {}
            if obj["kind"] == "Job" and created and record.get("name") == obj["metadata"]["name"]:
                record["uid"] = (created.get("metadata") or {}).get("uid")
                self.cache.created_job((namespace, name), obj["metadata"]["name"])
        # The transition's Events before the status write: a repeat of this reconcile (after a crash or a failed
        # write) makes the same Event names, so each is posted once and none is lost.
        for index, event in enumerate(decision.events):
            await self.events.post(body, event.type, event.reason, event.message, index)
        old = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        patch = status_patch(old, status)
        if patch:
            # Set before the call: the watch event of this write may arrive before its answer.
            self.written[(namespace, name)] = fingerprint({**body, "status": status})
            try:
                await self.kube.patch("GemmaFineTune", namespace, name, {"status": patch}, status=True)
            except Exception:
                self.written.pop((namespace, name), None)
                raise
        metrics.record(decision)  # once the status says so
        for obj in decision.apply:
            if await self.kube.create(obj) is None:
                meta = obj["metadata"]
                await self.kube.patch(obj["kind"], namespace, meta["name"], {"metadata": {"labels": meta["labels"]},
                                                                              "spec": obj["spec"]})
            log.info("applied %s/%s", obj["kind"], obj["metadata"]["name"])
        for job, job_patch in decision.patch_jobs:
            await self.kube.patch("Job", namespace, job, job_patch)
        for kind, obj_name in decision.delete:
            if await self.kube.delete(kind, namespace, obj_name):
                log.info("deleted %s/%s", kind, obj_name)

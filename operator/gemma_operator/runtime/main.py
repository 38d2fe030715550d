"""kopf handlers: they only register and delegate (to :mod:`.reconciler`, :mod:`.cache`, :mod:`.metrics`).

Only indexes, ``on.event`` handlers and an operator-level poller are used, so kopf stores nothing in the objects:
no finalizers, no annotations; the operator writes a GemmaFineTune's status subresource and nothing else of it.
Jobs and pods are read from the indexes (watch-fed), never listed by a reconcile.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf
from gemma_api import GROUP, KIND, PLURAL, VERSION

from gemma_operator.reconcile import stages
from gemma_operator.render import LABEL_FINETUNE, MANAGED_BY
from gemma_operator.settings import OperatorSettings

from . import metrics
from .cache import Cache, pod_summary
from .kube import Kube
from .reconciler import Reconciler

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
_state: dict[str, Any] = {}


def _finetune_of(meta: Any, labels: Any) -> str | None:
    # The owner reference has the full name; the label may be a shortened one (names.label_value).
    owners = [o["name"] for o in meta.get("ownerReferences") or () if o.get("kind") == KIND]
    return owners[0] if owners else labels.get(LABEL_FINETUNE)


# ----- the watch-fed cache: kopf starts no resource handler before these indexes are filled -----
@kopf.index("batch", "v1", "jobs", labels=MANAGED)
def gemmaft_jobs(namespace: str, name: str, meta: Any, labels: Any, body: Any, **_: Any) -> Any:
    owner = _finetune_of(meta, labels)
    if owner and "cache" in _state:
        _state["cache"].saw_job(namespace, name, owner)
    return {(namespace, owner): dict(body)} if owner else None


@kopf.index("", "v1", "pods", labels=MANAGED)
def gemmaft_pods(namespace: str, labels: Any, body: Any, **_: Any) -> Any:
    value = labels.get(LABEL_FINETUNE)
    return {(namespace, value): pod_summary(body)} if value else None


@kopf.index(GROUP, VERSION, PLURAL)
def gemmaft_finetunes(namespace: str, name: str, body: Any, **_: Any) -> Any:
    """Every GemmaFineTune's spec and status, for distillations whose teacher is ``fromFineTune``."""
    return {(namespace, name): {"metadata": {"name": name, "namespace": namespace},
                                "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {})}}


@kopf.index(GROUP, VERSION, PLURAL)
def gemmaft_teacher_refs(namespace: str, name: str, body: Any, **_: Any) -> Any:
    """(namespace, fromFineTune) -> the fine-tunes that wait for it."""
    ref = stages.source_name(dict(body))
    return {(namespace, ref): name} if ref else None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    ours: OperatorSettings = _state["settings"]
    settings.posting.level = logging.WARNING  # log lines become Events only when they are warnings
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.batching.error_delays = (1, 2, 5, 10, 30)
    metrics.serve(ours.metrics_port)
    cache = Cache()
    _state["cache"] = cache
    reconciler = Reconciler(ours, Kube(), cache)
    _state["reconciler"] = reconciler
    _state["poller"] = asyncio.create_task(reconciler.poll_active())
    logger.info("gemma-finetune-operator started: %s", ours)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    task = _state.pop("poller", None)
    if task:
        task.cancel()


@kopf.on.probe(id="reconciler")
def alive(**_: Any) -> bool:
    return "reconciler" in _state


@kopf.on.event(GROUP, VERSION, PLURAL)
async def finetune_event(type: str | None, namespace: str, name: str, body: Any, gemmaft_jobs: kopf.Index,
                         gemmaft_pods: kopf.Index, gemmaft_finetunes: kopf.Index, gemmaft_teacher_refs: kopf.Index,
                         **_: Any) -> None:
    reconciler: Reconciler = _state["reconciler"]
    if not reconciler.cache.ready:
        reconciler.cache.attach(gemmaft_jobs, gemmaft_pods, gemmaft_finetunes, gemmaft_teacher_refs)
    for dependent in reconciler.cache.dependents((namespace, name)):  # distillations waiting for this one
        reconciler.trigger((namespace, dependent))
    if type == "DELETED":  # owner references remove the run's objects; storage is never touched
        reconciler.forget((namespace, name))
    else:
        reconciler.finetune_changed((namespace, name), body)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(type: str | None, namespace: str, labels: Any, meta: Any, body: Any, **_: Any) -> None:
    name = _finetune_of(meta, labels)
    if not name:
        return
    if type == "DELETED":
        _state["cache"].bury("Job", (namespace, name), body)
    _state["reconciler"].trigger((namespace, name))


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(type: str | None, namespace: str, labels: Any, body: Any, **_: Any) -> None:
    value = labels.get(LABEL_FINETUNE)
    if not value:
        return
    if type == "DELETED":
        _state["cache"].bury("Pod", (namespace, value), body)
    _state["reconciler"].pod_changed(namespace, value)


def _job_failed_create(body: Any, **_: Any) -> bool:
    involved = body.get("involvedObject") or {}
    return involved.get("kind") == "Job" and body.get("reason") == "FailedCreate"


@kopf.on.event("", "v1", "events", when=_job_failed_create)
async def job_failed_create(type: str | None, namespace: str, body: Any, **_: Any) -> None:
    # Why a Job has no pods (a missing ServiceAccount, quota, an admission webhook) is only told in Events.
    if type == "DELETED":
        return
    owner = _state["cache"].failed_create(namespace, body["involvedObject"].get("name"), body.get("message") or "")
    if owner:
        _state["reconciler"].trigger((namespace, owner))


def run_operator(args: argparse.Namespace) -> int:
    settings = OperatorSettings.from_env()
    namespaces = tuple(getattr(args, "namespace", None) or ()) or settings.namespaces
    _state["settings"] = settings
    kopf.configure(
        verbose=bool(getattr(args, "verbose", False)),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(standalone=True, namespaces=list(namespaces), clusterwide=not namespaces, liveness_endpoint=liveness)
    return 0

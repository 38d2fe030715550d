"""kopf handlers: they only register and delegate (to :mod:`.reconciler`, :mod:`.metrics`, :mod:`.kube`).

Only ``on.event`` handlers and an operator-level loop are used, so kopf stores nothing in the objects: no
finalizers, no annotations; the operator writes a GemmaFineTune's status subresource and nothing else of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf

from gemma_operator.api import GROUP, KIND, PLURAL, VERSION
from gemma_operator.render import LABEL_FINETUNE, MANAGED_BY
from gemma_operator.settings import OperatorSettings

from . import metrics
from .kube import Kube
from .reconciler import Reconciler

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
_state: dict[str, Any] = {}


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message[:1024])


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
    reconciler = Reconciler(ours, Kube(), _post_event)
    _state["reconciler"] = reconciler
    _state["periodic"] = asyncio.create_task(reconciler.periodic())
    logger.info("gemma-finetune-operator started: %s", ours)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    task = _state.pop("periodic", None)
    if task:
        task.cancel()


@kopf.on.probe(id="reconciler")
def alive(**_: Any) -> bool:
    return "reconciler" in _state


@kopf.on.event(GROUP, VERSION, PLURAL)
async def finetune_event(type: str | None, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":  # owner references remove the run's objects; storage is never touched
        _state["reconciler"].forget((namespace, name))
    else:
        _state["reconciler"].trigger((namespace, name))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(namespace: str, labels: dict[str, str], meta: Any, **_: Any) -> None:
    # The owner reference has the full name; the label may be a shortened one (names.label_value).
    owners = [o["name"] for o in meta.get("ownerReferences") or () if o.get("kind") == KIND]
    name = owners[0] if owners else labels.get(LABEL_FINETUNE)
    if name:
        _state["reconciler"].trigger((namespace, name))


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

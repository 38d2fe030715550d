"""Kubernetes Events posted by the operator's own client: from any task, never tied to a kopf handler context.

Each Event of a transition has a deterministic name: a hash of the fine-tune's uid, the resourceVersion the
decision was made from and the Event itself. The reconciler posts them before the status write that records
the transition; a reconcile repeated after a crash or a failed write makes the same names, and "already
exists" counts as posted. An Event the API refuses (after the client's own retries) fails the reconcile before
the status moves on, so it is retried with it. So an Event is never lost and posted at most once per transition.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

from .kube import Kube, now_rfc3339

log = logging.getLogger("gemma_operator.events")

COMPONENT = "gemma-finetune-operator"
MAX_MESSAGE = 1024


def event_name(body: dict[str, Any], type_: str, reason: str, message: str, index: int = 0) -> str:
    """``<object>.<hash>``: equal for the same transition of the same object version, distinct otherwise."""
    meta = body.get("metadata") or {}
    seed = "\0".join(str(x) for x in (meta.get("uid"), meta.get("resourceVersion"), type_, reason, message, index))
    return f"{str(meta.get('name', 'gemmafinetune'))[:230]}.{hashlib.sha256(seed.encode()).hexdigest()[:16]}"


def event_object(body: dict[str, Any], type_: str, reason: str, message: str, index: int = 0) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = now_rfc3339()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name(body, type_, reason, message, index), "namespace": namespace},
        "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta.get("name"),
                           "namespace": namespace, "uid": meta.get("uid")},
        "type": type_, "reason": reason, "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT}, "reportingComponent": f"gemmaft.dev/{COMPONENT}",
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


class EventPoster:
    def __init__(self, kube: Kube):
        self.kube = kube

    async def post(self, body: dict[str, Any], type_: str, reason: str, message: str, index: int = 0) -> None:
        """Create the Event (``index``: its position among the transition's Events); "exists" is success."""
        event = event_object(body, type_, reason, message, index)
        if await self.kube.create(event) is None:
            log.info("event %s already posted", event["metadata"]["name"])

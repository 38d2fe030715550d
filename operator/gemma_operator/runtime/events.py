"""Kubernetes Events posted by the operator's own client: from any task, never tied to a kopf handler context.

The reconciler posts a transition's Events right after the status write that records the transition, so each
is posted at most once; an Event the API refuses (after the client's retries) is retried in the background.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from typing import Any

from .kube import Kube

log = logging.getLogger("gemma_operator.events")

COMPONENT = "gemma-finetune-operator"
MAX_MESSAGE = 1024


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_object(body: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = _now()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'gemmafinetune')}.", "namespace": namespace},
        "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta.get("name"),
                           "namespace": namespace, "uid": meta.get("uid")},
        "type": type_, "reason": reason, "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT}, "reportingComponent": f"gemmaft.dev/{COMPONENT}",
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


class EventPoster:
    def __init__(self, kube: Kube, retries: int = 10, delay: float = 2.0):
        self.kube = kube
        self.retries = retries
        self.delay = delay
        self._background: set[asyncio.Task] = set()

    async def post(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        event = event_object(body, type_, reason, message)
        try:
            await self.kube.create(event)
        except Exception as err:  # noqa: BLE001  the API refused it even after the client's own retries
            log.warning("event %s for %s not posted yet (%s); retrying in the background", reason,
                        event["involvedObject"]["name"], err)
            task = asyncio.get_running_loop().create_task(self._retry(event))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _retry(self, event: dict[str, Any]) -> None:
        for attempt in range(self.retries):
            await asyncio.sleep(self.delay * (attempt + 1))
            try:
                await self.kube.create(event)
                return
            except Exception as err:  # noqa: BLE001
                log.warning("event %s still not posted: %s", event["reason"], err)
        log.error("event %s for %s dropped after %d tries", event["reason"], event["involvedObject"]["name"],
                  self.retries)

    async def drain(self) -> None:
        """Wait for Events being retried in the background."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

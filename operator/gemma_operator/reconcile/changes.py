"""Edits that do not start a new run: runPolicy reaches the live Job where Kubernetes allows it; a pod template
cannot change in a created Job, so ``spec.pod`` takes effect on the next attempt. ``status.updates`` says which."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .model import Event
from .pods import JobView

ANN_TEMPLATE = "gemmaft.dev/pod-template"
# Mutable in a created Job (batch/v1 validation); suspend is handled on its own (Kueue may own it).
MUTABLE_JOB_FIELDS = ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
AFTER_FINISH = ("ttlSecondsAfterFinished",)


def template_hash(job: dict[str, Any]) -> str:
    """A short hash of a rendered Job's pod template (rendered for attempt 0, so equal across attempts)."""
    return hashlib.sha256(json.dumps(job["spec"]["template"], sort_keys=True).encode()).hexdigest()[:16]


def job_patch(desired: dict[str, Any], job: JobView) -> dict[str, Any]:
    """The runPolicy fields of ``desired`` that differ on the live ``job`` and may still change."""
    want = desired["spec"]
    patch = {}
    for key in MUTABLE_JOB_FIELDS:
        if want.get(key) != job.spec.get(key) and (not job.finished or key in AFTER_FINISH):
            patch[key] = want.get(key)  # None removes the field (merge patch)
    return patch


def job_updates(desired: dict[str, Any], wanted_hash: str, job: JobView, prev_updates: list[dict[str, Any]],
         same_generation: bool) -> tuple[dict[str, Any], list[dict[str, Any]], list[Event]]:
    """(Job merge patch of its spec, status.updates, events) for the live ``job``."""
    updates = [u for u in prev_updates if same_generation and u.get("appliedTo") == "Job"]
    events = []
    patch = job_patch(desired, job) if job.live else {}
    if patch:
        fields = ", ".join(sorted(patch))
        updates = [u for u in updates if u.get("field") != "spec.runPolicy"]
        updates.append({"field": "spec.runPolicy", "appliedTo": "Job", "message": f"{fields} set on Job {job.name}"})
        events.append(Event("Normal", "Updated", f"spec.runPolicy {fields} applied to the running Job {job.name}"))
    if job.annotations.get(ANN_TEMPLATE, wanted_hash) != wanted_hash:
        updates.append({"field": "spec.pod", "appliedTo": "NextAttempt",
                        "message": f"a created Job's pod template cannot change: Job {job.name} keeps its pods; "
                                   "the next attempt uses the new spec.pod (a slice restart, or a retry with "
                                   "the gemmaft.dev/retry annotation)"})
    return ({"spec": patch} if patch else {}), updates, events

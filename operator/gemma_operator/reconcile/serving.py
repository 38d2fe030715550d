"""Which run is served, and what that asks of the vLLM Deployment: pure decisions over the status.

The gate lives in one place, :func:`passed_gate`: a run is servable when it Succeeded and, where it carries an
evaluation result (an ``Evaluated`` condition on the current run, an ``evaluation`` record on a run of
``status.runs``), that result passed. A spec with an evaluation stage (``spec.evaluation``) requires a passing
result; without one, Succeeded is enough. The newest servable run is served; the ``gemmaft.dev/serve-run``
annotation pins an older one (rollback).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gemma_api import GemmaFineTune

from gemma_operator.render import ServedRun, names, render_serving
from gemma_operator.settings import OperatorSettings

from .model import Event

SERVE_RUN_ANNOTATION = "gemmaft.dev/serve-run"
ANN_SERVING_TEMPLATE = "gemmaft.dev/serving-template"
EVALUATED = "Evaluated"


def evaluation_required(ft: GemmaFineTune) -> bool:
    """Whether the spec has an evaluation stage whose gate a run must pass (issue 22's ``spec.evaluation``)."""
    return ft.spec.evaluation is not None


def evaluation_result(record: dict[str, Any], current: dict[str, Any]) -> bool | None:
    """A run's gate result: True passed, False failed, None not evaluated (yet). The current run's comes from its
    ``Evaluated`` condition, an earlier run's from ``status.runs[].evaluation.passed``."""
    if record.get("runId") == current.get("runId"):
        cond = next((c for c in current.get("conditions") or [] if c.get("type") == EVALUATED), None)
        if cond is not None:
            return {"True": True, "False": False}.get(cond.get("status"))
    passed = (record.get("evaluation") or {}).get("passed")
    return passed if isinstance(passed, bool) else None


def passed_gate(record: dict[str, Any], current: dict[str, Any], required: bool) -> bool:
    """THE gate: Succeeded, and not failed its evaluation (and passed it, where the spec requires one)."""
    if record.get("phase") != "Succeeded":
        return False
    result = evaluation_result(record, current)
    return result is True if required else result is not False


@dataclass(frozen=True)
class Selection:
    run_id: str | None
    run_uri: str | None
    pinned: bool
    message: str


def select_run(status: dict[str, Any], required: bool, pin: str | None) -> Selection:
    """The run to serve: the pinned one when it is servable, else the newest servable one in ``status.runs``."""
    runs = status.get("runs") or []
    servable = [r for r in runs if passed_gate(r, status, required)]
    if pin:
        record = next((r for r in runs if r.get("runId") == pin), None)
        if record is not None and record in servable:
            return Selection(pin, record.get("runUri"), True, f"run {pin} pinned by {SERVE_RUN_ANNOTATION}")
        why = "is not in status.runs" if record is None else "has not passed its gate (Succeeded and evaluated)"
        fallback = servable[0] if servable else {}
        return Selection(fallback.get("runId"), fallback.get("runUri"), False,
                         f"{SERVE_RUN_ANNOTATION}={pin}: run {pin} {why}; serving the newest servable run instead")
    if not servable:
        return Selection(None, None, False, "no run has passed its gate yet")
    newest = servable[0]
    return Selection(newest["runId"], newest.get("runUri"), False, f"run {newest['runId']} is the newest that passed")


def serving_hash(deployment: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(deployment["spec"], sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServingDecision:
    """What spec.serving asks of the serving objects and of ``status.serving``."""

    apply: list[dict[str, Any]]
    """Objects to create, or merge-patch when they exist."""
    delete: list[tuple[str, str]]
    status: dict[str, Any] | None
    """``status.serving``; None removes it."""
    events: list[Event]


def _pin(body: dict[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(SERVE_RUN_ANNOTATION) or None


def decide_serving(ft: GemmaFineTune, body: dict[str, Any], status: dict[str, Any], prev: dict[str, Any],
                   policy: OperatorSettings, owner: dict[str, Any]) -> ServingDecision:
    """What ``status`` (the new one, its runs filed) asks of the serving objects, against ``prev.serving``."""
    was = prev.get("serving")
    name = ft.metadata.name
    object_name = names.serving_name(name)
    if ft.spec.serving is None:
        gone = [("Deployment", object_name), ("Service", object_name)] if was else []
        return ServingDecision([], gone, None, [])
    chosen = select_run(status, evaluation_required(ft), _pin(body))
    if chosen.run_id is None:
        return ServingDecision([], [], {**(was or {}), "message": chosen.message}, [])
    namespace = body["metadata"].get("namespace") or "default"
    objects = render_serving(ft, policy.render_settings(), namespace, ServedRun(chosen.run_id, chosen.run_uri))
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [owner]
    template = serving_hash(objects[0])
    new = {"runId": chosen.run_id, "runUri": chosen.run_uri, "deployment": object_name, "service": object_name,
           "pinned": chosen.pinned, "templateHash": template, "message": chosen.message}
    if was and was.get("templateHash") == template:
        return ServingDecision([], [], {**was, **new}, [])
    events = []
    if not was or was.get("runId") != chosen.run_id:
        before = f" (was run {was['runId']})" if was and was.get("runId") else ""
        events.append(Event("Normal", "Serving", f"Deployment {object_name} serves run {chosen.run_id}{before}: "
                                                 f"{chosen.message}"))
    return ServingDecision(objects, [], new, events)

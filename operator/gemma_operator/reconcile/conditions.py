"""Conditions per the Kubernetes API conventions and kstatus (what Flux, Argo CD and ``kubectl wait`` read).

* ``Ready``: the fine-tune is where it should be: Running, Suspended or Succeeded. A Failed run is not Ready.
* ``Reconciling``: the operator is still bringing it there (Job created, pods scheduling, a slice restarting).
* ``Stalled``: it cannot get there without a person (failed run, refused spec, image that cannot be pulled).
* ``Running``, ``Suspended``, ``Succeeded``, ``Failed``: the run's own phase, one of them True.

The transition time moves only when a condition's status changes.
"""

from __future__ import annotations

from typing import Any

PHASE_TYPES = ("Running", "Suspended", "Succeeded", "Failed")
READY_PHASES = ("Running", "Suspended", "Succeeded")


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, now: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """A copy of ``conditions`` with ``type_`` set; other types are kept in their order."""
    new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if generation is not None:
        new["observedGeneration"] = generation
    out: list[dict[str, Any]] = []
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        if cond.get("status") == status:
            new["lastTransitionTime"] = cond.get("lastTransitionTime", now)
        out.append(new)
        new = None
    if new is not None:
        out.append(new)
    return out


def kstatus_conditions(prev: list[dict[str, Any]], phase: str, reason: str, message: str, stalled: bool, now: str,
                       generation: int | None) -> list[dict[str, Any]]:
    """Every condition for a fine-tune in ``phase``; ``stalled``: it waits for a person (kstatus Stalled)."""
    stalled = stalled or phase == "Failed"
    ready = phase in READY_PHASES and not stalled
    reconciling = not ready and not stalled

    def flag(on: bool) -> tuple[str, str, str]:
        return ("True", reason, message) if on else ("False", reason, "")

    conds = set_condition(prev, "Ready", "True" if ready else "False", reason, message, now, generation)
    conds = set_condition(conds, "Reconciling", *flag(reconciling), now, generation)
    conds = set_condition(conds, "Stalled", *flag(stalled), now, generation)
    for type_ in PHASE_TYPES:
        conds = set_condition(conds, type_, *flag(phase == type_), now, generation)
    return conds


def phase_status(prev: dict[str, Any], phase: str, reason: str, message: str, stalled: bool, now: str,
                 generation: int | None) -> dict[str, Any]:
    """``prev`` with phase, message, observedGeneration and every condition set (a decision that starts no run)."""
    status = {**prev, "phase": phase, "message": message, "observedGeneration": generation}
    status["conditions"] = kstatus_conditions(prev.get("conditions") or [], phase, reason, message, stalled, now,
                                              generation)
    return status

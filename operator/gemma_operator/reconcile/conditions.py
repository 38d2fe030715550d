"""Conditions per the Kubernetes API conventions: the transition time moves only when the status changes."""

from __future__ import annotations

from typing import Any


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, now: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """A copy of ``conditions`` with ``type_`` set; other types are kept in their order."""
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != status
        new = {"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": now if changed else cond.get("lastTransitionTime", now)}
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    if not found:
        new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    return out

"""Server-side printing (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``): what ``kubectl get`` shows.

GemmaFineTune gets the CRD's ``additionalPrinterColumns`` (read from the generated CRD; simple dotted
``jsonPath`` only), Pods and Jobs the standard columns of Kubernetes 1.32's printers (their common cases),
Events theirs, every other kind ``Name`` and ``Age``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gemma_api import KIND

from .. import crd_schema
from .jobs import conditions_of
from .store import now, parse_timestamp, seconds_since

Row = list[Any]


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: 45s, 3m20s, 15m, 5h10m, 3d4h."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 120:
        return f"{max(s, 0)}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    return human_duration(seconds_since(stamp))


def column(name: str, kind: str = "string", priority: int = 0, description: str = "", fmt: str = "") -> dict:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


NAME = column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE = column("Age", description="CreationTimestamp is a timestamp representing the server time when this "
                                "object was created.")


def _path(obj: Any, json_path: str) -> Any:
    for part in json_path.strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def finetune_table() -> tuple[list[dict], Callable[[dict], Row]]:
    printer = crd_schema.crd_version().get("additionalPrinterColumns") or ()
    columns = [NAME] + [column(c["name"], c["type"], c.get("priority", 0), c.get("description", ""))
                        for c in printer]

    def row(obj: dict) -> Row:
        cells: Row = [obj["metadata"]["name"]]
        for c in printer:
            value = _path(obj, c["jsonPath"])
            cells.append(age(value) if c["type"] == "date" and value else value)
        return cells
    return columns, row


def _pod_status(pod: dict) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for cs in reversed(status.get("containerStatuses") or ()):
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            term = state["terminated"]
            reason = term.get("reason") or f"ExitCode:{term.get('exitCode')}"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def pod_table() -> tuple[list[dict], Callable[[dict], Row]]:
    columns = [NAME, column("Ready"), column("Status"), column("Restarts", "string"), AGE,
               column("IP", priority=1), column("Node", priority=1), column("Nominated Node", priority=1),
               column("Readiness Gates", priority=1)]

    def row(pod: dict) -> Row:
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses") or ()
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        return [pod["metadata"]["name"], f"{ready}/{len(pod['spec'].get('containers') or ())}", _pod_status(pod),
                str(restarts), age(pod["metadata"].get("creationTimestamp")), status.get("podIP") or "<none>",
                pod["spec"].get("nodeName") or "<none>", "<none>", "<none>"]
    return columns, row


def _job_status(job: dict) -> str:
    conditions = conditions_of(job)
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if kind in conditions:
            return kind
    return "Running"


def _job_duration(job: dict) -> str:
    status = job.get("status") or {}
    if not status.get("startTime"):
        return ""
    end = parse_timestamp(status["completionTime"]) if status.get("completionTime") else now()
    return human_duration((end - parse_timestamp(status["startTime"])).total_seconds())


def job_table() -> tuple[list[dict], Callable[[dict], Row]]:
    columns = [NAME, column("Status"), column("Completions"), column("Duration"), AGE,
               column("Containers", priority=1), column("Images", priority=1), column("Selector", priority=1)]

    def row(job: dict) -> Row:
        spec, status = job.get("spec") or {}, job.get("status") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or ()
        selector = ",".join(f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items())
        return [job["metadata"]["name"], _job_status(job),
                f"{status.get('succeeded') or 0}/{spec.get('completions') or 1}", _job_duration(job),
                age(job["metadata"].get("creationTimestamp")), ",".join(c["name"] for c in containers),
                ",".join(c.get("image", "") for c in containers), selector or "<none>"]
    return columns, row


def event_table() -> tuple[list[dict], Callable[[dict], Row]]:
    columns = [column("Last Seen"), column("Type"), column("Reason"), column("Object"), column("Message")]

    def row(event: dict) -> Row:
        involved = event.get("involvedObject") or {}
        seen = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
        return [age(seen[:19] + "Z" if seen else None), event.get("type", ""), event.get("reason", ""),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}", event.get("message", "")]
    return columns, row


def default_table() -> tuple[list[dict], Callable[[dict], Row]]:
    return [NAME, AGE], lambda obj: [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


PRINTERS = {KIND: finetune_table, "Pod": pod_table, "Job": job_table, "Event": event_table}


def wants_table(accept: str | None) -> bool:
    return "as=Table" in (accept or "")


def table(kind: str, objects: list[dict], version: str, include: str = "Metadata") -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects``; ``include``: Metadata (the default), Object or None."""
    columns, row = PRINTERS.get(kind, default_table)()
    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj)}
        if include == "Object":
            entry["object"] = obj
        elif include != "None":
            entry["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": obj.get("metadata") or {}}
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": version},
            "columnDefinitions": columns, "rows": rows}



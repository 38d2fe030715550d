"""Helpers of the operator tests: the real operator in a subprocess, kubectl, waiting."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from gemma_api import GemmaFineTuneStatus
from gemma_local.cluster import kubectl_flags
from gemma_local.processes import OperatorProcess as Operator  # noqa: F401 (re-exported)
from gemma_local.processes import free_port  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition", interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, TypeError, IndexError, AttributeError) as err:
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def kubectl_command(kubeconfig: Path, *args: str) -> list[str]:
    """kubectl against the server of ``kubeconfig``, with a discovery cache of that server's own."""
    return [KUBECTL, *kubectl_flags(kubeconfig), *args]


def kubectl(kubeconfig: Path, *args: str, input_obj: Any = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = kubectl_command(kubeconfig, *args)
    text = yaml.safe_dump(input_obj) if input_obj is not None else None
    result = subprocess.run(cmd, check=False, input=text, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {result.stderr}")
    return result


def apply(kubeconfig: Path, obj: dict[str, Any]) -> None:
    kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", input_obj=obj)


def active_pods(cluster, job: str) -> list[dict[str, Any]]:
    """The Job's pods that are not finished (Pending or Running)."""
    return [p for p in cluster.pods_of(job) if p["status"]["phase"] in ("Pending", "Running")]


def write_progress(bucket, prefix: str, **fields: Any) -> None:
    body = {"state": "training", "step": 0, "updatedAt": "2025-01-01T00:00:00Z", **fields}
    bucket.blob(f"{prefix}/progress.json").upload_from_string(json.dumps(body), content_type="application/json")


def status_of(cluster, name: str) -> dict[str, Any]:
    """The fine-tune's status, checked against the status schema the CRD is generated from."""
    status = (cluster.get("GemmaFineTune", name) or {}).get("status") or {}
    GemmaFineTuneStatus.model_validate({k: v for k, v in status.items() if k != "kopf"})
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})

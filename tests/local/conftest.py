"""Fixtures of the local cluster's own tests: the cluster, a kubeconfig for stock kubectl, a Job manifest."""

from __future__ import annotations

import copy
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from gemma_local.cluster import LocalCluster


@pytest.fixture
def cluster():
    with LocalCluster(service_accounts=("trainer",)) as local:
        yield local


@pytest.fixture
def kubeconfig(cluster, tmp_path):
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


def job(name: str = "train", image: str = "registry.example/trainer:1", **spec: Any) -> dict[str, Any]:
    """A batch/v1 Job like the ones the operator renders (restartPolicy Never), with ``spec`` overrides."""
    pod_spec = {"restartPolicy": "Never", "serviceAccountName": "trainer",
                "containers": [{"name": "trainer", "image": image}]}
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}
    body["spec"].update(copy.deepcopy(spec))
    return body


def api(cluster, method: str, path: str, body=None, content_type: str = "application/merge-patch+json"):
    """One raw API request: (HTTP status, the JSON answer)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{cluster.url}{path}", data=data, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def running_pods(cluster, job_name: str) -> list[dict[str, Any]]:
    return [p for p in cluster.pods_of(job_name) if p["status"].get("phase") == "Running"]


def job_conditions(cluster, name: str) -> list[tuple[str, str]]:
    found = cluster.get("Job", name) or {}
    return [(c["type"], c["reason"]) for c in (found.get("status") or {}).get("conditions") or ()
            if c["status"] == "True"]


class Watch:
    """A raw watch stream (``?watch=true``) read on a thread: the events exactly as a client receives them."""

    def __init__(self, url: str, path: str, **params: str):
        query = "&".join(f"{k}={v}" for k, v in {"watch": "true", "timeoutSeconds": "15", **params}.items())
        self.response = urllib.request.urlopen(f"{url}{path}?{query}", timeout=30)
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.response:
            if line.strip():
                self.events.append(json.loads(line))

    def seen(self) -> list[tuple[str, str]]:
        return [(e["type"], e["object"]["metadata"]["name"]) for e in self.events]


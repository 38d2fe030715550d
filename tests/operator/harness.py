"""Helpers of the operator tests: the real operator in a subprocess, kubectl, waiting."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Operator:
    """``python -m gemma_operator.runtime`` (what ``gemmaft operator`` runs), against a kubeconfig."""

    def __init__(self, kubeconfig: Path, env: dict[str, str] | None = None, log_dir: Path | None = None):
        self.kubeconfig = kubeconfig
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **os.environ, "KUBECONFIG": str(kubeconfig), "GEMMAFT_LOG_FORMAT": "plain",
            "GEMMAFT_HEALTH_PORT": str(self.health_port), "GEMMAFT_METRICS_PORT": str(self.metrics_port),
            "GEMMAFT_PROGRESS_INTERVAL_SECONDS": "0.5", "GEMMAFT_NAMESPACES": "",
            "PYTHONPATH": str(REPO / "operator"), **(env or {}),
        }
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="gemmaft-op-"))
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Operator:
        self.starts += 1
        with open(self.log_dir / f"operator-{self.starts}.log", "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gemma_operator.runtime"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, the way a node loss or an OOM kill ends it."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("operator-*.log")))

    def metrics(self) -> str:
        import urllib.request

        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def healthy(self) -> bool:
        import urllib.request

        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status == 200
        except OSError:
            return False


def kubectl(kubeconfig: Path, *args: str, input_obj: Any = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [KUBECTL, "--kubeconfig", str(kubeconfig), *args]
    text = yaml.safe_dump(input_obj) if input_obj is not None else None
    result = subprocess.run(cmd, check=False, input=text, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {result.stderr}")
    return result


def apply(kubeconfig: Path, obj: dict[str, Any]) -> None:
    kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", input_obj=obj)


def write_progress(bucket, prefix: str, **fields: Any) -> None:
    body = {"state": "training", "step": 0, "updatedAt": "2025-01-01T00:00:00Z", **fields}
    bucket.blob(f"{prefix}/progress.json").upload_from_string(json.dumps(body), content_type="application/json")

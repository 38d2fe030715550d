"""The operator as a separate process, exactly as its Deployment runs it (``gemmaft operator``).

Shared by ``gemmaft demo`` and the operator tests, which kill and restart it at chosen points.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    """``gemmaft operator`` against a kubeconfig: start, stop, kill, restart; logs, metrics, health."""

    def __init__(self, kubeconfig: Path, env: dict[str, str] | None = None, log_dir: Path | None = None):
        self.kubeconfig = kubeconfig
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **os.environ, "KUBECONFIG": str(kubeconfig), "GEMMAFT_LOG_FORMAT": "plain",
            "GEMMAFT_HEALTH_PORT": str(self.health_port), "GEMMAFT_METRICS_PORT": str(self.metrics_port),
            "GEMMAFT_PROGRESS_INTERVAL_SECONDS": "0.5", "GEMMAFT_NAMESPACES": "", **(env or {}),
        }
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="gemmaft-op-"))
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> OperatorProcess:
        self.starts += 1
        with open(self.log_dir / f"operator-{self.starts}.log", "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gemmaft.cli", "operator"], env=self.env,
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
        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def healthy(self) -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status == 200
        except OSError:
            return False

"""The operator as a separate process, exactly as its Deployment runs it (``gemmaft operator``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    """``gemmaft operator`` against a kubeconfig, with its log in a file; start, kill, restart."""

    def __init__(self, kubeconfig: Path, log: Path, **env: str):
        self.log = log
        self.env = {
            **os.environ, "KUBECONFIG": str(kubeconfig), "GEMMAFT_LOG_FORMAT": "plain",
            "GEMMAFT_HEALTH_PORT": str(free_port()), "GEMMAFT_METRICS_PORT": str(free_port()), **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OperatorProcess":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gemma_operator.cli", "operator"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

"""Run trainer pods as local processes: the container's command, the pod's environment, its mounted config.

A kubelet in miniature for ``gemmaft demo``: the ConfigMap volume is written to a folder and the command's
config path points there; the process's exit code becomes the container's, and a preemption is a SIGTERM
followed by the ``DisruptionTarget`` condition a real node shutdown sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gemma_api.run import CONFIG_DIR

from .cluster import ClusterEmulator


class ProcessRunner:
    """A ``PodRunner`` that executes each pod's first container as a local process."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.env = dict(env or {})
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.preempted: set[str] = set()
        self.logs: dict[str, Path] = {}

    def _mount_config(self, cluster: ClusterEmulator, pod: dict[str, Any], folder: Path) -> None:
        ns = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or ():
            if "configMap" in volume:
                cm = cluster.get("ConfigMap", ns, volume["configMap"]["name"]) or {}
                for key, text in (cm.get("data") or {}).items():
                    (folder / key).write_text(text)

    def _command(self, container: dict[str, Any], folder: Path) -> list[str]:
        command = [*container.get("command", ()), *container.get("args", ())]
        if command and command[0] == "gemmaft":  # the image's console script, from this interpreter
            command = [sys.executable, "-m", "gemmaft.cli", *command[1:]]
        return [arg.replace(CONFIG_DIR, str(folder)) for arg in command]

    def _environment(self, container: dict[str, Any], scratch: Path) -> dict[str, str]:
        """The container's plain env values, the runner's (the node's model cache), and ``scratch`` as the pod's
        /tmp: the trainer pod mounts a fresh emptyDir there, so no two pods share their run's work folder."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
        env.update({e["name"]: e.get("value", "") for e in container.get("env") or () if "value" in e})
        env.update(self.env)
        env["HOME"] = env["HF_HOME"] = str(self.workdir)
        env["TMPDIR"] = str(scratch)
        return env

    async def start(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name, container = meta["name"], pod["spec"]["containers"][0]
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        self._mount_config(cluster, pod, folder)
        scratch = folder / "tmp"
        scratch.mkdir(exist_ok=True)
        log = self.logs[name] = folder / "trainer.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *self._command(container, folder), env=self._environment(container, scratch), stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        await cluster.pod_running(meta["namespace"], name)
        asyncio.get_running_loop().create_task(self._wait(cluster, meta["namespace"], name, proc))

    async def _wait(self, cluster: ClusterEmulator, namespace: str, name: str, proc) -> None:
        code = await proc.wait()
        self.processes.pop(name, None)
        if code < 0:  # killed by a signal: report it as a shell would
            code = 128 - code
        with contextlib.suppress(KeyError):  # the pod may be gone already (Job deleted or suspended)
            await cluster.end_pod(namespace, name, code, disrupted=name in self.preempted)

    def read_log(self, pod: dict[str, Any], start: int = 0) -> bytes | None:
        """The container's output from byte ``start`` on (``kubectl logs``); None for a pod this runner never ran."""
        log = self.logs.get(pod["metadata"]["name"])
        if log is None or not log.exists():
            return None
        with log.open("rb") as out:
            out.seek(start)
            return out.read()

    async def stop(self, cluster: ClusterEmulator, pod: dict[str, Any]) -> None:
        self.terminate(pod["metadata"]["name"])

    def terminate(self, name: str) -> None:
        proc = self.processes.get(name)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    def preempt(self, name: str) -> None:
        """What a spot node's shutdown does to a pod: SIGTERM now, DisruptionTarget when it has exited."""
        self.preempted.add(name)
        self.terminate(name)

    async def kill_all(self) -> None:
        for proc in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)

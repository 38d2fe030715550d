"""Operator at scale: 1,000 GemmaFineTunes created at once against the kmock emulator with the project's cluster
layer (``gemma_operator.local.cluster.LocalCluster``), the real operator in a subprocess.

Measured side by side in one run:

* raw: a plain aiohttp client creates N GemmaFineTunes (64 requests in flight) on a fresh emulator with no
  operator: the emulator's own create rate, the limit for everything below;
* operator: the same client creates N GemmaFineTunes on a second fresh emulator while ``python -m
  gemma_operator.runtime`` (what ``gemmaft operator`` runs) watches it. For each fine-tune we take the time its
  create returned ("applied") and the first time we see its status.phase Pending with its Job present (polled
  inside the emulator every 0.2 s). Rate: N / (last Pending - first applied); latency p50 / p99.
* API writes: every POST / PUT / PATCH / DELETE the emulator recorded other than our own N creates, divided by
  N, counted when the last fine-tune reached Pending and again 3 s later (by method and resource).
* memory: VmHWM (peak RSS) of the operator process from /proc/PID/status.

Pods are never scheduled (``SchedulingOnly(run=False)``), so the fine-tunes rest in Pending. By default the
cluster layer's Job controller is stopped (``--job-controller`` keeps it): it re-syncs every Job on every change
and scans every pod for each Job (O(jobs x pods) per 0.1 s tick), which at a few hundred Jobs takes all of this
process's CPU and would measure the emulator instead of the operator. Reaching Pending needs only the Job object. Targets: operator
rate >= half the raw rate, <= 4 API writes per fine-tune to reach Pending, peak RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import copy
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, final_json, percentile, say, target_line

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def finetune(name: str, bucket: str) -> dict:
    return {
        "apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "model": "gemma-2-2b-it",
            "dataset": {"trainUri": "gs://bench-data/support/train.jsonl", "format": "messages"},
            "method": "lora", "lora": {"r": 16, "alpha": 32},
            "training": {"epochs": 2, "batchSize": 2, "gradientAccumulationSteps": 8, "maxSeqLength": 1024},
            "accelerator": {"type": "nvidia-tesla-t4", "count": 1, "spot": True},
            "output": {"uri": f"gs://{bucket}/{name}", "checkpointEverySteps": 100},
        },
    }


async def create_all(url: str, objects: list[dict], concurrency: int = 64) -> tuple[dict[str, float], float]:
    """POST every object with ``concurrency`` requests in flight; (name -> time its create returned, wall s)."""
    import aiohttp

    path = f"{url}/apis/gemmaft.dev/v1alpha1/namespaces/default/gemmafinetunes"
    applied: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(obj):
            async with sem:
                async with session.post(path, json=obj) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(f"create {obj['metadata']['name']}: HTTP {response.status} "
                                           f"{(await response.text())[:200]}")
                    await response.read()
                applied[obj["metadata"]["name"]] = time.perf_counter()

        started = time.perf_counter()
        await asyncio.gather(*(one(o) for o in objects))
        return applied, time.perf_counter() - started


def write_counts(cluster, since: int) -> collections.Counter:
    """Writes recorded by the emulator after request number ``since``, by 'METHOD resource[/sub]'."""
    from gemma_operator.local.cluster import RESOURCES, _method

    names = {v: k for k, v in RESOURCES.items()}

    def count():
        out = collections.Counter()
        for r in cluster.emulator._requests[since:]:
            method = _method(r)
            if method not in WRITE_METHODS:
                continue
            kind = names.get(r.resource, str(r.resource))
            sub = f"/{r.subresource}" if getattr(r, "subresource", None) else ""
            out[f"{method} {kind}{sub}"] += 1
        return out

    return cluster._sync(count)


def pending_now(cluster) -> dict[str, bool]:
    """name -> True for each GemmaFineTune whose status.phase is Pending (or later) and whose Job exists."""
    def look():
        jobs = {j["metadata"]["name"] for j in cluster.emulator.find("Job", "default")}
        out = {}
        for ft in cluster.emulator.find("GemmaFineTune", "default"):
            status = ft.get("status") or {}
            if status.get("phase") in ("Pending", "Running") and status.get("jobName") in jobs:
                out[ft["metadata"]["name"]] = True
        return out
    return cluster._sync(look)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def start_operator(kubeconfig: Path, gcs_url: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    health = free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "GEMMAFT_LOG_FORMAT": "plain",
           "GEMMAFT_HEALTH_PORT": str(health), "GEMMAFT_METRICS_PORT": str(free_port()),
           "GEMMAFT_NAMESPACES": "", "STORAGE_EMULATOR_HOST": gcs_url, "PYTHONPATH": str(REPO / "operator")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gemma_operator.runtime"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, health


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def healthy(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
    except OSError:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every Pending")
    parser.add_argument("--job-controller", action="store_true",
                        help="keep the cluster layer's Job controller running (it dominates CPU at scale)")
    args = parser.parse_args(argv)
    n = args.n

    from gemma_operator.local.cluster import LocalCluster, SchedulingOnly
    from gemma_operator.local.gcs import local_gcs

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    bucket = "bench-runs"
    objects = [finetune(f"ft-{i:04d}", bucket) for i in range(n)]
    figures: dict = {"n": n, "job_controller": args.job_controller}
    with local_gcs() as gcs:
        gcs.bucket(bucket)

        # 1. The limit: the emulator alone.
        with LocalCluster(runner=SchedulingOnly(run=False)) as cluster:
            _, raw_s = asyncio.run(create_all(cluster.url, copy.deepcopy(objects)))
        raw_rate = n / raw_s
        say(f"raw: {n} GemmaFineTunes created by a plain async client in {raw_s:.1f} s: {raw_rate:.0f} creates/s")
        figures["raw"] = {"seconds": raw_s, "rate": raw_rate}

        # 2. The operator.
        with LocalCluster(runner=SchedulingOnly(run=False)) as cluster:
            if not args.job_controller and cluster._controller is not None:
                cluster._loop.call_soon_threadsafe(cluster._controller.cancel)
            kubeconfig = cluster.write_kubeconfig(work / "kubeconfig")
            proc, health = start_operator(kubeconfig, gcs.url, work / "operator.log")
            try:
                wait_until(lambda: healthy(health) or proc.poll() is not None, 120, "operator health")
                if proc.poll() is not None:
                    raise RuntimeError(f"operator exited with {proc.returncode}: "
                                       f"{(work / 'operator.log').read_text()[-2000:]}")
                # Warm up: one fine-tune to Pending, so the watches are up before the clock starts.
                asyncio.run(create_all(cluster.url, [finetune("warmup", bucket)], 1))
                wait_until(lambda: pending_now(cluster).get("warmup"), 120, "warm-up fine-tune Pending")
                time.sleep(1.0)
                since = cluster._sync(lambda: len(cluster.emulator._requests))
                rss_idle = proc_status(proc.pid)
                say(f"operator up (warm-up fine-tune Pending); RSS {rss_idle['VmRSS'] / 1e6:.0f} MB")

                op_cpu0, own_cpu0 = cpu_seconds(proc.pid), time.process_time()
                applied, create_s = asyncio.run(create_all(cluster.url, copy.deepcopy(objects)))
                first_applied = min(applied.values())
                seen: dict[str, float] = {}
                deadline = time.perf_counter() + args.timeout
                poll_costs = []
                while len(seen) < n + 1 and time.perf_counter() < deadline:
                    now = time.perf_counter()
                    for name in pending_now(cluster):
                        seen.setdefault(name, now)
                    poll_costs.append(time.perf_counter() - now)
                    if proc.poll() is not None:
                        raise RuntimeError(f"operator exited with {proc.returncode}")
                    # Polling runs on the emulator's loop: keep it under ~10% of that loop's time.
                    time.sleep(max(0.2, 10 * poll_costs[-1]))
                done = [k for k in seen if k != "warmup"]
                op_cpu, own_cpu = cpu_seconds(proc.pid) - op_cpu0, time.process_time() - own_cpu0
                writes_at_pending = write_counts(cluster, since)
                time.sleep(3.0)
                writes_settled = write_counts(cluster, since)
                mem = proc_status(proc.pid)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

        latencies = [seen[k] - applied[k] for k in done]
        last = max(seen[k] for k in done) if done else float("nan")
        op_rate = len(done) / (last - first_applied) if done else 0.0
        for counts in (writes_at_pending, writes_settled):
            counts["POST GemmaFineTune"] -= n  # our own creates
            for key in [k for k, v in counts.items() if v <= 0]:
                del counts[key]
        per_ft = sum(writes_at_pending.values()) / n
        per_ft_settled = sum(writes_settled.values()) / n
        say(f"operator: {n} created in {create_s:.1f} s while it ran; {len(done)} of {n} reached Pending with their "
            f"Job within {args.timeout:.0f} s; last one {last - first_applied:.1f} s after the first create: "
            f"{op_rate:.0f} fine-tunes/s")
        if latencies:
            say(f"  latency applied -> Pending: p50 {percentile(latencies, 50):.2f} s, p99 "
                f"{percentile(latencies, 99):.2f} s, max {max(latencies):.2f} s")
        say(f"  API writes per fine-tune when the last reached Pending: {per_ft:.2f} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(writes_at_pending.items()))})")
        say(f"  ... 3 s later: {per_ft_settled:.2f} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(writes_settled.items()))})")
        say(f"  polling for Pending took {1000 * percentile(poll_costs, 50):.0f} ms per look (median)")
        say(f"  CPU used meanwhile: operator {op_cpu:.1f} s ({1000 * op_cpu / max(len(done), 1):.0f} ms per fine-tune);"
            f" this process (emulator + cluster layer + client + polling) {own_cpu:.1f} s")
        say(f"  operator RSS: idle {rss_idle['VmRSS'] / 1e6:.0f} MB, peak (VmHWM) {mem['VmHWM'] / 1e6:.0f} MB")
        figures["operator"] = {
            "reached_pending": len(done), "create_s": create_s, "seconds_to_last_pending": last - first_applied,
            "rate": op_rate, "latency_p50_s": percentile(latencies, 50) if latencies else None,
            "latency_p99_s": percentile(latencies, 99) if latencies else None,
            "writes_per_finetune": per_ft, "writes_per_finetune_settled": per_ft_settled,
            "writes": dict(writes_at_pending), "writes_settled": dict(writes_settled),
            "operator_cpu_s": op_cpu, "emulator_process_cpu_s": own_cpu,
            "rss_idle_bytes": rss_idle["VmRSS"], "peak_rss_bytes": mem["VmHWM"],
        }
    say("targets:")
    targets = {
        "rate_vs_raw": target_line("operator rate / raw create rate", op_rate / raw_rate, 0.5, True, "x"),
        "writes_per_finetune": target_line("API writes per fine-tune to Pending", per_ft, 4.0, False),
        "peak_rss_mb": target_line("operator peak RSS", mem["VmHWM"] / 1e6, 200.0, False, " MB"),
        "all_pending": {"value": len(done), "target": n, "met": len(done) == n},
    }
    say("  (emulator, client and operator share this machine's 2 loaded cores: rates are relative only)")
    final_json("operator_scale", {**figures, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())

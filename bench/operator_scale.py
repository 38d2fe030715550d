"""Operator at scale: N GemmaFineTunes created at once against the kmock emulator with the project's cluster
layer (``gemma_local.cluster.LocalCluster``), the real operator in a subprocess. Default: N = 100 and
N = 1,000, one fresh cluster and operator each.

What is counted, from the requests the emulator recorded (``emulator._requests``) whose User-Agent is the
operator's (kopf's watches ``kopf/...`` and the operator's client ``gemmaft-operator/...``):

* API requests per reconcile, by verb (list, get, create, patch, delete; watches apart), while the N fine-tunes
  go from created to Pending and settle; reconciles are the operator's own ``gemmaft_reconcile_seconds_count``.
  Target: 0 LIST, <= 1 GET per reconcile.
* writes (create, patch, delete) per fine-tune to Pending. Target: <= 4.
* then every Job is marked Complete (as the Job controller would) and every fine-tune reaches Succeeded; with
  all N finished, the operator's requests during an idle window, per minute. Target: 0 beyond the open watches.
* operator CPU (utime + stime from /proc) per fine-tune, from the first create to all Succeeded, at N = 1,000
  divided by that at N = 100. Target: <= 1.2 (O(1) work per fine-tune).

Pods are never scheduled and the cluster layer's Job controller is stopped (it re-syncs every Job on every
change and would measure the emulator, see README.md); reaching Pending needs only the Job object, and finishing
is written into the Job status by this script. Emulator, client and operator share this machine's cores:
rates are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, final_json, percentile, say, target_line

OPERATOR_AGENTS = ("kopf/", "gemmaft-operator/")
WRITES = ("create", "patch", "delete")  # API verbs, after VERB
VERB = {"fetch": "get", "update": "patch"}  # kmock's action names -> the API verbs


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


async def create_all(url: str, objects: list[dict], concurrency: int = 64) -> dict[str, float]:
    """POST every object with ``concurrency`` requests in flight; name -> time its create returned."""
    import aiohttp

    path = f"{url}/apis/gemmaft.dev/v1alpha1/namespaces/default/gemmafinetunes"
    applied: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(obj):
            async with sem, session.post(path, json=obj) as response:
                if response.status not in (200, 201):
                    raise RuntimeError(f"create {obj['metadata']['name']}: HTTP {response.status}")
                await response.read()
            applied[obj["metadata"]["name"]] = time.perf_counter()

        await asyncio.gather(*(one(o) for o in objects))
    return applied


def on_loop(cluster, fn, timeout: float = 600.0):
    """Run ``fn`` on the emulator's event loop (it owns the objects); generous timeout: that loop is busy."""
    async def run():
        return fn()
    return cluster.call(run(), timeout=timeout)


def operator_requests(cluster, since: int, by_resource: bool = False) -> collections.Counter:
    """The operator's requests after request number ``since``, by verb (watches included as 'watch')."""
    def count():
        out = collections.Counter()
        for r in cluster.emulator._requests[since:]:
            if str(r.headers.get("User-Agent", "")).startswith(OPERATOR_AGENTS):
                action = str(getattr(r.action, "value", r.action) or "other").lower()
                verb = VERB.get(action, action)
                if by_resource:
                    plural = getattr(r.resource, "plural", None) or "?"
                    verb = f"{verb} {plural}{'/' + r.subresource if r.subresource else ''}"
                out[verb] += 1
        return out
    return on_loop(cluster, count)


def by_verb(by_resource: collections.Counter) -> collections.Counter:
    """``operator_requests(..., by_resource=True)`` summed per verb: the same counts without a second pass."""
    out = collections.Counter()
    for key, count in by_resource.items():
        out[key.split(" ", 1)[0]] += count
    return out


def request_mark(cluster) -> int:
    return on_loop(cluster, lambda: len(cluster.emulator._requests))


def phases(cluster, want: tuple[str, ...]) -> set[str]:
    """Names of fine-tunes whose phase is in ``want`` and whose recorded Job exists (or is not needed)."""
    def look():
        jobs = {j["metadata"]["name"] for j in cluster.emulator.find("Job", "default")}
        return {ft["metadata"]["name"] for ft in cluster.emulator.find("GemmaFineTune", "default")
                if (ft.get("status") or {}).get("phase") in want
                and ((ft.get("status") or {}).get("jobName") in jobs or "Succeeded" in want)}
    return on_loop(cluster, look)


def settle(cluster, metrics_port: int, quiet: float, timeout: float) -> float:
    """Seconds until the operator made no request but its watches and finished no reconcile for ``quiet``
    seconds (its backlog done: a reconcile may still be waiting on a progress.json read after its GET)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        mark, done = request_mark(cluster), reconciles(metrics_port)
        time.sleep(quiet)
        if not [k for k in operator_requests(cluster, mark) if k != "watch"] and reconciles(metrics_port) == done:
            return time.perf_counter() - started - quiet
    raise TimeoutError(f"the operator kept working for {timeout} s")


def complete_every_job(cluster) -> int:
    async def run():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        done = {"conditions": [{"type": "Complete", "status": "True", "reason": "Completed",
                                "lastTransitionTime": stamp}], "completionTime": stamp, "succeeded": 1}
        jobs = cluster.emulator.find("Job", "default")
        for job in jobs:
            await cluster.emulator.update("Job", "default", job["metadata"]["name"], {"status": done})
        return len(jobs)
    return cluster.call(run(), timeout=600)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def start_operator(kubeconfig: Path, gcs_url: str, log_path: Path) -> tuple[subprocess.Popen, int, int]:
    from gemma_local.processes import free_port

    health, metrics = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "GEMMAFT_LOG_FORMAT": "plain",
           "GEMMAFT_HEALTH_PORT": str(health), "GEMMAFT_METRICS_PORT": str(metrics), "GEMMAFT_NAMESPACES": "",
           "STORAGE_EMULATOR_HOST": gcs_url, "PYTHONPATH": str(REPO / "operator")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gemmaft.cli", "operator"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, health, metrics


def reconciles(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    line = next(x for x in text.splitlines() if x.startswith("gemmaft_reconcile_seconds_count"))
    return float(line.split()[-1])


def wait_until(check, timeout: float, what: str, proc=None, interval: float = 0.2):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"operator exited with {proc.returncode} while waiting for {what}")
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def healthy(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
    except OSError:
        return False


def wait_for_all(cluster, names: set[str], want: tuple[str, ...], timeout: float, proc) -> dict[str, float]:
    """name -> first time seen in ``want``; polls inside the emulator at most ~10% of its loop's time."""
    seen: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while names - seen.keys() and time.perf_counter() < deadline:
        now = time.perf_counter()
        for name in phases(cluster, want) & names:
            seen.setdefault(name, now)
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited with {proc.returncode}")
        time.sleep(max(0.2, 10 * (time.perf_counter() - now)))
    return seen


def measure(n: int, gcs, bucket: str, work: Path, timeout: float, idle_seconds: float) -> dict:
    from gemma_local.cluster import LocalCluster, SchedulingOnly

    objects = [finetune(f"ft-{i:04d}", bucket) for i in range(n)]
    names = {o["metadata"]["name"] for o in objects}
    # The trainer's ServiceAccount exists, as the chart creates it (else the cluster layer refuses the pods).
    with LocalCluster(runner=SchedulingOnly(run=False), service_accounts=("gemma-trainer",)) as cluster:
        if cluster._controller is not None:
            cluster._loop.call_soon_threadsafe(cluster._controller.cancel)
        proc, health, metrics_port = start_operator(cluster.write_kubeconfig(work / f"kubeconfig-{n}"), gcs.url,
                                                    work / f"operator-{n}.log")
        try:
            wait_until(lambda: healthy(health), 120, "operator health", proc)
            asyncio.run(create_all(cluster.url, [finetune("warmup", bucket)], 1))
            wait_until(lambda: "warmup" in phases(cluster, ("Pending",)), 120, "warm-up Pending", proc)
            time.sleep(1.0)
            mark, rec0, cpu0 = request_mark(cluster), reconciles(metrics_port), cpu_seconds(proc.pid)
            started = time.perf_counter()
            applied = asyncio.run(create_all(cluster.url, objects))
            pending = wait_for_all(cluster, names, ("Pending",), timeout, proc)
            settled_pending = settle(cluster, metrics_port, 3.0, timeout)  # the Jobs' own watch events: counted too
            to_pending_detail = operator_requests(cluster, mark, by_resource=True)
            to_pending = by_verb(to_pending_detail)
            rec_pending = reconciles(metrics_port) - rec0
            cpu_pending = cpu_seconds(proc.pid) - cpu0
            say(f"N={n}: {len(pending)} of {n} Pending, last {max(pending.values(), default=started) - started:.1f} s "
                f"after the first create; operator CPU {cpu_pending:.1f} s")
            mark_finish, rec1 = request_mark(cluster), reconciles(metrics_port)
            complete_every_job(cluster)
            succeeded = wait_for_all(cluster, names | {"warmup"}, ("Succeeded",), timeout, proc)
            settled_finish = settle(cluster, metrics_port, 3.0, timeout)
            finishing = operator_requests(cluster, mark_finish)
            rec_finish = reconciles(metrics_port) - rec1
            cpu_total = cpu_seconds(proc.pid) - cpu0
            mark_idle, cpu_idle0 = request_mark(cluster), cpu_seconds(proc.pid)
            time.sleep(idle_seconds)
            idle = operator_requests(cluster, mark_idle)
            cpu_idle = cpu_seconds(proc.pid) - cpu_idle0
            rss = peak_rss(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    latencies = [pending[k] - applied[k] for k in pending]
    non_watch = {k: v for k, v in to_pending.items() if k != "watch"}
    return {
        "n": n, "reached_pending": len(pending), "reached_succeeded": len(succeeded) - ("warmup" in succeeded),
        "seconds_to_last_pending": (max(pending.values()) - started) if pending else None,
        "latency_p50_s": percentile(latencies, 50) if latencies else None,
        "latency_p99_s": percentile(latencies, 99) if latencies else None,
        "requests_to_pending": dict(to_pending), "reconciles_to_pending": rec_pending,
        "requests_to_pending_by_resource": dict(sorted(to_pending_detail.items())),
        "per_reconcile": {k: v / max(rec_pending, 1) for k, v in sorted(non_watch.items())},
        "writes_per_finetune": sum(to_pending[k] for k in WRITES) / n,
        "requests_to_succeeded": dict(finishing), "reconciles_to_succeeded": rec_finish,
        "settle_after_pending_s": settled_pending, "settle_after_succeeded_s": settled_finish,
        "idle_requests": dict(idle), "idle_seconds": idle_seconds,
        "idle_requests_per_minute": sum(v for k, v in idle.items() if k != "watch") * 60.0 / idle_seconds,
        "idle_watch_requests_per_minute": idle.get("watch", 0) * 60.0 / idle_seconds,
        "idle_cpu_s": cpu_idle,
        "operator_cpu_s": cpu_total, "operator_cpu_ms_per_finetune": 1000 * cpu_total / n,
        "operator_cpu_to_pending_s": cpu_pending, "peak_rss_bytes": rss,
    }


def report(r: dict) -> None:
    n = r["n"]
    say(f"N={n}:")
    say(f"  {r['reached_pending']} Pending (last {r['seconds_to_last_pending']:.1f} s after the first create; latency "
        f"p50 {r['latency_p50_s']:.2f} s, p99 {r['latency_p99_s']:.2f} s); {r['reached_succeeded']} Succeeded")
    say(f"  requests to Pending, by verb: {r['requests_to_pending']} over {r['reconciles_to_pending']:.0f} reconciles")
    say("  per reconcile: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_reconcile"].items()))
    say(f"  writes per fine-tune to Pending: {r['writes_per_finetune']:.2f} "
        f"({', '.join(f'{k}: {v}' for k, v in r['requests_to_pending_by_resource'].items())})")
    say(f"  requests to Succeeded, by verb: {r['requests_to_succeeded']} over {r['reconciles_to_succeeded']:.0f} "
        "reconciles")
    say(f"  the operator went quiet {r['settle_after_pending_s']:.1f} s after the last Pending and "
        f"{r['settle_after_succeeded_s']:.1f} s after the last Succeeded")
    say(f"  idle {r['idle_seconds']:.0f} s with all {n} finished: {r['idle_requests']} -> "
        f"{r['idle_requests_per_minute']:.1f} requests/min beyond watches "
        f"({r['idle_watch_requests_per_minute']:.1f} watch (re)connects/min); operator CPU {r['idle_cpu_s']:.2f} s")
    say(f"  operator CPU first create -> all Succeeded: {r['operator_cpu_s']:.1f} s = "
        f"{r['operator_cpu_ms_per_finetune']:.1f} ms per fine-tune; peak RSS {r['peak_rss_bytes'] / 1e6:.0f} MB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, nargs="+", default=[100, 1000], help="fine-tune counts, one run each")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all Pending / Succeeded")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle window with every run finished")
    args = parser.parse_args(argv)

    from gemma_local.gcs import local_gcs

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    results = []
    with local_gcs() as gcs:
        gcs.bucket("bench-runs")
        for n in args.n:
            results.append(measure(n, gcs, "bench-runs", work, args.timeout, args.idle_seconds))
            report(results[-1])
    say("targets:")
    targets = {}
    for r in results:
        per = r["per_reconcile"]
        targets[f"n{r['n']}_list_per_reconcile"] = target_line(f"N={r['n']} LIST per reconcile",
                                                               per.get("list", 0.0), 0.0, False)
        targets[f"n{r['n']}_get_per_reconcile"] = target_line(f"N={r['n']} GET per reconcile", per.get("get", 0.0),
                                                              1.0, False)
        targets[f"n{r['n']}_writes_per_finetune"] = target_line(f"N={r['n']} writes per fine-tune to Pending",
                                                                r["writes_per_finetune"], 4.0, False)
        targets[f"n{r['n']}_idle_requests_per_minute"] = target_line(
            f"N={r['n']} requests per idle minute, all finished", r["idle_requests_per_minute"], 0.0, False)
    if len(results) >= 2:
        small, large = results[0], results[-1]
        ratio = large["operator_cpu_ms_per_finetune"] / small["operator_cpu_ms_per_finetune"]
        say(f"  operator CPU per fine-tune, N={large['n']} / N={small['n']}: {ratio:.2f}")
        targets["cpu_per_finetune_ratio"] = target_line(
            f"operator CPU per fine-tune N={large['n']} / N={small['n']}", ratio, 1.2, False, "x")
    say("  (emulator, client and operator share this machine's cores: times are relative only)")
    final_json("operator_scale", {"runs": results, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())

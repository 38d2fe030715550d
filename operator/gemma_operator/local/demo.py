"""``gemmaft demo``: a real fine-tune through the real operator on this machine, no cluster and no cloud.

Local GCS (fake-gcs-server) and Kubernetes API (kmock emulator with the cluster layer the tests use); the
operator as its own process; trainer pods as local processes; a tiny Gemma 2 that visibly learns
``examples/data``; one spot preemption on the way; exit 0 only when the run Succeeded and the adapter loads.
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
from pathlib import Path
from typing import Any

import yaml

from gemma_operator.render.settings import RenderSettings

from .cluster import LocalCluster
from .gcs import local_gcs
from .pods import ProcessRunner
from .processes import OperatorProcess

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
DATA = REPO / "examples" / "data"
BUCKET = "gemmaft-demo"


def say(text: str) -> None:
    print(text, flush=True)


def prepare_bucket(gcs, workdir: Path) -> None:
    """Tiny Gemma 2 and the example data into the local bucket, where the quickstart's URIs point."""
    from gemma_trainer.storage import open_store
    from gemma_trainer.tiny import dataset_texts, save_tiny_model

    gcs.bucket(BUCKET)
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines() if line.strip()]
    model_dir = save_tiny_model(workdir / "tiny-gemma2", texts=dataset_texts(rows))
    store = open_store(f"gs://{BUCKET}")
    store.upload_dir(model_dir, "models/tiny-gemma2")
    for name in ("train.jsonl", "eval.jsonl"):
        store.write_bytes(f"data/{name}", (DATA / name).read_bytes())


def apply(cluster: LocalCluster, kubeconfig: Path, manifest: dict[str, Any]) -> str:
    """``kubectl apply`` when kubectl is installed, else a plain create through the API."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "--validate=false", "-f", "-"], check=False,
                             input=yaml.safe_dump(manifest), capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {out.stderr.strip()}")
        return out.stdout.strip()
    cluster.call(cluster.emulator.put("GemmaFineTune", manifest))
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


def summary(ft: dict[str, Any], seconds: float, resumed: str | None) -> str:
    status = ft.get("status") or {}
    progress, outputs = status.get("progress") or {}, status.get("outputs") or {}
    rows = [
        ("phase", status.get("phase")), ("run", status.get("runId")),
        ("steps", f"{progress.get('step')}/{progress.get('totalSteps')}"),
        ("final loss", progress.get("loss")), ("eval loss", progress.get("evalLoss")),
        ("preemptions", (status.get("restarts") or {}).get("preemptions")), ("resumed from", resumed),
        ("adapter", outputs.get("adapterUri")), ("loss plot", outputs.get("lossPlotUri")),
        ("metrics", outputs.get("metricsUri")), ("wall time", f"{seconds:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def adapter_loads(adapter_uri: str, workdir: Path) -> str:
    """Download the adapter and load it on the tiny base with peft; returns what was loaded."""
    import torch
    from gemma_trainer.storage import open_store
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    local = workdir / "adapter-check"
    open_store(adapter_uri).download_dir("", local)
    base = AutoModelForCausalLM.from_pretrained(workdir / "tiny-gemma2")
    ids = torch.tensor([[2, 10, 20, 30]])
    with torch.no_grad():
        before = base(ids).logits
        model = PeftModel.from_pretrained(base, str(local))
        after = model(ids).logits
    if torch.allclose(before, after):
        raise RuntimeError("the adapter loaded but changes nothing")
    return f"peft loaded {sum(p.numel() for n, p in model.named_parameters() if 'lora_' in n):,} adapter weights"


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
    manifest = yaml.safe_load(QUICKSTART.read_text())
    if args.steps:
        manifest["spec"]["training"]["maxSteps"] = args.steps
    steps = manifest["spec"]["training"]["maxSteps"]
    name = manifest["metadata"]["name"]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemmaft-demo-")))
        say("1/5 local GCS (fake-gcs-server) and Kubernetes API (kmock emulator + cluster layer)")
        gcs = stack.enter_context(local_gcs())
        runner = ProcessRunner(workdir / "pods", env={"STORAGE_EMULATOR_HOST": gcs.url})
        cluster = stack.enter_context(LocalCluster(runner=runner, service_accounts=(RenderSettings.service_account,)))
        stack.callback(lambda: cluster.call(runner.kill_all()))
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
        say(f"2/5 tiny Gemma 2 and examples/data uploaded to gs://{BUCKET}")
        prepare_bucket(gcs, workdir)
        say("3/5 operator started (gemmaft operator)")
        operator = OperatorProcess(kubeconfig, env={"STORAGE_EMULATOR_HOST": gcs.url}, log_dir=workdir)
        stack.callback(operator.stop)
        operator.start()
        say(f"4/5 kubectl apply -f examples/quickstart.yaml  ({steps} steps, LoRA on CPU)")
        say("  " + apply(cluster, kubeconfig, manifest))
        ft = watch(cluster, runner, name, preempt_at=max(2, steps // 3), timeout=args.timeout)
        status = ft.get("status") or {}
        say("5/5 summary")
        say(summary(ft, time.monotonic() - started, resumed_from(runner)))
        ok = status.get("phase") == "Succeeded"
        if not ok:
            say(f"the run did not succeed: {status.get('message')}")
            say("--- operator log\n" + operator.logs()[-4000:])
            for log in runner.logs.values():
                say(f"--- {log}\n" + log.read_text()[-3000:])
            return 1
        adapter = (status.get("outputs") or {}).get("adapterUri")
        say(f"  adapter check: {adapter_loads(adapter, workdir)}")
        preemptions = (status.get("restarts") or {}).get("preemptions") or 0
        if preemptions < 1:
            say("the preemption was not reported in status.restarts.preemptions")
            return 1
        if args.keep:
            say(f"\nThe local API stays up (Ctrl-C to stop); the operator keeps running. Try:\n"
                f"  export KUBECONFIG={kubeconfig}\n"
                f"  kubectl get gft -w;  kubectl describe gft {name};  kubectl get jobs,pods;  "
                f"kubectl logs job/{status.get('jobName') or name}")
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/`timeout` clean up like Ctrl-C
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    return 0

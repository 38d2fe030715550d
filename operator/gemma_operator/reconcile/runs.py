"""Runs: which run the spec asks for, the history of earlier runs, outputs and progress, retries."""

from __future__ import annotations

import copy
from typing import Any

from gemma_api import GemmaFineTune
from gemma_api.methods import training_method
from gemma_api.run import ADAPTER_DIR, LOSS_PLOT_FILE, MERGED_DIR, METRICS_FILE, RunProgress
from gemma_api.status import RunRecord

from .model import Event
from .staged_run import TERMINAL

RETRY_ANNOTATION = "gemmaft.dev/retry"
RUN_FIELDS = ("progress", "lastCheckpoint", "outputs", "startTime", "completionTime", "jobName", "job", "message",
              "updates", "inputs", "evaluation")


def begin(prev: dict[str, Any], rid: str) -> tuple[dict[str, Any], list[Event], bool]:
    """(status to build on, events, new run?): a new run files the previous one into ``status.runs``."""
    status = copy.deepcopy(prev)
    if prev.get("runId") == rid:
        return status, [], False
    events = []
    prev_rid = prev.get("runId")
    if prev_rid:
        was = prev.get("phase")
        for rec in status.get("runs") or []:
            if rec.get("runId") == prev_rid:
                rec.update(phase=was if was in TERMINAL else "Suspended",
                           reason=rec.get("reason") if was in TERMINAL else "Superseded",
                           completionTime=prev.get("completionTime"))
        where = (prev.get("outputs") or {}).get("runUri", "storage")
        events.append(Event("Normal", "NewRun", f"training fields changed: run {rid} replaces run {prev_rid} "
                                                f"(stopped; its outputs stay in {where})"))
    for key in RUN_FIELDS:
        status.pop(key, None)
    status.update(runId=rid, attempt=0, restarts={"preemptions": 0, "failures": 0, "sliceRestarts": 0})
    return status, events, True


def retry_command(name: str) -> str:
    """The command that retries fine-tune ``name``'s current run as a new attempt."""
    return f"kubectl annotate gemmafinetune {name} {RETRY_ANNOTATION}=$(date +%s) --overwrite"


def earlier_success(prev: dict[str, Any], rid: str) -> dict[str, Any] | None:
    """The record of run ``rid`` if it already succeeded (the spec went back to it)."""
    return next((r for r in prev.get("runs") or [] if r.get("runId") == rid and r.get("phase") == "Succeeded"), None)


def retry_token(body: dict[str, Any], prev: dict[str, Any]) -> str | None:
    """The gemmaft.dev/retry annotation when it asks for a retry not acted on yet."""
    token = ((body.get("metadata") or {}).get("annotations") or {}).get(RETRY_ANNOTATION)
    return token if token and token != prev.get("retry") else None


def percent_done(p: RunProgress) -> float | None:
    """``step`` of ``total_steps`` in percent (one decimal); None while the total is not known."""
    return round(100.0 * p.step / p.total_steps, 1) if p.total_steps else None


def progress_fields(p: RunProgress) -> dict[str, Any]:
    fields = {"step": p.step, "totalSteps": p.total_steps, "percent": percent_done(p), "epoch": p.epoch, "loss": p.loss,
              "evalLoss": p.eval_loss, "tokensPerSecond": p.tokens_per_second, "etaSeconds": p.eta_seconds,
              "updatedAt": p.updated_at}
    return {k: v for k, v in fields.items() if v is not None}


def outputs(ft: GemmaFineTune, uri: str, p: RunProgress | None, done: bool) -> dict[str, Any]:
    out = {"runUri": uri}
    if done:
        weights_not_adapter = not training_method(ft.spec.method).peft_adapter
        out["adapterUri"] = (p.adapter_uri if p and p.adapter_uri else None if weights_not_adapter
                             else f"{uri}/{ADAPTER_DIR}")
        if ft.spec.output.merge_adapter or weights_not_adapter:
            out["mergedModelUri"] = p.merged_model_uri if p and p.merged_model_uri else f"{uri}/{MERGED_DIR}"
        out["metricsUri"] = f"{uri}/{METRICS_FILE}"
        out["lossPlotUri"] = f"{uri}/{LOSS_PLOT_FILE}"
    return {k: v for k, v in out.items() if v is not None}


def history(status: dict[str, Any], rid: str, gen: int | None, phase: str, reason: str, uri: str,
            limit: int) -> list[dict[str, Any]]:
    record = {"runId": rid, "generation": gen, "phase": phase, "reason": reason, "startTime": status.get("startTime"),
              "completionTime": status.get("completionTime"), "runUri": uri,
              "adapterUri": (status.get("outputs") or {}).get("adapterUri"), "inputs": status.get("inputs")}
    earlier = next((r for r in status.get("runs") or [] if r.get("runId") == rid), {})
    newer_fields = RunRecord.split_unknown(earlier)[1]  # a newer operator's, kept (see Decision.unknown_status)
    runs = [{**newer_fields, **{k: v for k, v in record.items() if v is not None}}]
    runs += [r for r in status.get("runs") or [] if r.get("runId") != rid]
    return runs[:limit]

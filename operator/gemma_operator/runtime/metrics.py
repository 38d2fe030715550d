"""Prometheus metrics of the operator (served on GEMMAFT_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RUNS = Counter("gemmaft_runs_finished_total", "Fine-tune runs that finished, by result", ["result"])
PREEMPTIONS = Counter("gemmaft_preemptions_total", "Trainer pods lost to preemption, node drain or SIGTERM")
SLICE_RESTARTS = Counter("gemmaft_slice_restarts_total", "Multi-host TPU slices restarted as a whole")
RECONCILE = Histogram("gemmaft_reconcile_seconds", "Time of one reconcile of a GemmaFineTune",
                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ERRORS = Counter("gemmaft_reconcile_errors_total", "Reconciles that ended in an error (retried later)")

_started: set[int] = set()


def serve(port: int) -> None:
    if port and port not in _started:
        start_http_server(port)
        _started.add(port)


def record(decision) -> None:
    for result in decision.results:
        RUNS.labels(result=result).inc()
    if decision.new_preemptions:
        PREEMPTIONS.inc(decision.new_preemptions)
    if decision.slice_restarts:
        SLICE_RESTARTS.inc(decision.slice_restarts)

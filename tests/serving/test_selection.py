"""The served run chosen from status.runs: Succeeded, the evaluation gate where there is one, the pin."""

from __future__ import annotations

from gemma_operator.reconcile.serving import SERVE_RUN_ANNOTATION, passed_gate, select_run


def record(rid: str, phase: str = "Succeeded", **extra) -> dict:
    return {"runId": rid, "phase": phase, "runUri": f"gs://out/runs/{rid}", **extra}


def status(*runs: dict, evaluated: str | None = None) -> dict:
    conditions = [{"type": "Evaluated", "status": evaluated, "reason": "x"}] if evaluated else []
    return {"runId": runs[0]["runId"], "runs": list(runs), "conditions": conditions}


def test_the_newest_succeeded_run_is_served_and_failed_or_running_ones_are_skipped():
    s = status(record("c", "Failed"), record("b", "Running"), record("a"), record("z"))
    chosen = select_run(s, required=False, pin=None)
    assert (chosen.run_id, chosen.run_uri, chosen.pinned) == ("a", "gs://out/runs/a", False)
    assert select_run(status(record("c", "Failed")), False, None).run_id is None


def test_a_run_that_failed_its_evaluation_is_never_served():
    current_failed = status(record("b"), record("a"), evaluated="False")
    assert select_run(current_failed, required=False, pin=None).run_id == "a"
    earlier_failed = status(record("b"), record("a", evaluation={"passed": False}))
    assert select_run(earlier_failed, required=False, pin=None).run_id == "b"
    assert not passed_gate(record("a", evaluation={"passed": False}), {}, required=False)


def test_a_spec_with_an_evaluation_stage_serves_only_runs_that_passed_it():
    unevaluated = status(record("b"), record("a", evaluation={"passed": True}))
    assert select_run(unevaluated, required=True, pin=None).run_id == "a"
    assert select_run(status(record("b"), evaluated="True"), required=True, pin=None).run_id == "b"
    assert select_run(status(record("b"), evaluated="Unknown"), required=True, pin=None).run_id is None


def test_a_pin_serves_an_older_servable_run_and_is_ignored_with_a_reason_otherwise():
    s = status(record("c"), record("b", "Failed"), record("a"))
    pinned = select_run(s, False, "a")
    assert (pinned.run_id, pinned.pinned) == ("a", True)
    refused = select_run(s, False, "b")
    assert refused.run_id == "c" and not refused.pinned
    assert refused.message.startswith(f"{SERVE_RUN_ANNOTATION}=b: run b has not passed its gate")
    assert "is not in status.runs" in select_run(s, False, "nope").message

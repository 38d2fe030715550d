"""The status the operator writes, pinned on the wire: Argo CD, Flux and ``kubectl wait`` read it.

Each scenario is a chain of pure decisions (the runtime's carrying out of each one stood in for by
``test_reconcile_unit.applied``); every status written is compared with ``status_wire.json``, recorded from the
decisions as they were before the status became the typed ``GemmaFineTuneStatus`` (commit 1fbcfda). The typed
status changed the wire in two places, both edited into the recording: ``status.runs[].completionTime: null`` of a
superseded run that had not finished is left out (the API server prunes a null of a non-nullable field anyway), and
``status.serving.pinned: false`` is written where it was left out. Empty lists stay unwritten, as they were.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from gemma_api.run import RunProgress
from gemma_local.cluster.store import merge_patch
from gemma_operator.reconcile import Observed, decide
from gemma_operator.runtime.reconciler import status_patch
from gemma_operator.settings import OperatorSettings

from .test_reconcile_unit import applied, body, job_of, pod

GOLDEN = Path(__file__).with_name("status_wire.json")
POLICY = OperatorSettings()


def wire(decision) -> dict:
    """The status a decision asks the runtime to write, as JSON."""
    return json.loads(json.dumps(decision.wire_status))


def _plain_run() -> list[dict]:
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    pods = [pod(job, "p1", "Failed", exit_code=143, disrupted=True), pod(job, "p2")]
    training = RunProgress(state="training", step=10, total_steps=40, loss=1.5, updated_at="T1",
                           last_checkpoint="gs://out/runs/x/checkpoints/step-00000010")
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=pods, progress=training, now="T1"), POLICY)
    done_job = {**job, "status": {"succeeded": 1, "completionTime": "T2",
                                  "conditions": [{"type": "Complete", "status": "True"}]}}
    done = RunProgress(state="completed", step=40, total_steps=40, loss=0.5, updated_at="T2")
    d2 = decide(Observed(applied(obj, d1), jobs=[done_job], pods=[pod(job, "p2", "Succeeded", exit_code=0)],
                         progress=done, now="T2"), POLICY)
    edited = applied(obj, d2)
    edited["spec"]["training"] = {"learningRate": 0.0001}
    edited["metadata"]["generation"] = 2
    d3 = decide(Observed(edited, jobs=[done_job], now="T3"), POLICY)
    return [wire(d) for d in (d0, d1, d2, d3)]


def _slice_restart() -> list[dict]:
    obj = body(accelerator={"type": "tpu-v3", "topology": "4x4"})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    pods = [pod(job, f"h{i}") for i in range(3)] + [pod(job, "h3", "Failed", exit_code=143)]
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=pods, now="T1"), POLICY)
    return [wire(d) for d in (d0, d1)]


def _superseded_while_running() -> list[dict]:
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    edited = applied(obj, d0)
    edited["spec"]["training"] = {"learningRate": 0.0001}
    d1 = decide(Observed(edited, jobs=[job_of(d0)], now="T1"), POLICY)
    return [wire(d) for d in (d0, d1)]


def _refused() -> list[dict]:
    return [wire(decide(Observed(body(training={"learningRate": -1}), now="T0"), POLICY))]


def _suspended_with_serving() -> list[dict]:
    obj = body(runPolicy={"suspend": True}, serving={"accelerator": {"type": "nvidia-l4"}})
    return [wire(decide(Observed(obj, now="T0"), POLICY))]


def _evaluation_gate() -> list[dict]:
    obj = body(dataset={"trainUri": "gs://data/train.jsonl", "evalUri": "gs://data/eval.jsonl"},
               evaluation={"checks": [{"type": "exactMatch", "minScore": 0.5}]})
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    done_job = {**job, "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                                "reason": "PodFailurePolicy"}]}}
    gate = {"passed": False, "message": "checks[0] exactMatch scored 0.250, below its minScore 0.500",
            "checks": [{"type": "exactMatch", "minScore": 0.5, "score": 0.25, "passed": False}]}
    failed = RunProgress(state="failed", step=4, total_steps=4, updated_at="T1", evaluation=gate,
                         message="evaluation gate failed")
    d1 = decide(Observed(applied(obj, d0), jobs=[done_job], pods=[pod(job, "p", "Failed", exit_code=4)],
                         progress=failed, now="T1"), POLICY)
    return [wire(d) for d in (d0, d1)]


def _distillation_waiting() -> list[dict]:
    obj = body(model="gemma-2-2b-it", distillation={"teacher": {"model": "gemma-2-9b-it", "fromFineTune": "big"},
                                                    "accelerator": {"type": "tpu-v3", "topology": "2x2"}})
    source = body(model="gemma-2-9b-it", accelerator={"type": "tpu-v3", "topology": "2x2"})
    source["metadata"]["name"] = "big"
    source["status"] = {"phase": "Running"}
    d0 = decide(Observed(obj, now="T0"), POLICY)
    d1 = decide(Observed(applied(obj, d0), source=source, now="T1"), POLICY)
    source["status"] = {"phase": "Succeeded", "outputs": {"adapterUri": "gs://out/runs/big/r1/adapter"}}
    d2 = decide(Observed(applied(obj, d1), source=source, now="T2"), POLICY)
    return [wire(d) for d in (d0, d1, d2)]


SCENARIOS = {"plain run": _plain_run, "slice restart": _slice_restart,
             "superseded while running": _superseded_while_running, "refused": _refused,
             "suspended with serving": _suspended_with_serving, "evaluation gate": _evaluation_gate,
             "distillation waiting": _distillation_waiting}


def test_the_status_on_the_wire_is_the_recorded_one():
    golden = json.loads(GOLDEN.read_text())
    assert set(golden) == set(SCENARIOS)
    for name, scenario in SCENARIOS.items():
        assert scenario() == golden[name], name


def test_no_decision_changes_what_it_observed(monkeypatch):
    """Decisions return a new status and actions; the observed body, Jobs, pods and progress stay as they were; and
    the status model knows every field they write (none is carried as unknown)."""
    original = decide

    def checked(observed, settings):
        before = copy.deepcopy(observed)
        decision = original(observed, settings)
        assert observed == before
        assert decision.unknown_status == {}, "every field a decision writes is one the status model knows"
        return decision

    monkeypatch.setattr(sys.modules[__name__], "decide", checked)
    for scenario in SCENARIOS.values():
        scenario()


def test_status_fields_this_operator_does_not_know_are_kept_on_the_server():
    """After a rollback of the operator (Helm leaves the newer CRD in place), the status holds fields a newer
    operator wrote and this one's model does not know: at the top, inside an object and inside list items. The
    decision goes on (it used to fail validation on every reconcile), and the status patch the runtime sends,
    applied as the API server applies a merge patch, keeps them all; the typed status holds what this operator
    knows."""
    obj = body()
    d0 = decide(Observed(obj, now="T0"), POLICY)
    job = job_of(d0)
    progress = RunProgress(state="training", step=10, total_steps=40, loss=1.5, updated_at="T1")
    d1 = decide(Observed(applied(obj, d0), jobs=[job], pods=[pod(job, "p1")], progress=progress, now="T1"), POLICY)
    assert d0.unknown_status == d1.unknown_status == {}, "every field this operator writes is one it knows"
    newer = applied(obj, d1)
    newer["status"]["futureField"] = {"kept": True}
    newer["status"]["restarts"]["futureCount"] = 3
    newer["status"]["runs"][0]["futureNote"] = "from a newer operator"
    done = RunProgress(state="completed", step=40, total_steps=40, loss=0.5, updated_at="T2")
    finished = {**job, "status": {"succeeded": 1, "completionTime": "T2",
                                  "conditions": [{"type": "Complete", "status": "True"}]}}
    d2 = decide(Observed(newer, jobs=[finished], pods=[pod(job, "p1", "Succeeded", exit_code=0)], progress=done,
                         now="T2"), POLICY)
    stored = merge_patch(copy.deepcopy(newer["status"]), status_patch(newer["status"], d2.wire_status))
    assert stored["phase"] == "Succeeded" and d2.status.phase == "Succeeded"
    assert stored["futureField"] == {"kept": True}
    assert stored["restarts"]["futureCount"] == 3
    assert stored["runs"][0]["futureNote"] == "from a newer operator" and stored["runs"][0]["phase"] == "Succeeded"
    assert "futureField" not in d2.status.model_dump(by_alias=True)
    assert d2.unknown_status == {"futureField": {"kept": True}, "runs": [{"futureNote": "from a newer operator"}]}

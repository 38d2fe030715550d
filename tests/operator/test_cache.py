"""The watch-fed cache's own bookkeeping: tombstones, awaited Jobs, FailedCreate messages (no cluster)."""

from __future__ import annotations

from gemma_operator.runtime.cache import Cache

KEY = ("ml", "demo")


def job(name, uid):
    return {"metadata": {"name": name, "uid": uid, "namespace": "ml"}, "status": {"failed": 1}}


def test_tombstones_are_per_fine_tune_bounded_and_expire():
    cache = Cache(max_tombstones=3)
    cache.bury("Job", KEY, job("a", "1"))
    cache.bury("Job", ("ml", "other"), job("b", "2"))
    assert [j["metadata"]["name"] for j in cache.gone("Job", KEY)] == ["a"]
    for i in range(3, 6):
        cache.bury("Job", KEY, job(f"j{i}", str(i)))
    assert [j["metadata"]["name"] for j in cache.gone("Job", KEY)] == ["j3", "j4", "j5"]  # oldest dropped
    assert cache.gone("Job", ("ml", "other")) == []
    cache.tombstone_seconds = -1.0
    assert cache.gone("Job", KEY) == []
    pod = {"metadata": {"name": "p", "uid": "u", "labels": {"x": "y"}}, "spec": {"big": "x" * 1000},
           "status": {"phase": "Failed"}}
    cache.tombstone_seconds = 60.0
    cache.bury("Pod", KEY, pod)
    (kept,) = cache.gone("Pod", KEY)
    assert "spec" not in kept and kept["status"]["phase"] == "Failed"  # pods are kept as summaries


def test_a_created_job_is_awaited_until_watched_and_failed_create_needs_an_owned_job():
    cache = Cache()
    cache.created_job(KEY, "demo-r1")
    assert cache.awaited(KEY) == {"demo-r1"} and cache.awaited(("ml", "x")) == frozenset()
    assert cache.failed_create("ml", "demo-r1", "quota") is None  # not watched yet: not known as ours
    cache.saw_job("ml", "demo-r1", "demo")
    assert cache.awaited(KEY) == frozenset()
    assert cache.failed_create("ml", "demo-r1", "serviceaccount missing") == "demo"
    assert cache.failed_create("ml", "demo-r1", "serviceaccount missing") is None  # a repeat: no new reconcile
    assert cache.job_problems("ml", [job("demo-r1", "1"), job("other", "2")]) == {"demo-r1": "serviceaccount missing"}
    cache.bury("Job", KEY, job("demo-r1", "1"))
    assert cache.job_problems("ml", [job("demo-r1", "1")]) == {}
    cache.forget(KEY, KEY)
    assert cache.gone("Job", KEY) == []


def test_event_names_repeat_for_a_repeated_transition_only():
    from gemma_operator.runtime.events import event_object

    body = {"apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
            "metadata": {"name": "demo", "namespace": "ml", "uid": "u1", "resourceVersion": "7"}}
    first = event_object(body, "Normal", "Running", "1 trainer pod(s) running")
    again = event_object(body, "Normal", "Running", "1 trainer pod(s) running")  # the same reconcile, repeated
    assert first["metadata"]["name"] == again["metadata"]["name"] and first["metadata"]["name"].startswith("demo.")
    later = event_object({**body, "metadata": {**body["metadata"], "resourceVersion": "9"}}, "Normal", "Running",
                         "1 trainer pod(s) running")  # running again after a suspend: a new transition
    second = event_object(body, "Normal", "Running", "1 trainer pod(s) running", index=1)
    assert len({first["metadata"]["name"], later["metadata"]["name"], second["metadata"]["name"]}) == 3
    assert first["involvedObject"] == {"apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune", "name": "demo",
                                       "namespace": "ml", "uid": "u1"}


def test_progress_is_read_only_when_it_can_change_the_decision():
    from gemma_operator.reconcile.staged_run import progress_matters

    job = {"metadata": {"name": "demo-r1", "uid": "u1"}}
    pending = {"runId": "r1", "phase": "Pending", "job": {"name": "demo-r1", "uid": "u1"}}
    assert progress_matters({}, "r1", [], frozenset(), [])  # first sight: the run may have completed already
    assert progress_matters({**pending, "runId": "r0"}, "r1", [job], frozenset(), [])  # a new run
    assert progress_matters({**pending, "phase": "Running"}, "r1", [job], frozenset(), [])
    assert not progress_matters(pending, "r1", [job], frozenset(), [])  # its Job is watched: nothing to learn
    assert not progress_matters(pending, "r1", [], frozenset({"demo-r1"}), [])  # created, not watched yet
    assert progress_matters(pending, "r1", [], frozenset(), [])  # gone unseen: judged from progress.json


def test_progress_is_read_when_the_attempt_ended_before_the_run_was_seen_running():
    """A pod that fails (or succeeds) before any reconcile saw it Running: the decision that ends the run must read
    progress.json, which holds how the attempt ended (the evaluation gate, the outputs). Without it a run failed
    by its gate (exit 4) ended Failed with no gate in the status, and was never evaluated again (CI, stop 25:
    tests/evaluation/test_operator.py both timed out)."""
    from gemma_operator.reconcile.staged_run import progress_matters

    job = {"metadata": {"name": "demo-r1", "uid": "u1"}, "status": {}}
    pending = {"runId": "r1", "phase": "Pending", "job": {"name": "demo-r1", "uid": "u1"}}

    def pod(phase: str, job_name: str = "demo-r1") -> dict:
        return {"metadata": {"name": f"{job_name}-x", "labels": {"job-name": job_name}}, "status": {"phase": phase}}

    assert not progress_matters(pending, "r1", [job], frozenset(), [pod("Pending")])  # still nothing to learn
    assert progress_matters(pending, "r1", [job], frozenset(), [pod("Failed")])  # the attempt ended
    assert progress_matters(pending, "r1", [job], frozenset(), [pod("Succeeded")])
    assert not progress_matters(pending, "r1", [job], frozenset(), [pod("Failed", "demo-r0")])  # an older attempt
    done = {**job, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert progress_matters(pending, "r1", [done], frozenset(), [])  # its Job finished, its pods already gone

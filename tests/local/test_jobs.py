"""The Job and TTL controllers, garbage collection (ownerReferences, deletion propagation), and the watch event
order a real API server delivers."""

from __future__ import annotations

import pytest

from tests.operator.harness import wait_for

from .conftest import Watch, api, job, job_conditions, running_pods

JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def test_ttl_zero_deletes_the_failed_job_and_its_pods_after_the_failure_is_visible(cluster):
    jobs, pods = Watch(cluster.url, JOBS), Watch(cluster.url, PODS)
    cluster.create("Job", job(ttlSecondsAfterFinished=0))
    (pod,) = wait_for(lambda: running_pods(cluster, "train"), what="pod Running")
    cluster.fail_pod(pod["metadata"]["name"], exit_code=1)
    wait_for(lambda: cluster.get("Job", "train") is None, what="TTL deletion")
    wait_for(lambda: cluster.list("Pod") == [], what="pods collected")
    wait_for(lambda: jobs.seen()[-1] == ("DELETED", "train"), what="Job DELETED last")
    wait_for(lambda: pods.seen()[-1][0] == "DELETED", what="pod DELETED")
    job_events = [(e["type"], [c["type"] for c in (e["object"].get("status") or {}).get("conditions") or ()],
                   bool(e["object"]["metadata"].get("deletionTimestamp"))) for e in jobs.events]
    conditions_seen = [conds for _, conds, _ in job_events]
    assert ["FailureTarget"] in conditions_seen and ["FailureTarget", "Failed"] in conditions_seen
    failed_at = conditions_seen.index(["FailureTarget", "Failed"])
    # foreground deletion: marked (deletionTimestamp), then the pods go, then the Job, whose last event is DELETED
    marked = next(i for i, (_, _, deleting) in enumerate(job_events) if deleting)
    assert failed_at < marked < len(job_events) - 1 and job_events[-1][0] == "DELETED"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in jobs.events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert job_events[failed_at][0] == "MODIFIED"


def test_ttl_waits_its_seconds_and_no_ttl_keeps_the_job(cluster):
    cluster.create("Job", job("kept"))
    cluster.create("Job", job("expiring", ttlSecondsAfterFinished=1))
    for name in ("kept", "expiring"):
        (pod,) = wait_for(lambda n=name: running_pods(cluster, n), what=f"{name} Running")
        cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(lambda: ("Complete", "CompletionsReached") in job_conditions(cluster, "expiring"), what="Complete")
    assert cluster.get("Job", "expiring") is not None  # not before its second
    wait_for(lambda: cluster.get("Job", "expiring") is None, timeout=5, what="expired")
    assert cluster.get("Job", "kept") is not None and cluster.pods_of("kept")


def test_success_is_success_criteria_met_then_complete_with_completion_time(cluster):
    cluster.create("Job", job(completions=2, parallelism=2, completionMode="Indexed"))
    pods = wait_for(lambda: len(running_pods(cluster, "train")) == 2 and running_pods(cluster, "train"), what="2 pods")
    assert sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1"]
    assert {p["spec"]["hostname"] for p in pods} == {"train-0", "train-1"}
    for pod in pods:
        cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(lambda: ("Complete", "CompletionsReached") in job_conditions(cluster, "train"), what="Complete")
    status = cluster.get("Job", "train")["status"]
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert status["completionTime"] and status["succeeded"] == 2 and status["completedIndexes"] == "0-1"


def test_one_index_of_an_indexed_job_fails_while_the_others_keep_running(cluster):
    cluster.create("Job", job(completions=4, parallelism=4, completionMode="Indexed", backoffLimit=3))
    pods = wait_for(lambda: len(running_pods(cluster, "train")) == 4 and running_pods(cluster, "train"), what="4 pods")
    by_index = {p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    cluster.fail_pod(by_index["2"]["metadata"]["name"], exit_code=1)
    status = wait_for(lambda: (cluster.get("Job", "train")["status"].get("failed") == 1
                               and len(running_pods(cluster, "train")) == 4 and cluster.get("Job", "train")["status"]),
                      what="index 2 replaced")
    assert status["active"] == 4 and not job_conditions(cluster, "train")
    still = {p["metadata"]["name"] for p in running_pods(cluster, "train")}
    assert {by_index[i]["metadata"]["name"] for i in ("0", "1", "3")} <= still  # the other hosts were not touched
    assert by_index["2"]["metadata"]["name"] not in still


def test_backoff_limit_counts_failures_and_fails_the_job(cluster):
    cluster.create("Job", job(backoffLimit=1))
    for attempt in range(2):
        (pod,) = wait_for(lambda: running_pods(cluster, "train"), what=f"attempt {attempt}")
        cluster.fail_pod(pod["metadata"]["name"], exit_code=1)
        wait_for(lambda p=pod: cluster.get("Pod", p["metadata"]["name"])["status"]["phase"] == "Failed",
                 what="pod Failed")
    wait_for(lambda: ("Failed", "BackoffLimitExceeded") in job_conditions(cluster, "train"), what="Failed")
    status = cluster.get("Job", "train")["status"]
    assert status["failed"] == 2 and "completionTime" not in status
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    assert {"BackoffLimitExceeded"} <= {e["reason"] for e in cluster.events_for("train", kind="Job")}


def test_one_failed_index_with_backoff_limit_0_fails_the_job_and_stops_the_other_hosts(cluster):
    cluster.create("Job", job(completions=4, parallelism=4, completionMode="Indexed", backoffLimit=0))
    pods = wait_for(lambda: len(running_pods(cluster, "train")) == 4 and running_pods(cluster, "train"), what="4 pods")
    cluster.fail_pod(pods[1]["metadata"]["name"], exit_code=1)
    wait_for(lambda: ("Failed", "BackoffLimitExceeded") in job_conditions(cluster, "train"), what="Failed")
    assert running_pods(cluster, "train") == []
    assert [p["status"]["phase"] for p in cluster.pods_of("train")] == ["Failed"]  # the others were deleted


POLICY = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "trainer", "operator": "In",
                                                          "values": [42]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}}]}


def test_pod_failure_policy_ignore_count_and_fail_job(cluster):
    cluster.create("Job", job(completions=2, parallelism=2, completionMode="Indexed", backoffLimit=5,
                              podFailurePolicy=POLICY))
    pods = wait_for(lambda: len(running_pods(cluster, "train")) == 2 and running_pods(cluster, "train"), what="pods")
    cluster.preempt_pod(pods[0]["metadata"]["name"])  # Ignore: not counted, replaced
    wait_for(lambda: len(running_pods(cluster, "train")) == 2 and pods[0]["metadata"]["name"] not in {
        p["metadata"]["name"] for p in running_pods(cluster, "train")}, what="replacement")
    assert cluster.get("Job", "train")["status"]["failed"] == 0
    cluster.fail_pod(pods[1]["metadata"]["name"], exit_code=3)  # Count
    wait_for(lambda: cluster.get("Job", "train")["status"].get("failed") == 1, what="counted")
    victim = wait_for(lambda: len(running_pods(cluster, "train")) == 2 and running_pods(cluster, "train"),
                      what="replacement")[0]
    cluster.fail_pod(victim["metadata"]["name"], exit_code=42)  # FailJob
    wait_for(lambda: ("Failed", "PodFailurePolicy") in job_conditions(cluster, "train"), what="FailJob")
    message = next(c["message"] for c in cluster.get("Job", "train")["status"]["conditions"] if c["type"] == "Failed")
    assert f"Container trainer for pod default/{victim['metadata']['name']} failed with exit code 42" in message
    assert running_pods(cluster, "train") == []  # the rest of the slice is terminated


def test_suspend_deletes_pods_and_resume_recreates_them(cluster):
    cluster.create("Job", job(completions=2, parallelism=2, completionMode="Indexed"))
    wait_for(lambda: len(running_pods(cluster, "train")) == 2, what="pods")
    cluster.call(cluster.emulator.update("Job", "default", "train", {"spec": {"suspend": True}}))
    wait_for(lambda: cluster.pods_of("train") == [] and ("Suspended", "JobSuspended") in job_conditions(
        cluster, "train"), what="suspended")
    cluster.call(cluster.emulator.update("Job", "default", "train", {"spec": {"suspend": False}}))
    wait_for(lambda: len(running_pods(cluster, "train")) == 2, what="resumed")
    suspended = next(c for c in cluster.get("Job", "train")["status"]["conditions"] if c["type"] == "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("False", "JobResumed")


@pytest.mark.parametrize(("policy", "pods_left"), [("Background", 0), ("Orphan", 1), (None, 1)])
def test_job_deletion_propagation_background_and_orphan_by_default(cluster, policy, pods_left):
    cluster.create("Job", job())
    wait_for(lambda: running_pods(cluster, "train"), what="pod")
    query = f"?propagationPolicy={policy}" if policy else ""
    code, answer = api(cluster, "DELETE", f"{JOBS}/train{query}")
    assert code == 200, answer
    wait_for(lambda: cluster.get("Job", "train") is None, what="Job gone")
    wait_for(lambda: len(cluster.list("Pod")) == pods_left, what=f"{pods_left} pods left")
    if pods_left:
        assert cluster.list("Pod")[0]["metadata"]["ownerReferences"] == []


def owner_with_dependents(cluster, count: int) -> str:
    """A ConfigMap ``owner`` named by ``count`` ConfigMaps' ownerReferences (created in one call on the cluster's
    loop); answers the resourceVersion after the last, to watch the deletion from."""
    owner = cluster.create("ConfigMap", {"metadata": {"name": "owner", "namespace": "default"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}

    async def create_dependents() -> str:
        for i in range(count):
            await cluster.emulator.put("ConfigMap", {"metadata": {
                "name": f"dependent-{i}", "namespace": "default", "ownerReferences": [reference]}})
        return str(cluster.emulator.store.version)

    return cluster.call(create_dependents())


MANY = 2000  # the recursive collector raised RecursionError from about 500 dependents (450 passed, 500 did not)


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
def test_deleting_an_owner_of_thousands_of_dependents_keeps_the_propagation_order(cluster, policy):
    watch = Watch(cluster.url, CONFIGMAPS, resourceVersion=owner_with_dependents(cluster, MANY))
    cluster.delete("ConfigMap", "owner", propagation=policy)
    wait_for(lambda: cluster.get("ConfigMap", "owner") is None, what="owner gone")
    left = {c["metadata"]["name"]: c["metadata"]["ownerReferences"] for c in cluster.list("ConfigMap")}
    assert left == ({f"dependent-{i}": [] for i in range(MANY)} if policy == "Orphan" else {})
    wait_for(lambda: ("DELETED", "owner") in watch.seen(), what="the owner's DELETED event")
    seen = watch.seen()
    owner_deleted = seen.index(("DELETED", "owner"))
    dependents_deleted = [i for i, (kind, name) in enumerate(seen) if kind == "DELETED" and name != "owner"]
    if policy == "Foreground":  # marked first; every dependent goes before the owner does
        assert seen[0] == ("MODIFIED", "owner") and watch.events[0]["object"]["metadata"]["deletionTimestamp"]
        assert len(dependents_deleted) == MANY and max(dependents_deleted) < owner_deleted
    elif policy == "Background":  # the owner goes at once, its dependents are collected after
        assert owner_deleted == 0
        wait_for(lambda: len(watch.seen()) == MANY + 1, what="every dependent's DELETED event")
        assert [kind for kind, _ in watch.seen()[1:]] == ["DELETED"] * MANY
    else:
        assert dependents_deleted == []


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
def test_a_dependent_with_its_own_finalizer_is_collected_when_it_is_removed(cluster, policy):
    owner_with_dependents(cluster, 2)
    api(cluster, "PATCH", f"{CONFIGMAPS}/dependent-0", {"metadata": {"finalizers": ["example.com/keep"]}})
    cluster.delete("ConfigMap", "owner", propagation=policy)  # the collector used to spin here, the loop frozen
    kept = cluster.get("ConfigMap", "dependent-0")
    assert kept["metadata"]["deletionTimestamp"] and cluster.get("ConfigMap", "dependent-1") is None
    owner = cluster.get("ConfigMap", "owner")
    assert (owner is not None and owner["metadata"]["finalizers"] == ["foregroundDeletion"]) == (
        policy == "Foreground")  # a foreground owner waits for its last dependent
    code, answer = api(cluster, "PATCH", f"{CONFIGMAPS}/dependent-0", {"metadata": {"finalizers": None}})
    assert code == 200, answer
    wait_for(lambda: cluster.list("ConfigMap") == [], what="the dependent, then a foreground owner, gone")


def test_a_watch_resumes_from_a_resource_version_and_follows_its_selector(cluster, monkeypatch):
    from gemma_local.cluster import store

    cluster.create("ConfigMap", {"metadata": {"name": "before", "namespace": "default", "labels": {"app": "x"}}})
    version = cluster.get("ConfigMap", "before")["metadata"]["resourceVersion"]
    cluster.create("ConfigMap", {"metadata": {"name": "after", "namespace": "default", "labels": {"app": "x"}}})
    resumed = Watch(cluster.url, CONFIGMAPS, resourceVersion=version)
    selected = Watch(cluster.url, CONFIGMAPS, labelSelector="app%3Dx")
    wait_for(lambda: resumed.seen() == [("ADDED", "after")], what="only what came after the version")
    wait_for(lambda: sorted(selected.seen()) == [("ADDED", "after"), ("ADDED", "before")], what="initial state")
    cluster.call(cluster.emulator.update("ConfigMap", "default", "before", {"metadata": {"labels": {"app": "y"}}}))
    cluster.call(cluster.emulator.update("ConfigMap", "default", "after", {"data": {"k": "v"}}))
    wait_for(lambda: selected.seen()[2:] == [("DELETED", "before"), ("MODIFIED", "after")],
             what="leaving the selection is DELETED for this watcher")
    monkeypatch.setattr(store, "LOG_LIMIT", 2)
    for i in range(3):
        cluster.create("ConfigMap", {"metadata": {"name": f"more-{i}", "namespace": "default"}})
    expired = Watch(cluster.url, CONFIGMAPS, resourceVersion=version)
    wait_for(lambda: expired.events, what="an answer")
    assert expired.events[0]["type"] == "ERROR" and expired.events[0]["object"]["code"] == 410

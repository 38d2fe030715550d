"""The Job controller and the TTL-after-finished controller, as Kubernetes 1.32 runs them (their common paths).

* Pods from the template: one per missing index (``completionMode: Indexed``, hostname ``<job>-<index>``,
  the completion-index label and annotation) or up to ``parallelism``; a pod the admission refuses (its
  ServiceAccount does not exist) is not created: a ``FailedCreate`` Warning Event on the Job, retried.
* Finished pods are counted once (as the real controller's tracking finalizers do), deleted pods included:
  ``podFailurePolicy`` rules in order (FailJob, Ignore, Count; ``onExitCodes`` In/NotIn, ``onPodConditions``
  such as DisruptionTarget), else counted against ``backoffLimit``; ``activeDeadlineSeconds``.
* Terminal conditions the 1.31+ way: first ``FailureTarget`` (or ``SuccessCriteriaMet``), the remaining
  pods deleted, then ``Failed`` (or ``Complete``, with ``completionTime``) with the same reason and message.
* ``suspend``: active pods deleted, condition Suspended; resuming resets ``startTime``.
* TTL after finished: ``ttlSecondsAfterFinished`` seconds (0 included) after the terminal condition, the Job
  is deleted with foreground propagation: deletionTimestamp first, its pods, then the Job itself.

Not modelled: the pod failure back-off delay before replacements, ``backoffLimitPerIndex``/FailIndex,
``successPolicy``, pod tracking finalizers as objects, elastic Indexed Jobs.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .store import seconds_since, timestamp

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
TERMINAL = ("Succeeded", "Failed")
CREATE_RETRY_SECONDS = 1.0


def conditions_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or () if c.get("status") == "True"}


def phase(pod: dict[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def index_of(pod: dict[str, Any]) -> int:
    return int((pod["metadata"].get("annotations") or {}).get(INDEX_KEY, 0))


def ranges(indexes: set[int]) -> str:
    """``{0,1,2,4}`` -> ``"0-2,4"`` (status.completedIndexes)."""
    out, ordered = [], sorted(indexes)
    while ordered:
        first = last = ordered.pop(0)
        while ordered and ordered[0] == last + 1:
            last = ordered.pop(0)
        out.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(out)


def exit_codes(pod: dict[str, Any]) -> dict[str, int]:
    return {c.get("name"): ((c.get("state") or {}).get("terminated") or {}).get("exitCode")
            for c in (pod.get("status") or {}).get("containerStatuses") or ()
            if "terminated" in (c.get("state") or {})}


def policy_rule(job: dict[str, Any], pod: dict[str, Any]) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule matching a failed pod."""
    codes = exit_codes(pod)
    conditions = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or ()}
    rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules") or ())
    for number, rule in enumerate(rules):
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = set(on_codes.get("values") or ())
            for name, code in codes.items():
                if on_codes.get("containerName") not in (None, name) or code in (None, 0):
                    continue
                if (code in values) == (on_codes.get("operator", "In") == "In"):
                    meta = pod["metadata"]
                    return rule["action"], (f"Container {name} for pod {meta['namespace']}/{meta['name']} failed "
                                            f"with exit code {code} matching {rule['action']} rule at index {number}")
        for cond in rule.get("onPodConditions") or ():
            if conditions.get(cond.get("type")) == cond.get("status", "True"):
                meta = pod["metadata"]
                return rule["action"], (f"Pod {meta['namespace']}/{meta['name']} has condition {cond['type']} "
                                        f"matching {rule['action']} rule at index {number}")
    return None


def condition(kind: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastProbeTime": timestamp(), "lastTransitionTime": timestamp()}


class JobController:
    """Mixin of :class:`~.controllers.ClusterEmulator`."""

    counted: dict[str, dict[str, str]]  # these three are fields of ClusterEmulator
    finished_at: dict[str, float]
    next_create: dict[str, float]

    def pods_of_job(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        candidates = self.owned_pods.get(uid, []) if self.owned_pods is not None else self.find(
            "Pod", job["metadata"]["namespace"])
        return [p for p in candidates
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or ())
                and not p["metadata"].get("deletionTimestamp")]

    async def sync_job(self, job: dict[str, Any]) -> None:
        if job["metadata"].get("deletionTimestamp"):
            return
        conds = conditions_of(job)
        if "Complete" in conds or "Failed" in conds:
            await self._expire(job, conds)
            return
        pods = self.pods_of_job(job)
        active = [p for p in pods if phase(p) not in TERMINAL and not p["metadata"].get("deletionTimestamp")]
        if "FailureTarget" in conds or "SuccessCriteriaMet" in conds:
            await self._conclude(job, conds, active)
            return
        if job["spec"].get("suspend"):
            await self._suspend(job, conds, active)
            return
        counts = self._count(job, pods)
        verdict = self._verdict(job, pods, counts)
        if verdict is not None:
            kind, reason, message = verdict
            await self._status(job, {**self._tally(job, pods, counts),
                                     "conditions": [*self._kept(job), condition(kind, reason, message)]})
            return
        await self._run(job, conds, pods, active, counts)

    def _tally(self, job: dict, pods: list[dict], counts: dict[str, str]) -> dict[str, Any]:
        tally: dict[str, Any] = {"succeeded": sum(1 for v in counts.values() if v == "succeeded"),
                                 "failed": sum(1 for v in counts.values() if v not in ("succeeded", "ignored"))}
        if job["spec"].get("completionMode") == "Indexed":
            tally["completedIndexes"] = ranges(self._done_indexes(pods, counts))
        return tally

    def _kept(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        return [c for c in (job.get("status") or {}).get("conditions") or () if c["type"] == "Suspended"]

    def _count(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, str]:
        counted = self.counted.setdefault(job["metadata"]["uid"], {})
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid in counted or phase(pod) not in TERMINAL:
                continue
            if phase(pod) == "Succeeded":
                counted[uid] = "succeeded"
            else:
                rule = policy_rule(job, pod)
                counted[uid] = {"Ignore": "ignored", "FailJob": "failjob:" + (rule or ("", ""))[1]}.get(
                    (rule or ("Count",))[0], "failed")
        return counted

    def _verdict(self, job: dict, pods: list[dict], counts: dict[str, str]) -> tuple[str, str, str] | None:
        spec, status = job["spec"], job.get("status") or {}
        for outcome in counts.values():
            if outcome.startswith("failjob:"):
                return "FailureTarget", "PodFailurePolicy", outcome.split(":", 1)[1]
        failed = sum(1 for v in counts.values() if v == "failed")
        if failed > int(spec.get("backoffLimit", 6)):
            return "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and status.get("startTime"):
            if seconds_since(status["startTime"]) > deadline:
                return "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"
            self.wake_at(time.time() + deadline - seconds_since(status["startTime"]))
        if self._done_count(job, pods, counts) >= int(spec.get("completions") or 1):
            return "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
        return None

    def _done_indexes(self, pods: list[dict], counts: dict[str, str]) -> set[int]:
        return {index_of(p) for p in pods if counts.get(p["metadata"]["uid"]) == "succeeded"}

    def _done_count(self, job: dict, pods: list[dict], counts: dict[str, str]) -> int:
        if job["spec"].get("completionMode") == "Indexed":
            return len(self._done_indexes(pods, counts))
        return sum(1 for v in counts.values() if v == "succeeded")

    async def _conclude(self, job: dict, conds: dict, active: list[dict]) -> None:
        """FailureTarget/SuccessCriteriaMet -> delete what still runs -> Failed/Complete."""
        for pod in active:
            await self.remove("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        target = conds.get("FailureTarget") or conds["SuccessCriteriaMet"]
        final = "Failed" if "FailureTarget" in conds else "Complete"
        change: dict[str, Any] = {"conditions": [*(job["status"].get("conditions") or ()),
                                                 condition(final, target["reason"], target["message"])],
                                  "active": 0, "ready": 0, "terminating": 0}
        if final == "Complete":
            change["completionTime"] = timestamp()
        self.finished_at[job["metadata"]["uid"]] = time.time()
        await self._status(job, change)
        warning = final == "Failed"
        await self.record_event(job, "Job", "Warning" if warning else "Normal",
                                target["reason"] if warning else "Completed",
                                target["message"] if warning else "Job completed", "job-controller")

    async def _suspend(self, job: dict, conds: dict, active: list[dict]) -> None:
        for pod in active:
            await self.remove("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        if "Suspended" not in conds:
            await self._status(job, {"active": 0, "ready": 0, "conditions": [
                c for c in (job.get("status") or {}).get("conditions") or () if c["type"] != "Suspended"] + [
                condition("Suspended", "JobSuspended", "Job suspended")]})
            await self.record_event(job, "Job", "Normal", "Suspended", "Job suspended", "job-controller")

    async def _run(self, job: dict, conds: dict, pods: list[dict], active: list[dict], counts: dict) -> None:
        status = job.get("status") or {}
        change: dict[str, Any] = {}
        if "Suspended" in conds:  # resumed
            change["conditions"] = [c for c in status.get("conditions") or () if c["type"] != "Suspended"] + [
                condition("Suspended", "JobResumed", "Job resumed", "False")]
            change["startTime"] = timestamp()
            await self.record_event(job, "Job", "Normal", "Resumed", "Job resumed", "job-controller")
        created = await self._create_missing(job, pods, active, counts)
        running = [p for p in active if any(c.get("type") == "Ready" and c.get("status") == "True"
                                            for c in (p.get("status") or {}).get("conditions") or ())]
        change.update({"active": len(active) + created, "ready": len(running), "terminating": 0,
                       **self._tally(job, pods, counts),
                       "startTime": change.get("startTime") or status.get("startTime") or timestamp()})
        if any(status.get(k) != v for k, v in change.items()):
            await self._status(job, change)

    async def _create_missing(self, job: dict, pods: list[dict], active: list[dict], counts: dict) -> int:
        spec, uid = job["spec"], job["metadata"]["uid"]
        if self.next_create.get(uid, 0) > time.time():
            self.wake_at(self.next_create[uid])
            return 0
        completions, parallelism = int(spec.get("completions") or 1), int(spec.get("parallelism") or 1)
        if spec.get("completionMode") == "Indexed":
            taken = self._done_indexes(pods, counts) | {index_of(p) for p in active}
            missing = [i for i in range(completions) if i not in taken][: max(0, parallelism - len(active))]
        else:
            done = self._done_count(job, pods, counts)
            missing = [None] * max(0, min(parallelism, completions - done) - len(active))
        created = 0
        for index in missing:
            refusal = self.pod_refusal(job)
            if refusal:
                self.next_create[uid] = time.time() + CREATE_RETRY_SECONDS
                self.wake_at(time.time() + CREATE_RETRY_SECONDS)
                await self.record_event(job, "Job", "Warning", "FailedCreate", refusal, "job-controller")
                break
            pod = await self.start_pod(job, index)
            created += 1
            await self.record_event(job, "Job", "Normal", "SuccessfulCreate",
                                    f"Created pod: {pod['metadata']['name']}", "job-controller")
        return created

    def pod_refusal(self, job: dict[str, Any]) -> str | None:
        """Why admission would refuse the Job's pods (a missing ServiceAccount), as the Event says it."""
        ns = job["metadata"]["namespace"]
        account = job["spec"]["template"]["spec"].get("serviceAccountName") or "default"
        if self.get("ServiceAccount", ns, account) is None:
            return (f'Error creating: pods "{job["metadata"]["name"]}-" is forbidden: error looking up service '
                    f'account {ns}/{account}: serviceaccount "{account}" not found')
        return None

    async def start_pod(self, job: dict[str, Any], index: int | None) -> dict[str, Any]:
        meta, template = job["metadata"], job["spec"]["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}), "job-name": meta["name"],
                  "controller-uid": meta["uid"], "batch.kubernetes.io/job-name": meta["name"],
                  "batch.kubernetes.io/controller-uid": meta["uid"]}
        annotations = dict((template.get("metadata") or {}).get("annotations") or {})
        spec = dict(template["spec"])
        suffix = secrets.token_hex(3)[:5]
        name = f"{meta['name']}-{suffix}"
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            spec["hostname"] = f"{meta['name']}-{index}"
            name = f"{meta['name']}-{index}-{suffix}"
            spec["containers"] = [{**c, "env": [*(c.get("env") or ()), {"name": "JOB_COMPLETION_INDEX", "value": str(
                index)}]} for c in spec.get("containers") or ()]
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        return await self.put("Pod", {"metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                                                   "annotations": annotations, "ownerReferences": [owner]},
                                      "spec": spec, "status": {"phase": "Pending"}})

    async def _status(self, job: dict[str, Any], change: dict[str, Any]) -> None:
        await self.update("Job", job["metadata"]["namespace"], job["metadata"]["name"], {"status": change})

    async def _expire(self, job: dict[str, Any], conds: dict[str, dict]) -> None:
        """The TTL-after-finished controller: foreground deletion once the TTL has passed."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = self.finished_at.get(job["metadata"]["uid"])
        if finished is None:
            stamp = (conds.get("Complete") or conds.get("Failed"))["lastTransitionTime"]
            finished = time.time() - seconds_since(stamp)
        if time.time() - finished >= ttl:
            await self.remove("Job", job["metadata"]["namespace"], job["metadata"]["name"], "Foreground")
        else:
            self.wake_at(finished + ttl)

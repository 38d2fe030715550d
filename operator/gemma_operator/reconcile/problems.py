"""Pod problems a user can act on, from what the kubelet and the scheduler write into pod status."""

from __future__ import annotations

from dataclasses import dataclass

from .pods import PodView

IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError")


@dataclass(frozen=True)
class PodProblem:
    reason: str
    message: str
    stalled: bool
    """Only a person can fix it (kstatus Stalled); else it may clear by itself (autoscaling)."""


def _image(pod: PodView) -> PodProblem:
    return PodProblem(pod.waiting_reason or "ImagePullBackOff",
                      f"pod {pod.name} cannot pull its image: {pod.waiting_message or pod.waiting_reason}. Fix: "
                      "check spec.pod.image (or the operator's default trainer image) exists and that the "
                      "node pool's service account may pull from its registry", True)


def _config(pod: PodView) -> PodProblem:
    return PodProblem(pod.waiting_reason or "CreateContainerConfigError",
                      f"pod {pod.name} cannot start its container: {pod.waiting_message or pod.waiting_reason}. "
                      "Fix: create the missing Secret or ConfigMap (spec.pod.hfTokenSecretRef names the token "
                      "Secret) in the fine-tune's namespace", True)


def _unschedulable(pod: PodView) -> PodProblem:
    return PodProblem("Unschedulable",
                      f"pod {pod.name} cannot be scheduled: {pod.unschedulable}. Fix: add a node pool for "
                      "spec.accelerator (or raise its autoscaling limit / accelerator quota), or pick an "
                      "accelerator the cluster has; the pod stays Pending until a node fits", False)


def pod_problem(pods: list[PodView]) -> PodProblem | None:
    """The first problem among active pods, most actionable first."""
    active = [p for p in pods if p.active]
    for pod in active:
        if pod.waiting_reason in IMAGE_PULL:
            return _image(pod)
    for pod in active:
        if pod.waiting_reason in CONFIG_ERRORS:
            return _config(pod)
    for pod in active:
        if pod.unschedulable:
            return _unschedulable(pod)
    return None


def create_problem(job: str, message: str) -> PodProblem:
    """The Job controller could not create a pod (its FailedCreate Event)."""
    if "serviceaccount" in message.lower():
        return PodProblem("ServiceAccountNotFound",
                          f"Job {job} cannot create its pods: {message}. Fix: create the ServiceAccount in this "
                          "namespace (the chart's trainerServiceAccount.namespaces) or set "
                          "spec.pod.serviceAccountName to one that exists and the operator allows", True)
    return PodProblem("FailedCreate", f"Job {job} cannot create its pods: {message}. Fix: see `kubectl describe "
                                      f"job {job}` (a quota, a LimitRange or an admission webhook refused them)",
                      True)


def oom_message(pods: list[PodView]) -> str | None:
    killed = [p.name for p in pods if p.oom_killed]
    if not killed:
        return None
    return (f"trainer pod(s) {', '.join(killed)} were OOMKilled (container memory limit exceeded). Fix: raise "
            "spec.pod.resources.limits.memory, or lower training.batchSize or training.maxSeqLength")

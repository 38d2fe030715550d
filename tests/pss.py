"""The restricted Pod Security Standard as a reusable assertion for rendered pod specs.

``assert_restricted(pod_spec)`` checks what the Kubernetes "restricted" profile enforces that a rendered
manifest can show: no host namespaces or hostPath volumes, non-root, no privilege escalation, capabilities
dropped (only NET_BIND_SERVICE may be added), a RuntimeDefault or Localhost seccomp profile, and no privileged
containers, for every container and init container. ``restricted_problems`` returns the findings instead.
"""

from __future__ import annotations

from typing import Any

ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}


def restricted_problems(pod_spec: dict[str, Any]) -> list[str]:
    """Every way ``pod_spec`` (a PodSpec dict) breaks the restricted profile; empty when it meets it."""
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"spec.{field} must not be true")
    for volume in pod_spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"volume {volume.get('name')!r} is a hostPath volume")

    pod_ctx = pod_spec.get("securityContext") or {}
    pod_non_root = pod_ctx.get("runAsNonRoot")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_non_root is False:
        problems.append("spec.securityContext.runAsNonRoot must not be false")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser must not be 0")
    if pod_seccomp is not None and pod_seccomp not in ALLOWED_SECCOMP:
        problems.append(f"spec.securityContext.seccompProfile.type {pod_seccomp!r} is not allowed")

    containers = [("containers", c) for c in pod_spec.get("containers") or []]
    containers += [("initContainers", c) for c in pod_spec.get("initContainers") or []]
    if not containers:
        problems.append("pod has no containers")
    for kind, container in containers:
        where = f"{kind}[{container.get('name')!r}]"
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged must not be true")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
        non_root = ctx.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (pod or container level)")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ALLOWED_SECCOMP:
            problems.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost (pod or "
                            f"container level), got {seccomp!r}")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities.drop must include ALL")
        extra = set(caps.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
        if extra:
            problems.append(f"{where}: capabilities.add may only hold NET_BIND_SERVICE, got {sorted(extra)}")
    return problems


def assert_restricted(pod_spec: dict[str, Any]) -> None:
    """Fail with every finding when ``pod_spec`` does not meet the restricted Pod Security Standard."""
    problems = restricted_problems(pod_spec)
    assert not problems, "not restricted:\n  " + "\n  ".join(problems)

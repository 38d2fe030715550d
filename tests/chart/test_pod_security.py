"""The operator pod meets the restricted Pod Security Standard in every case, and the checker (tests/pss.py) reports
each violation."""

from __future__ import annotations

import copy

import pytest

from tests.chart.rendering import only
from tests.pss import assert_restricted, restricted_problems


def test_operator_pod_meets_the_restricted_pod_security_standard(objects):
    for case, objs in objects.items():
        pod = only(objs, "Deployment")["spec"]["template"]["spec"]
        assert_restricted(pod)
        assert pod["securityContext"]["runAsUser"] == 10001
        ctx = pod["containers"][0]["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsUser"] == 10001, case
        tmp = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}["/tmp"]
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[tmp]


def test_restricted_checker_reports_each_violation():
    good = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}
    assert restricted_problems(good) == []
    cases = {
        "hostNetwork": lambda p: p.update(hostNetwork=True),
        "hostPID": lambda p: p.update(hostPID=True),
        "hostIPC": lambda p: p.update(hostIPC=True),
        "hostPath": lambda p: p.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        "runAsNonRoot": lambda p: p["securityContext"].pop("runAsNonRoot"),
        "seccompProfile": lambda p: p["securityContext"].pop("seccompProfile"),
        "privileged": lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        "allowPrivilegeEscalation": lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        "drop must include ALL": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        "SYS_ADMIN": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "initContainers['init']": lambda p: p.update(initContainers=[{"name": "init"}]),
    }
    for needle, breaks in cases.items():
        pod = copy.deepcopy(good)
        breaks(pod)
        problems = restricted_problems(pod)
        assert any(needle in problem for problem in problems), (needle, problems)
        with pytest.raises(AssertionError):
            assert_restricted(pod)
    # Container-level seccomp counts when the pod has none.
    pod = copy.deepcopy(good)
    pod["securityContext"].pop("seccompProfile")
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    assert restricted_problems(pod) == []

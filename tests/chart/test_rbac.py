"""The chart's RBAC: exactly the verbs the operator uses, cluster-wide or per watched namespace, with no wildcards
and no access to Secrets."""

from __future__ import annotations

from tests.chart.rendering import FULLNAME, NAMESPACE, objects_of, of_kind, only, render_raw, rule_map

EXPECTED_NAMESPACED_RULES = {  # the calls the operator makes: runtime/reconciler.py, kopf watches and Events
    ("gemmaft.dev", "gemmafinetunes"): {"get", "list", "watch"},
    ("gemmaft.dev", "gemmafinetunes/status"): {"patch"},
    ("batch", "jobs"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "configmaps"): {"create"},
    ("", "services"): {"create", "delete"},  # a slice's headless Service; the serving Service
    ("apps", "deployments"): {"create", "patch", "delete"},  # spec.serving's vLLM Deployment (runtime/serving.py)
    ("", "events"): {"create", "list", "watch"},  # watch: the Job controller's FailedCreate Events
}
EXPECTED_CLUSTER_READS = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
}


def test_cluster_wide_mode_uses_one_cluster_role_with_exactly_the_listed_verbs(objects):
    objs = objects["defaults"]
    assert of_kind(objs, "Role") == [] and of_kind(objs, "RoleBinding") == []
    role = only(objs, "ClusterRole")
    assert rule_map(role["rules"]) == EXPECTED_NAMESPACED_RULES | EXPECTED_CLUSTER_READS
    binding = only(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_namespaced_mode_uses_a_role_per_watched_namespace(objects, chart):
    objs = objects["namespaced"]
    roles = {r["metadata"]["namespace"]: r for r in of_kind(objs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(objs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"a", "b"}
    for ns, role in roles.items():
        assert rule_map(role["rules"]) == EXPECTED_NAMESPACED_RULES
        assert bindings[ns]["roleRef"]["kind"] == "Role"
        assert bindings[ns]["roleRef"]["name"] == role["metadata"]["name"]
        assert bindings[ns]["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    discovery = only(objs, "ClusterRole")
    assert rule_map(discovery["rules"]) == EXPECTED_CLUSTER_READS
    assert only(objs, "ClusterRoleBinding")["roleRef"]["name"] == discovery["metadata"]["name"]
    strict = objects_of(render_raw(chart, {"watchNamespaces": ["a"], "rbac": {"clusterScopedReads": False}}))
    assert of_kind(strict, "ClusterRole") == [] and of_kind(strict, "ClusterRoleBinding") == []
    assert len(of_kind(strict, "Role")) == 1
    no_rbac = objects_of(render_raw(chart, {"rbac": {"create": False}}))
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in no_rbac}


def test_rbac_has_no_wildcards_and_no_secrets(objects):
    rbac_objects = [o for objs in objects.values() for o in objs if o["kind"] in ("Role", "ClusterRole")]
    assert rbac_objects
    for role in rbac_objects:
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), rule
            assert not {"secrets", "escalate", "bind", "impersonate"} & (set(rule["resources"]) | set(rule["verbs"]))

"""The trainer and operator service accounts, the metrics Service, the optional ServiceMonitor, and the
NetworkPolicy that admits only the metrics port."""

from __future__ import annotations

from tests.chart.rendering import CASES, FULLNAME, NAMESPACE, objects_of, of_kind, only, render_raw


def test_trainer_service_account_per_namespace_with_workload_identity(objects, chart):
    def trainer_accounts(objs):
        return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in of_kind(objs, "ServiceAccount")
                if o["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"}

    assert set(trainer_accounts(objects["defaults"])) == {(NAMESPACE, "gemma-trainer")}
    assert set(trainer_accounts(objects["namespaced"])) == {("a", "gemma-trainer"), ("b", "gemma-trainer")}
    custom = trainer_accounts(objects["custom"])
    assert custom[(NAMESPACE, "trainer")]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "t@proj.iam.gserviceaccount.com"}
    for sa in custom.values():
        assert sa["automountServiceAccountToken"] is False
    explicit = trainer_accounts(objects_of(render_raw(chart, {"trainerServiceAccount": {"namespaces": ["ml"]}})))
    assert set(explicit) == {("ml", "gemma-trainer")}
    none = objects_of(render_raw(chart, {"trainerServiceAccount": {"create": False}}))
    assert trainer_accounts(none) == {}
    operator_sa = only([o for o in objects["defaults"] if o["kind"] == "ServiceAccount"
                        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"], "ServiceAccount")
    assert operator_sa["metadata"]["name"] == FULLNAME and operator_sa["automountServiceAccountToken"] is True


def test_metrics_service_and_optional_service_monitor(objects):
    assert of_kind(objects["defaults"], "ServiceMonitor") == []
    objs = objects["monitoring"]
    service = only(objs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = only(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = only(objs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_network_policy_admits_only_the_metrics_port(objects):
    policy = only(objects["custom"], "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert policy["spec"]["ingress"][0]["from"] == CASES["custom"]["networkPolicy"]["metricsFrom"]
    assert "from" not in only(objects["defaults"], "NetworkPolicy")["spec"]["ingress"][0]

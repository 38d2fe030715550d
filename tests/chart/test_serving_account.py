"""The serving ServiceAccount (spec.serving's vLLM pods) and the operator's serving settings."""

from __future__ import annotations

from tests.chart.rendering import objects_of, of_kind, only, render_raw


def serving_accounts(objs):
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in of_kind(objs, "ServiceAccount")
            if o["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"}


def test_chart_creates_the_serving_service_account_without_a_token_and_passes_its_settings(chart):
    objs = objects_of(render_raw(chart, {
        "watchNamespaces": ["a", "b"],
        "serving": {"image": "registry/vllm:1", "serviceAccount": {
            "name": "server", "annotations": {"iam.gke.io/gcp-service-account": "s@p.iam.gserviceaccount.com"}}}}))
    accounts = serving_accounts(objs)
    assert set(accounts) == {("a", "server"), ("b", "server")}
    for sa in accounts.values():
        assert sa["automountServiceAccountToken"] is False
        assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "s@p.iam.gserviceaccount.com"}
    [container] = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GEMMAFT_SERVING_IMAGE"] == "registry/vllm:1" and env["GEMMAFT_SERVING_SERVICE_ACCOUNT"] == "server"
    assert serving_accounts(objects_of(render_raw(chart, {"serving": {"serviceAccount": {"create": False}}}))) == {}

"""The helm_release that installs the local chart, and its values checked against the chart's own
values.schema.json."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.terraform.parse import CHART, TF, tf_resource

# What each expression in local.operator_values stands for in a sample apply.
SAMPLE = {
    "${local.registry_url}": "us-central1-docker.pkg.dev/my-proj/gemmaft",
    "${local.operator_image}": "gemmaft-operator",
    "${var.image_tag}": "0.1.0",
    "${local.trainer_image_gpu}": "us-central1-docker.pkg.dev/my-proj/gemmaft/gemmaft-trainer-gpu:0.1.0",
    "${local.trainer_image_tpu}": "us-central1-docker.pkg.dev/my-proj/gemmaft/gemmaft-trainer-tpu:0.1.0",
    "${local.trainer_image_cpu}": "us-central1-docker.pkg.dev/my-proj/gemmaft/gemmaft-trainer-cpu:0.1.0",
    '${var.restrict_trainer_images ? ["${local.registry_url}/"] : []}': ["us-central1-docker.pkg.dev/my-proj/gemmaft/"],
    "${var.trainer_namespaces}": ["ml", "research"],
    "${var.operator_ksa_name}": "gemma-finetune-operator",
    "${var.trainer_ksa_name}": "gemma-trainer",
    "${var.serving_ksa_name}": "gemma-server",
    "${google_service_account.server.email}": "gemmaft-server@my-proj.iam.gserviceaccount.com",
    "${google_service_account.operator.email}": "gemmaft-operator@my-proj.iam.gserviceaccount.com",
    "${google_service_account.trainer.email}": "gemmaft-trainer@my-proj.iam.gserviceaccount.com",
}


def _sample(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sample(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sample(v) for v in value]
    if isinstance(value, str) and "${" in value:
        assert value in SAMPLE, f"add a sample value for {value!r} to SAMPLE"
        return copy.deepcopy(SAMPLE[value])
    return value


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_helm_release_installs_the_local_chart_when_enabled(tf):
    h = tf_resource(tf, "helm_release", "operator")
    assert h["count"] == "${var.install_operator ? 1 : 0}"
    assert h["chart"] == "${path.module}/../charts/gemma-finetune-operator"
    assert (TF / ".." / "charts" / "gemma-finetune-operator" / "Chart.yaml").resolve().is_file()
    assert h["values"] == ["${yamlencode(local.operator_values)}"]
    assert h["namespace"] == "${var.operator_namespace}"


def test_operator_values_fit_the_chart_schema(tf):
    values = _sample(tf["locals"]["operator_values"])
    wi = "iam.gke.io/gcp-service-account"
    assert values["serviceAccount"]["annotations"][wi].endswith(".iam.gserviceaccount.com")
    assert values["trainerServiceAccount"]["annotations"][wi].endswith(".iam.gserviceaccount.com")
    assert tf["locals"]["operator_values"]["trainerServiceAccount"]["name"] == "${var.trainer_ksa_name}"
    assert tf["locals"]["operator_values"]["serviceAccount"]["name"] == "${var.operator_ksa_name}"
    assert tf["locals"]["operator_values"]["trainerImages"]["gpu"] == "${local.trainer_image_gpu}"

    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    merged = _merge(defaults, values)
    jsonschema.validate(merged, schema)  # an unknown key or a bad value fails as `helm install` would
    bad = _merge(merged, {"trainerServiceAccount": {"annotation": {}}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)

"""The operator's image policy covers spec.serving.image; a refused serving spec creates nothing."""

from __future__ import annotations

from gemma_operator.reconcile import Observed, decide
from gemma_operator.settings import OperatorSettings

from tests.conftest import manifest

SERVING = {"accelerator": {"type": "nvidia-l4"}}


def body(**serving) -> dict:
    obj = manifest(serving={**SERVING, **serving})
    obj["metadata"].update(uid="u1", generation=1)
    return obj


def test_a_serving_image_outside_the_policy_is_refused_and_the_default_repository_is_allowed():
    policy = OperatorSettings()
    refused = decide(Observed(body(image="docker.io/evil/vllm:1"), now="T0"), policy)
    assert refused.create == [] and refused.apply == [] and refused.wire_status["phase"] == "Failed"
    assert refused.wire_status["message"].startswith("spec.serving.image: image 'docker.io/evil/vllm:1' is not allowed")
    ok = decide(Observed(body(image="vllm/vllm-openai:v0.12.0"), now="T0"), policy)
    assert ok.wire_status["phase"] != "Failed"


def test_no_deployment_before_a_run_has_passed():
    d = decide(Observed(body(), now="T0"), OperatorSettings())
    assert d.apply == [] and [o["kind"] for o in d.create] == ["ConfigMap", "Job"]
    assert d.wire_status["serving"] == {"pinned": False, "message": "no run has passed its gate yet"}

"""The Hugging Face token only ever travels as a Secret reference; images outside the allowed prefixes are refused.

The chart's RBAC (no wildcards, no access to Secrets) is tested in tests/chart/test_rbac.py, and the basic
ImageNotAllowed refusal in tests/operator/test_lifecycle.py; this file adds the token-leak checks and the
prefix-confusion case.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request

import pytest
import yaml
from gemma_api import parse_finetune
from gemma_local.cluster import RESOURCES
from gemma_operator.render import RenderSettings, render_run

from tests.conftest import manifest
from tests.operator.harness import apply, wait_for
from tests.operator.test_lifecycle import conditions, ft_status, phase_is

SENTINEL = "hf_SENTINELtokenDoNotLeak7QxZ3kP9wV2mR8"
TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{20,}")
TOKEN_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "HF_API_TOKEN")


def _env_of(job: dict) -> list[dict]:
    return job["spec"]["template"]["spec"]["containers"][0]["env"]


@pytest.mark.parametrize("accelerator", [{"type": "nvidia-tesla-t4", "count": 2}, {"type": "tpu-v3", "topology": "4x4"}])
def test_rendered_objects_carry_only_a_reference_to_the_token(accelerator):
    ft = parse_finetune(manifest(model="gemma-2-2b", modelUri="hf://google/gemma-2-2b", accelerator=accelerator,
                                 pod={"hfTokenSecretRef": {"name": "hf-token", "key": "token"},
                                      "env": [{"name": "WANDB_MODE", "value": "offline"}]}))
    objects = render_run(ft, RenderSettings(), "ml")
    dumped = json.dumps(objects)
    assert not TOKEN_LIKE.search(dumped)
    assert [o["kind"] for o in objects if o["kind"] == "Secret"] == []
    (job,) = [o for o in objects if o["kind"] == "Job"]
    token_env = [e for e in _env_of(job) if e["name"] in TOKEN_ENV_NAMES]
    assert token_env == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    run_config = yaml.safe_load(config_map["data"]["run.yaml"])
    assert run_config["spec"]["pod"]["hfTokenSecretRef"] == {"name": "hf-token", "key": "token"}
    assert not any(name in config_map["data"]["run.yaml"] for name in TOKEN_ENV_NAMES)


def _everything_the_operator_wrote(cluster) -> str:
    kinds = ("GemmaFineTune", "Job", "Pod", "ConfigMap", "Service", "Event")
    return json.dumps({kind: cluster.list(kind, None) for kind in kinds})


def _secret_requests(cluster) -> int:
    return cluster._sync(lambda: sum(1 for r in cluster.emulator._requests if r.resource == RESOURCES["Secret"]))


@pytest.mark.slow
def test_the_token_in_a_secret_never_reaches_logs_status_events_or_config_maps(
        cluster, kubeconfig, operator_factory, monkeypatch):
    for name in TOKEN_ENV_NAMES:  # the operator must not need, nor find, a token of its own
        monkeypatch.delenv(name, raising=False)
    # The Secret as an admin creates it; the API serves it to anyone who asks, as a cluster would.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token", "namespace": "default"},
              "type": "Opaque", "data": {"token": base64.b64encode(SENTINEL.encode()).decode()}}
    cluster.create("Secret", secret)
    served = json.load(urllib.request.urlopen(f"{cluster.url}/api/v1/namespaces/default/secrets/hf-token", timeout=10))
    assert base64.b64decode(served["data"]["token"]).decode() == SENTINEL
    secret_calls = _secret_requests(cluster)

    prefixes = "registry.example/gemmaft/,eu.gcr.io/team/"
    op = operator_factory(GEMMAFT_ALLOWED_IMAGE_PREFIXES=prefixes,
                          GEMMAFT_IMAGE_GPU="registry.example/gemmaft/trainer-gpu:0.1.0").start()
    allowed = manifest(modelUri="hf://google/gemma-2-2b", pod={"hfTokenSecretRef": {"name": "hf-token"}})
    apply(kubeconfig, allowed)
    # Prefix confusion: "registry.example/gemmaft-evil/" shares the characters but not the path.
    refused = manifest(pod={"image": "registry.example/gemmaft-evil/trainer:1",
                            "hfTokenSecretRef": {"name": "hf-token"}})
    refused["metadata"]["name"] = "refused"
    apply(kubeconfig, refused)

    running = wait_for(phase_is(cluster, "Running"), what="phase Running")
    job = cluster.get("Job", running["jobName"])
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/gemmaft/trainer-gpu:0.1.0"
    assert [e for e in _env_of(job) if e["name"] == "HF_TOKEN"] == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]

    status = wait_for(phase_is(cluster, "Failed", "refused"), what="ImageNotAllowed")
    ready = conditions(status)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ImageNotAllowed"
    for prefix in prefixes.split(","):
        assert prefix in ready["message"], ready["message"]
    assert "registry.example/gemmaft-evil/trainer:1" in ready["message"]
    assert [j for j in cluster.list("Job") if j["metadata"]["labels"].get("gemmaft.dev/finetune") == "refused"] == []

    (pod,) = cluster.pods_of(running["jobName"])
    cluster.succeed_pod(pod["metadata"]["name"])
    wait_for(phase_is(cluster, "Succeeded"), what="phase Succeeded")
    wait_for(lambda: {"JobCreated", "Succeeded"} <= {e["reason"] for e in cluster.events_for("demo")}, what="Events")
    time.sleep(1.0)  # a few more reconciles (interval 0.5 s) before looking
    op.stop()

    written = _everything_the_operator_wrote(cluster)
    logs = op.logs()
    assert "registry.example/gemmaft-evil" in written and "hf-token" in written  # the search looks at real data
    assert "Reconcil" in logs or "created" in logs, logs[-2000:]
    encoded = base64.b64encode(SENTINEL.encode()).decode()
    for where, text in (("operator log", logs), ("objects, status and Events", written)):
        assert SENTINEL not in text and encoded not in text, f"token found in {where}"
        assert not TOKEN_LIKE.search(text), f"token-like value in {where}: {TOKEN_LIKE.search(text).group()}"
    assert ft_status(cluster)["phase"] == "Succeeded"
    assert _secret_requests(cluster) == secret_calls, "the operator read or wrote a Secret"


@pytest.mark.parametrize("name", ["HF_TOKEN", "GEMMAFT_RUN_URI", "STORAGE_EMULATOR_HOST",
                                  "GOOGLE_APPLICATION_CREDENTIALS", "AWS_SECRET_ACCESS_KEY", "GCE_METADATA_HOST",
                                  "hf_token"])
def test_reserved_env_names_are_refused_with_the_field_and_the_fix(name):
    """Before: pod.env accepted any name (a plain-text token in the ConfigMap, storage redirected, ...)."""
    from gemma_api import SpecError

    obj = manifest(pod={"env": [{"name": "WANDB_MODE", "value": "offline"}, {"name": name, "value": "x"}]})
    with pytest.raises(SpecError) as err:
        parse_finetune(obj)
    (problem,) = err.value.problems
    assert problem.field == "spec.pod.env[1].name" and "reserved" in problem.message
    assert "hfTokenSecretRef" in problem.message if name.upper() == "HF_TOKEN" else "remove it" in problem.message


def test_plain_env_names_still_pass():
    ft = parse_finetune(manifest(pod={"env": [{"name": "WANDB_MODE", "value": "offline"}, {"name": "TOKENIZERS_X"}]}))
    assert [e.name for e in ft.spec.pod.env] == ["WANDB_MODE", "TOKENIZERS_X"]

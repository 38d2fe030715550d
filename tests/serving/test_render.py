"""The serving Deployment and Service: schemas, checkov, restricted pods, the engine's arguments, the GCS volume."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from gemma_api import parse_finetune
from gemma_operator.render import RenderSettings, ServedRun, render_serving

from tests.api.test_model import run_cli
from tests.conftest import REPO, manifest
from tests.pss import assert_restricted

K8S_VERSION = "1.32"
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
CHECKOV_CONFIG = Path(__file__).with_name("checkov.yaml")
RUN = ServedRun("abc123def0", "gs://out/runs/abc123def0")

CASES = {
    "gemma3-l4-lora": {"model": "gemma-3-1b-it", "serving": {"accelerator": {"type": "nvidia-l4", "count": 1},
                                                            "replicas": 1}},
    "gemma2-t4-fp32": {"serving": {"accelerator": {"type": "nvidia-tesla-t4"}, "maxModelLength": 2048}},
    "gs-base-spot-h100x2": {"model": "gemma-2-9b", "modelUri": "gs://weights/gemma-2-9b", "method": "qlora",
                            "pod": {"hfTokenSecretRef": {"name": "hf"}},
                            "serving": {"accelerator": {"type": "nvidia-h100-80gb", "count": 2, "spot": True},
                                        "replicas": 3, "resources": {"limits": {"memory": "100Gi"}}}},
    "full": {"model": "gemma-3-270m", "method": "full", "accelerator": {"type": "nvidia-l4"},
             "serving": {"accelerator": {"type": "nvidia-l4"}}},
    "freeze-merged": {"method": "freeze", "output": {"uri": "gs://out/runs", "mergeAdapter": True},
                      "serving": {"accelerator": {"type": "nvidia-l4"}}},
}


def render(case: str, run: ServedRun = RUN) -> dict[str, dict]:
    obj = manifest(**CASES[case])
    return {o["kind"]: o for o in render_serving(parse_finetune(obj), RenderSettings(), "ml", run)}


def pod(objs: dict) -> dict:
    return objs["Deployment"]["spec"]["template"]


def vllm(objs: dict) -> dict:
    [container] = pod(objs)["spec"]["containers"]
    return container


def arg(container: dict, flag: str) -> str:
    return container["args"][container["args"].index(flag) + 1]


@pytest.mark.parametrize("case", CASES)
def test_serving_objects_pass_the_kubernetes_schema_strictly_and_the_restricted_profile(case):
    objs = render(case)
    assert set(objs) == {"Deployment", "Service"}
    for obj in objs.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert_restricted(pod(objs)["spec"])


def test_lora_serves_the_base_from_the_hub_with_the_runs_adapter_under_the_finetunes_name():
    objs = render("gemma3-l4-lora")
    c = vllm(objs)
    assert arg(c, "--model") == "google/gemma-3-1b-it" and arg(c, "--served-model-name") == "gemma-3-1b-it"
    assert "--enable-lora" in c["args"] and arg(c, "--lora-modules") == "demo=/models/run"
    assert arg(c, "--max-lora-rank") == "16" and arg(c, "--dtype") == "bfloat16"
    assert arg(c, "--max-model-len") == "1024" and arg(c, "--tensor-parallel-size") == "1"
    [volume] = [v for v in pod(objs)["spec"]["volumes"] if "csi" in v]
    assert volume["csi"] == {"driver": "gcsfuse.csi.storage.gke.io", "readOnly": True,
                             "volumeAttributes": {"bucketName": "out",
                                                  "mountOptions": "implicit-dirs,only-dir=runs/abc123def0/adapter"}}
    assert pod(objs)["metadata"]["annotations"] == {"gke-gcsfuse/volumes": "true"}


def test_a_t4_serves_gemma_in_float32():
    assert arg(vllm(render("gemma2-t4-fp32")), "--dtype") == "float32"


def test_placement_and_resources_come_from_the_accelerator_registry():
    objs = render("gs-base-spot-h100x2")
    spec = pod(objs)["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
                                    "cloud.google.com/gke-spot": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    resources = vllm(objs)["resources"]
    assert resources["limits"] == {"memory": "100Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"]["cpu"] == "16" and resources["requests"]["memory"] == "100Gi"
    assert objs["Deployment"]["spec"]["replicas"] == 3
    assert arg(vllm(objs), "--tensor-parallel-size") == "2" and arg(vllm(objs), "--model") == "/models/base"
    mounts = {m["name"]: m["mountPath"] for m in vllm(objs)["volumeMounts"]}
    assert mounts["base-weights"] == "/models/base" and mounts["run-weights"] == "/models/run"
    env = {e["name"]: e for e in vllm(objs)["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}


def test_full_and_freeze_serve_whole_weights_without_lora():
    full, freeze = vllm(render("full")), vllm(render("freeze-merged"))
    assert arg(full, "--model") == "/models/run" and "--enable-lora" not in full["args"]
    assert arg(freeze, "--served-model-name") == "demo" and "--enable-lora" not in freeze["args"]
    [volume] = [v for v in pod(render("freeze-merged"))["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["volumeAttributes"]["mountOptions"].endswith("only-dir=runs/abc123def0/merged")


def test_another_run_changes_the_pod_template_but_not_the_service():
    one, two = render("gemma3-l4-lora"), render("gemma3-l4-lora", ServedRun("fedcba9876", "gs://out/runs/fedcba9876"))
    assert pod(one) != pod(two) and pod(two)["metadata"]["labels"]["gemmaft.dev/served-run"] == "fedcba9876"
    assert one["Service"] == two["Service"]
    assert one["Service"]["spec"]["selector"] == one["Deployment"]["spec"]["selector"]["matchLabels"]
    assert one["Deployment"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed (make tools-venv installs it)")
def test_checkov_finds_no_failed_checks_on_the_serving_objects(tmp_path):
    for case in CASES:
        (tmp_path / f"{case}.yaml").write_text(yaml.safe_dump_all(list(render(case).values())))
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--quiet",
         "--config-file", str(CHECKOV_CONFIG)], check=False, capture_output=True, text=True, timeout=300)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == []
    assert reports[0]["summary"]["passed"] > 20


def test_cli_serve_manifest_prints_yaml_documents_for_the_run_asked():
    text = yaml.safe_dump(manifest(**CASES["gemma3-l4-lora"]))
    out = run_cli("serve-manifest", "-f", "-", "--run", "fedcba9876", stdin=text)
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert "only-dir=runs/fedcba9876/adapter" in out.stdout


def test_cli_serve_manifest_refuses_what_cannot_be_served_with_the_field():
    bad = manifest(model="gemma-3-1b-it", lora={"r": 64},
                   serving={"accelerator": {"type": "nvidia-l4"}, "maxLoraRank": 16})
    out = run_cli("serve-manifest", "-f", "-", stdin=yaml.safe_dump(bad))
    assert out.returncode == 2 and "spec.serving.maxLoraRank: the adapter has rank 64" in out.stderr
    unserved = run_cli("serve-manifest", "-f", "-", stdin=yaml.safe_dump(manifest()))
    assert unserved.returncode == 2 and "spec.serving is not set" in unserved.stderr

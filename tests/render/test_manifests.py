"""Rendered objects: placement per accelerator, Job semantics, names, secrets, and real schema validation."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from gemma_api import RunConfig, parse_finetune
from gemma_operator.render import RenderSettings, names, render_run
from gemma_operator.settings import OperatorSettings

from tests.conftest import EXAMPLES, manifest
from tests.pss import assert_restricted

K8S_VERSION = "1.32"
SETTINGS = RenderSettings()
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

MATRIX = {
    "t4": {"accelerator": {"type": "nvidia-tesla-t4"}},
    "t4x4-spot": {"accelerator": {"type": "nvidia-tesla-t4", "count": 4, "spot": True}},
    "tpu-2x2": {"accelerator": {"type": "tpu-v3", "topology": "2x2"}},
    "tpu-4x4-spot": {"accelerator": {"type": "tpu-v3", "topology": "4x4", "spot": True}},
    "tpu-8x8": {"accelerator": {"type": "tpu-v3", "topology": "8x8"}},
    "cpu-local": {"accelerator": {"type": "cpu"}, "output": {"uri": "./out"}},
    "kueue-secrets": {
        "pod": {
            "queueName": "team-a", "priorityClassName": "low", "hfTokenSecretRef": {"name": "hf"},
            "env": [{"name": "WANDB_MODE", "value": "offline"}], "labels": {"team": "a"},
            "annotations": {"note": "x"}, "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            "resources": {"requests": {"cpu": "4", "memory": "24Gi"}, "limits": {"memory": "30Gi"}},
        },
        "runPolicy": {"activeDeadlineSeconds": 86400, "ttlSecondsAfterFinished": 3600},
    },
    "tracking": {"tracking": {"reportTo": ["mlflow", "wandb"], "experiment": "records",
                              "secretRef": {"name": "tracking"}}},
}


def render(overrides: dict, name: str = "demo", attempt: int = 0) -> dict[str, dict]:
    obj = manifest(**overrides)
    obj["metadata"]["name"] = name
    objects = render_run(parse_finetune(obj), SETTINGS, namespace="ml", attempt=attempt)
    return {o["kind"]: o for o in objects}


def pod_spec(objs: dict) -> dict:
    return objs["Job"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("case", MATRIX, ids=list(MATRIX))
def test_every_object_passes_the_kubernetes_schema_strictly(case):
    for obj in render(MATRIX[case]).values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_render_valid_objects(path):
    for obj in render_run(parse_finetune(yaml.safe_load(path.read_text())), SETTINGS, namespace="ml"):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_t4_selects_t4_nodes_tolerates_the_taint_and_limits_gpus():
    spec = pod_spec(render(MATRIX["t4x4-spot"]))
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
                                    "cloud.google.com/gke-spot": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}


def test_tpu_single_host_is_one_pod_on_a_v3_device():
    objs = render(MATRIX["tpu-2x2"])
    spec = pod_spec(objs)
    assert spec["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v3-device",
                                    "cloud.google.com/gke-tpu-topology": "2x2"}
    assert spec["containers"][0]["resources"]["limits"] == {"google.com/tpu": "4"}
    assert "completionMode" not in objs["Job"]["spec"] and "Service" not in objs
    assert {"name": "PJRT_DEVICE", "value": "TPU"} in spec["containers"][0]["env"]


@pytest.mark.parametrize("topology, hosts", [("4x4", 4), ("8x8", 16)])
def test_tpu_multi_host_is_an_indexed_job_with_a_headless_service(topology, hosts):
    objs = render({"accelerator": {"type": "tpu-v3", "topology": topology}})
    job, svc = objs["Job"], objs["Service"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == \
        ("Indexed", hosts, hosts)
    spec = pod_spec(objs)
    assert spec["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v3-slice"
    assert spec["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == topology
    assert spec["subdomain"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_job_semantics_shared_by_every_accelerator():
    for case in MATRIX.values():
        objs = render(case)
        job = objs["Job"]
        rules = job["spec"]["podFailurePolicy"]["rules"]
        # invalid input (2) and a non-finite loss (3) are permanent: never retried
        assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [2, 3, 4, 5]
        if "Service" in objs:  # a slice: the first lost host fails the Job; the operator restarts all hosts
            assert job["spec"]["backoffLimit"] == 0 and len(rules) == 1
        else:
            assert {"type": "DisruptionTarget", "status": "True"} in rules[1]["onPodConditions"]
        spec = pod_spec(objs)
        assert spec["restartPolicy"] == "Never"
        shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert {"/dev/shm", "/etc/gemmaft", "/tmp"} <= mounts
        assert job["metadata"]["labels"]["gemmaft.dev/finetune"] == "demo"


@pytest.mark.parametrize("case", MATRIX, ids=list(MATRIX))
def test_trainer_pods_meet_the_restricted_profile(case):
    assert_restricted(pod_spec(render(MATRIX[case])))


def test_config_map_carries_the_run_config_the_trainer_reads():
    objs = render(MATRIX["t4"])
    config = RunConfig.model_validate(yaml.safe_load(objs["ConfigMap"]["data"]["run.yaml"]))
    assert config.spec == parse_finetune(manifest(**MATRIX["t4"])).spec
    assert config.run_uri == f"gs://out/runs/{config.run_id}"
    volume = next(v for v in pod_spec(objs)["volumes"] if v["name"] == "run-config")
    assert volume["configMap"]["name"] == objs["ConfigMap"]["metadata"]["name"]


def test_kueue_owns_admission_and_secrets_stay_references():
    objs = render(MATRIX["kueue-secrets"])
    job = objs["Job"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True
    env = {e["name"]: e for e in pod_spec(objs)["containers"][0]["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert "HF_TOKEN" not in objs["ConfigMap"]["data"]["run.yaml"]
    assert pod_spec(objs)["nodeSelector"] == {"pool": "gpu", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def test_pod_resources_cannot_change_the_accelerator_count():
    objs = render({"pod": {"resources": {"limits": {"nvidia.com/gpu": "8", "memory": "20Gi"}}}})
    limits = pod_spec(objs)["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "1", "memory": "20Gi"}
    requests = pod_spec(objs)["containers"][0]["resources"]["requests"]
    assert "memory" not in requests and requests["cpu"] == "3"  # the user's limit wins over a default request


@pytest.mark.parametrize("case", MATRIX, ids=list(MATRIX))
def test_trainer_pods_are_never_best_effort_and_the_model_cache_is_bounded(case):
    """Before: no requests (BestEffort) and an unbounded emptyDir for the model weights."""
    spec = pod_spec(render(MATRIX[case]))
    requests = spec["containers"][0]["resources"]["requests"]
    assert {"cpu", "memory", "ephemeral-storage"} <= set(requests) or "limits" in spec["containers"][0]["resources"]
    scratch = next(v for v in spec["volumes"] if v["name"] == "scratch")
    assert scratch["emptyDir"]["sizeLimit"].endswith("Gi")


def test_default_requests_scale_with_the_accelerator_and_the_model():
    one = pod_spec(render(MATRIX["t4"]))["containers"][0]["resources"]["requests"]
    four = pod_spec(render(MATRIX["t4x4-spot"]))["containers"][0]["resources"]["requests"]
    assert int(four["cpu"]) == 4 * int(one["cpu"]) and four["memory"] == f"{4 * int(one['memory'][:-2])}Gi"
    small = pod_spec(render({"model": "gemma-2-2b", **MATRIX["tpu-2x2"]}))
    big = pod_spec(render({"model": "gemma-2-27b", **MATRIX["tpu-8x8"]}))
    size = {n: int(next(v for v in s["volumes"] if v["name"] == "scratch")["emptyDir"]["sizeLimit"][:-2])
            for n, s in (("small", small), ("big", big))}
    assert size["big"] > 4 * size["small"]  # the cache holds the model: 27B needs far more than 2B
    assert big["containers"][0]["resources"]["requests"]["ephemeral-storage"] == f"{size['big']}Gi"


def test_all_hosts_of_a_slice_land_on_one_node_pool_and_no_other_slice_shares_it():
    objs = render(MATRIX["tpu-4x4-spot"])
    job_name = objs["Job"]["metadata"]["name"]
    affinity = pod_spec(objs)["affinity"]
    (together,) = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert together["topologyKey"] == "cloud.google.com/gke-nodepool"
    assert together["labelSelector"]["matchLabels"] == {"batch.kubernetes.io/job-name": job_name}
    (apart,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert apart["topologyKey"] == "cloud.google.com/gke-nodepool"
    assert {"key": "batch.kubernetes.io/job-name", "operator": "NotIn", "values": [job_name]} in \
        apart["labelSelector"]["matchExpressions"]
    assert "affinity" not in pod_spec(render(MATRIX["tpu-2x2"]))  # one host needs no grouping


def test_suspend_and_run_policy_reach_the_job():
    job = render({"runPolicy": {"suspend": True, "backoffLimit": 9, "ttlSecondsAfterFinished": 60}})["Job"]
    assert (job["spec"]["suspend"], job["spec"]["backoffLimit"], job["spec"]["ttlSecondsAfterFinished"]) == \
        (True, 9, 60)


@pytest.mark.parametrize("name", ["a", "9lives", "x" * 253, "team.alpha-" + "y" * 200, "a" * 52])
def test_names_fit_kubernetes_limits_for_any_finetune_name(name):
    objs = render({"accelerator": {"type": "tpu-v3", "topology": "32x32"}}, name=name, attempt=12)
    for obj in objs.values():
        assert DNS_1035.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63
    job = objs["Job"]["metadata"]["name"]
    assert len(f"{job}-{objs['Job']['spec']['completions'] - 1}") <= 63  # Indexed Job hostnames


def test_names_are_deterministic_and_distinct_per_run_and_attempt():
    long = "x" * 100
    assert names.job_name(long, "abc", 0) == names.job_name(long, "abc", 0)
    assert len({names.job_name(long, "abc", 0), names.job_name(long, "abc", 1), names.job_name(long, "abd", 0),
                names.job_name("x" * 99, "abc", 0)}) == 4


def test_default_images_come_from_settings_and_pod_image_wins():
    settings = OperatorSettings.from_env({"GEMMAFT_IMAGE_TPU": "reg/tpu:1"}).render_settings()
    ft = parse_finetune(manifest(accelerator={"type": "tpu-v3"}))
    assert pod_spec({o["kind"]: o for o in render_run(ft, settings, "ml")})["containers"][0]["image"] == "reg/tpu:1"
    ft = parse_finetune(manifest(pod={"image": "mine/trainer:2"}))
    assert pod_spec({o["kind"]: o for o in render_run(ft, settings, "ml")})["containers"][0]["image"] == "mine/trainer:2"


def test_cli_render_prints_every_object_as_multi_document_yaml():
    from tests.api.test_model import run_cli

    out = run_cli("render", "-f", str(EXAMPLES / "tpu-v3-32-multihost.yaml"), "-n", "team-x")
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service", "Job"]
    assert {d["metadata"]["namespace"] for d in docs} == {"team-x"}
    bad = run_cli("render", "-f", "-", stdin=yaml.safe_dump(manifest(method="qlora", accelerator={"type": "cpu"})))
    assert bad.returncode == 2 and "spec.method" in bad.stderr and bad.stdout == ""


@pytest.mark.parametrize("text", ["\U00013926", "emoji \U0001f600 and \\ud83d\\ude00 typed out", "tab\tand \x7f\x85"])
def test_any_unicode_in_pod_metadata_renders_as_given(text):
    """Values reach the objects unchanged, characters outside the BMP included (JSON writes those as UTF-16
    surrogate escapes, which YAML refuses: the hardening fuzz found an annotation that crashed the render)."""
    objs = render({"pod": {"annotations": {"note": text}, "labels": {"team": "ml"}}})
    assert objs["Job"]["spec"]["template"]["metadata"]["annotations"]["note"] == text


@pytest.mark.parametrize("rid", ["0434421780", "1e12345678", "0123456789", "1234567890", "00000000ab"])
def test_the_mounted_run_config_reads_back_with_the_same_run_id(tmp_path, rid):
    """Run ids are 10 hex digits: some read as numbers in YAML 1.2 (``0434421780``, ``1e12345678``), which the
    trainer's loader follows as kubectl does. PyYAML's own dump (YAML 1.1) left them bare, and a distillation's
    teacher pod failed with "runId: Input should be a valid string (got 434421780.0)"."""
    from gemma_trainer.config import load_run_config

    ft = parse_finetune(manifest())
    config = RunConfig.for_finetune(ft).model_copy(update={"run_id": rid})
    (cm,) = [o for o in render_run(ft, SETTINGS, "default", 0, config=config) if o["kind"] == "ConfigMap"]
    ((file, text),) = cm["data"].items()
    (tmp_path / file).write_text(text)
    assert load_run_config(str(tmp_path / file)).run_id == rid


def test_tracking_reaches_the_trainer_as_environment_and_its_secret_only_by_reference():
    ft = parse_finetune(manifest(**MATRIX["tracking"]))
    (job,) = [o for o in render_run(ft, SETTINGS, "default") if o["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    rid = RunConfig.for_finetune(ft).run_id
    assert env["MLFLOW_EXPERIMENT_NAME"] == env["WANDB_PROJECT"] == "records"
    assert (env["WANDB_RUN_ID"], env["WANDB_RESUME"]) == (rid, "allow")  # every attempt continues one W&B run
    assert container["envFrom"] == [{"secretRef": {"name": "tracking"}}]
    plain = next(o for o in render_run(parse_finetune(manifest()), SETTINGS, "default") if o["kind"] == "Job")
    assert "envFrom" not in plain["spec"]["template"]["spec"]["containers"][0]
    assert RunConfig.for_finetune(parse_finetune(manifest())).run_id == rid, "tracking is not part of the run id"

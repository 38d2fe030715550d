"""Structure of terraform/ (the GKE install): parsed with python-hcl2, formatted with `terraform fmt`, scanned by checkov.

The google provider cannot be downloaded here, so `terraform validate` cannot run; these tests read the HCL and
check what the configuration promises: the pools and their placement, Workload Identity, the bucket's safety
settings, the IAM bindings, the chart values (against the chart's own values.schema.json), and the variables.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import pytest
import yaml
from gemma_operator.api import facts

REPO = Path(__file__).resolve().parents[1]
TF = REPO / "terraform"
CHART = REPO / "charts" / "gemma-finetune-operator"
EXAMPLE_TFVARS = TF / "examples" / "terraform.tfvars.example"
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"

EXPECTED_FILES = {
    "versions.tf", "providers.tf", "variables.tf", "outputs.tf", "locals.tf", "apis.tf", "network.tf",
    "cluster.tf", "nodepools-system.tf", "nodepools-gpu.tf", "nodepools-tpu.tf", "storage.tf", "registry.tf",
    "iam.tf", "operator.tf",
}


# --- parsing -------------------------------------------------------------------------------------------------------


def _unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals and marks blocks; return plain Python values."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return _unquote(hcl2.load(f))


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    """Every .tf file of terraform/ merged: variables, outputs, locals, resources by (type, name), terraform blocks."""
    merged: dict[str, Any] = {"variable": {}, "output": {}, "locals": {}, "resource": {}, "data": {},
                              "module": {}, "terraform": [], "files": {}}
    for path in sorted(TF.glob("*.tf")):
        doc = _load(path)
        merged["files"][path.name] = path.read_text()
        for block in doc.get("variable", []):
            merged["variable"].update(block)
        for block in doc.get("output", []):
            merged["output"].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for block in doc.get("module", []):
            for name, body in block.items():
                assert name not in merged["module"], f"module {name} declared twice"
                merged["module"][name] = body
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, by_name in block.items():
                    for name, body in by_name.items():
                        assert (rtype, name) not in merged[kind], f"{rtype}.{name} declared twice"
                        merged[kind][(rtype, name)] = body
        merged["terraform"].extend(doc.get("terraform", []))
    return merged


def _res(tf: dict, rtype: str, name: str) -> dict:
    assert (rtype, name) in tf["resource"], f"missing resource {rtype}.{name}"
    return tf["resource"][(rtype, name)]


def _one(body: dict, block: str) -> dict:
    """The single nested block `block` of a resource body."""
    blocks = body.get(block)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {block} block, got {blocks!r}"
    return blocks[0]


def _resolve(tf: dict, value: Any) -> Any:
    """Follow a bare `${local.NAME}` reference to its literal value in locals.tf."""
    m = re.fullmatch(r"\$\{local\.(\w+)\}", value) if isinstance(value, str) else None
    return _resolve(tf, tf["locals"][m.group(1)]) if m else value


def _allowed(tf: dict, name: str) -> list:
    """The list in a variable's `contains([...], var.NAME)` validation."""
    for v in tf["variable"][name].get("validation", []):
        m = re.search(r"contains\((\[[^\]]*\]),\s*var\." + name + r"\)", v["condition"])
        if m:
            return json.loads(m.group(1))
    raise AssertionError(f"variable {name} has no contains([...], var.{name}) validation")


# --- files, providers, variables -----------------------------------------------------------------------------------


def test_one_file_per_concern():
    present = {p.name for p in TF.glob("*.tf")}
    assert EXPECTED_FILES <= present, f"missing: {sorted(EXPECTED_FILES - present)}"
    assert (TF / "README.md").is_file()
    assert EXAMPLE_TFVARS.is_file()


def test_provider_versions_are_pinned(tf):
    assert len(tf["terraform"]) == 1, "exactly one terraform block (versions.tf)"
    block = tf["terraform"][0]
    assert "required_version" in block
    providers: dict = {}
    for entry in block["required_providers"]:
        providers.update(entry)
    assert providers["google"] == {"source": "hashicorp/google", "version": ">= 7.17, < 8"}
    assert providers["google-beta"] == {"source": "hashicorp/google-beta", "version": ">= 7.17, < 8"}
    for name in ("helm", "kubernetes"):
        assert providers[name]["source"] == f"hashicorp/{name}"
    for name, p in providers.items():
        assert re.search(r">=\s*[\d.]+", p["version"]) and re.search(r"<\s*[\d.]+", p["version"]), (
            f"{name}: version {p['version']!r} needs a lower and an upper bound")


def test_every_variable_has_type_description_and_validation_when_constrained(tf):
    assert len(tf["variable"]) > 20
    for name, v in tf["variable"].items():
        assert v.get("type"), f"variable {name} has no type"
        assert isinstance(v.get("description"), str) and len(v["description"]) > 15, f"{name}: no description"
        if v["type"] not in ("bool", "${bool}"):
            assert v.get("validation"), f"variable {name} ({v['type']}) takes constrained values but has no validation"
            for rule in v["validation"]:
                assert f"var.{name}" in rule["condition"], f"{name}: validation does not test var.{name}"
                assert rule["error_message"].strip(), f"{name}: empty error_message"


def test_variables_used_and_references_declared(tf):
    text = "\n".join(tf["files"].values())
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    assert used_vars - set(tf["variable"]) == set(), "referenced but not declared"
    elsewhere = "\n".join(t for f, t in tf["files"].items() if f != "variables.tf")
    unused = {name for name in tf["variable"] if not re.search(rf"\bvar\.{name}\b", elsewhere)}
    assert unused == set(), f"declared but never used: {sorted(unused)}"
    used_locals = set(re.findall(r"\blocal\.(\w+)", text))
    assert used_locals - set(tf["locals"]) == set(), "locals referenced but not declared"


def test_outputs_have_descriptions(tf):
    for name in ("cluster_name", "bucket_name", "registry_url", "trainer_service_account_email",
                 "operator_service_account_email", "tpu_v3_slice_hosts", "get_credentials_command"):
        assert name in tf["output"], name
    for name, o in tf["output"].items():
        assert o.get("description"), f"output {name} has no description"


# --- cluster -------------------------------------------------------------------------------------------------------


def test_cluster_is_standard_with_workload_identity_and_private_nodes(tf):
    c = _res(tf, "google_container_cluster", "this")
    assert _one(c, "workload_identity_config")["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert c["remove_default_node_pool"] is True
    assert "enable_autopilot" not in c
    assert _one(c, "release_channel")["channel"] == "${var.release_channel}"
    assert set(_allowed(tf, "release_channel")) == {"RAPID", "REGULAR", "STABLE"}
    private = _one(c, "private_cluster_config")
    assert private["enable_private_nodes"] is True
    assert c["networking_mode"] == "VPC_NATIVE" and _one(c, "ip_allocation_policy")
    assert c["enable_legacy_abac"] is False
    assert _one(_one(c, "master_auth"), "client_certificate_config")["issue_client_certificate"] is False
    addons = _one(c, "addons_config")
    assert _one(addons, "gcs_fuse_csi_driver_config")["enabled"] == "${var.enable_gcs_fuse_csi_driver}"
    assert _one(_one(c, "node_config"), "workload_metadata_config")["mode"] == "GKE_METADATA"


# --- node pools ----------------------------------------------------------------------------------------------------

NODE_POOL_MODULE = TF / "modules" / "node-pool"
POOLS = ("system_pool", "t4_pool", "tpu_v3_single_host_pool", "tpu_v3_slice_pool")


@pytest.fixture(scope="module")
def pool_module() -> dict[str, Any]:
    """The node-pool module: its one google_container_node_pool and its variables."""
    merged: dict[str, Any] = {"resource": {}, "variable": {}}
    for path in sorted(NODE_POOL_MODULE.glob("*.tf")):
        doc = _load(path)
        for block in doc.get("resource", []):
            for rtype, by_name in block.items():
                merged["resource"].update({(rtype, n): b for n, b in by_name.items()})
        for block in doc.get("variable", []):
            merged["variable"].update(block)
    return merged


def _pool(tf: dict, name: str) -> dict:
    assert name in tf["module"], f"missing module {name}"
    call = tf["module"][name]
    assert call["source"] == "./modules/node-pool", name
    return call


def test_one_node_pool_module_no_copies(tf, pool_module):
    """Every pool is the local module, instantiated per pool kind; nothing declares a node pool by hand."""
    assert not [k for k in tf["resource"] if k[0] == "google_container_node_pool"]
    assert {n for n, c in tf["module"].items() if c["source"] == "./modules/node-pool"} == set(POOLS)
    assert list(pool_module["resource"]) == [("google_container_node_pool", "this")]
    shared = tf["locals"]["node_pool_cluster"]
    assert shared["name"] == "${google_container_cluster.this.name}"
    assert shared["service_account"] == "${google_service_account.nodes.email}"
    assert _resolve(tf, shared["image_type"]) == "COS_CONTAINERD"
    assert shared["region"] == "${var.region}" and shared["location"] == "${var.cluster_location}"
    for name in POOLS:
        call = _pool(tf, name)
        assert call["cluster"] == "${local.node_pool_cluster}", name
        missing = {v for v, body in pool_module["variable"].items() if "default" not in body} - set(call)
        assert missing == set(), f"{name} misses module inputs {missing}"


def test_the_module_hardens_every_pool(pool_module):
    p = pool_module["resource"][("google_container_node_pool", "this")]
    nc = _one(p, "node_config")
    assert _one(nc, "workload_metadata_config")["mode"] == "GKE_METADATA"
    shielded = _one(nc, "shielded_instance_config")
    assert shielded["enable_secure_boot"] is True and shielded["enable_integrity_monitoring"] is True
    mgmt = _one(p, "management")
    assert mgmt["auto_repair"] is True and mgmt["auto_upgrade"] is True
    [taint] = [d["taint"] for d in nc["dynamic"] if "taint" in d]
    assert _one(taint, "content") == {"key": "${taint.value}", "value": "present", "effect": "NO_SCHEDULE"}
    [placement] = [d["placement_policy"] for d in p["dynamic"] if "placement_policy" in d]
    assert _one(placement, "content") == {"type": "COMPACT", "tpu_topology": "${placement_policy.value}"}
    [gpu] = [d["guest_accelerator"] for d in nc["dynamic"] if "guest_accelerator" in d]
    driver = _one(_one(gpu, "content"), "gpu_driver_installation_config")
    assert driver["gpu_driver_version"] == "${guest_accelerator.value.driver_version}"
    # Every zone of a pool must lie in the cluster's region (a precondition: the plan fails with the reason).
    rules = " ".join(r["condition"] for r in _one(p, "lifecycle")["precondition"])
    assert "var.node_locations" in rules and "var.cluster.region" in rules


def test_t4_pool(tf):
    p = _pool(tf, "t4_pool")
    assert p["count"] == "${var.enable_t4_pool ? 1 : 0}"
    assert p["machine_type"] == "${var.t4_machine_type}"
    machine_rule = tf["variable"]["t4_machine_type"]["validation"][0]["condition"]
    assert "^n1-" in machine_rule
    acc = p["gpu"]
    assert acc["type"] == "nvidia-tesla-t4" and acc["type"] in facts.ACCELERATORS
    assert acc["count"] == "${var.t4_gpus_per_node}"
    assert sorted(_allowed(tf, "t4_gpus_per_node")) == sorted(facts.T4_COUNTS)
    assert acc["driver_version"] == "${var.t4_gpu_driver_version}"
    assert sorted(_allowed(tf, "t4_gpu_driver_version")) == ["DEFAULT", "LATEST"]
    assert p["autoscaling"] == {"min_nodes": 0, "max_nodes": "${var.t4_max_nodes}"}
    assert p["spot"] == "${var.t4_spot}"
    assert p["taint_key"] == facts.ACCELERATORS["nvidia-tesla-t4"].taint_key
    check = _res(tf, "terraform_data", "t4_machine_fits_gpus")
    assert "t4_gpus_per_node < 4" in _one(check, "lifecycle")["precondition"][0]["condition"]


def test_tpu_v3_single_host_pool(tf):
    p = _pool(tf, "tpu_v3_single_host_pool")
    assert p["count"] == "${var.enable_tpu_v3_single_host ? 1 : 0}"
    assert _resolve(tf, p["machine_type"]) == "ct3-hightpu-4t"
    assert "tpu_topology" not in p, "a single-host v3-8 needs no slice placement"
    assert p["autoscaling"]["min_nodes"] == 0
    assert p["spot"] == "${var.tpu_spot}"
    assert p["taint_key"] == facts.ACCELERATORS["tpu-v3"].taint_key
    assert p["node_locations"] == ["${var.tpu_v3_single_host_zone}"]


def test_tpu_v3_slice_pool_is_compact_with_one_node_per_host(tf):
    p = _pool(tf, "tpu_v3_slice_pool")
    assert p["count"] == "${var.enable_tpu_v3_slice ? 1 : 0}"
    assert _resolve(tf, p["machine_type"]) == "ct3p-hightpu-4t"
    assert p["tpu_topology"] == "${var.tpu_v3_slice_topology}"
    assert p["node_count"] == "${local.tpu_v3_slice_hosts}"
    assert "autoscaling" not in p, "a slice is usable only whole: fixed node_count"
    assert p["node_locations"] == ["${var.tpu_v3_slice_zone}"], "a slice lives in one zone"
    assert p["spot"] == "${var.tpu_spot}"
    assert p["taint_key"] == facts.ACCELERATORS["tpu-v3"].taint_key


def test_each_tpu_pool_has_its_own_zone_from_the_v3_zone_table(tf):
    """v3-32+ slices exist only in europe-west4-a: one zone for both pools (defaulting to us-central1-b) made the
    slice pool impossible to create."""
    assert "tpu_zone" not in tf["variable"]
    assert sorted(_allowed(tf, "tpu_v3_single_host_zone")) == sorted(facts.TPU_V3_ZONES["single_host"])
    assert _allowed(tf, "tpu_v3_slice_zone") == list(facts.TPU_V3_ZONES["slice"]) == ["europe-west4-a"]
    for name in ("tpu_v3_single_host_zone", "tpu_v3_slice_zone"):
        assert tf["variable"][name]["default"] in _allowed(tf, name)
    example = _load(EXAMPLE_TFVARS)
    assert example["tpu_v3_slice_zone"].startswith(example["region"] + "-")
    assert example["tpu_v3_single_host_zone"].startswith(example["region"] + "-")


def test_boot_disks_hold_the_largest_model_twice(tf):
    """A 27B download alone is about 54 GB (bf16); merged output writes another copy; the image adds ~10 GB.
    GKE's default boot disk is 100 GB."""
    largest_gb = max(arch.params for arch in facts.MODELS.values()) * 2 / 1e9
    needed = 2 * largest_gb + 10
    tpu_disk = tf["variable"]["tpu_disk_size_gb"]
    assert tpu_disk["default"] >= needed
    assert re.search(r"var\.tpu_disk_size_gb >= (\d+)", tpu_disk["validation"][0]["condition"])
    minimum = int(re.search(r"var\.tpu_disk_size_gb >= (\d+)", tpu_disk["validation"][0]["condition"]).group(1))
    assert minimum >= needed
    for name in ("tpu_v3_single_host_pool", "tpu_v3_slice_pool"):
        assert _pool(tf, name)["disk_size_gb"] == "${var.tpu_disk_size_gb}"
    assert _pool(tf, "t4_pool")["disk_size_gb"] == "${var.t4_disk_size_gb}"
    # T4 trains up to 9B (QLoRA): its download and merged copy plus a CUDA image.
    t4_gb = facts.MODELS["gemma-2-9b"].params * 2 / 1e9
    assert tf["variable"]["t4_disk_size_gb"]["default"] >= 2 * t4_gb + 15


def test_first_apply_installs_no_chart_and_namespaces_match_the_examples(tf):
    """The images do not exist before the first apply: installing the chart then fails. Workload Identity must
    bind the namespace the guide and the examples use."""
    assert tf["variable"]["install_operator"]["default"] is False
    assert _load(EXAMPLE_TFVARS)["install_operator"] is False
    namespaces = set(tf["variable"]["trainer_namespaces"]["default"])
    gke_examples = [yaml.safe_load(p.read_text()) for p in (REPO / "examples").glob("*.yaml")]
    example_namespaces = {d["metadata"]["namespace"] for d in gke_examples if d["spec"]["accelerator"]["type"] != "cpu"}
    assert namespaces == example_namespaces == {"ml"}
    assert _load(EXAMPLE_TFVARS)["trainer_namespaces"] == ["ml"]


def test_tpu_topologies_and_hosts_match_the_api_facts(tf):
    multi_host = {t: topo for t, topo in facts.TPU_V3_TOPOLOGIES.items() if topo.multi_host}
    chips = tf["locals"]["tpu_v3_slice_chips"]
    assert chips == {t: topo.chips for t, topo in multi_host.items()}
    assert sorted(_allowed(tf, "tpu_v3_slice_topology")) == sorted(multi_host)
    assert tf["locals"]["tpu_v3_chips_per_host"] == facts.CHIPS_PER_TPU_V3_HOST
    assert tf["locals"]["tpu_v3_slice_hosts"] == (
        "${local.tpu_v3_slice_chips[var.tpu_v3_slice_topology] / local.tpu_v3_chips_per_host}")
    assert chips["4x4"] // tf["locals"]["tpu_v3_chips_per_host"] == 4  # v3-32: 4 hosts
    assert tf["variable"]["tpu_v3_slice_topology"]["default"] in chips


# --- bucket, registry, IAM -----------------------------------------------------------------------------------------


def test_bucket_settings(tf):
    b = _res(tf, "google_storage_bucket", "runs")
    assert b["uniform_bucket_level_access"] is True
    assert b["public_access_prevention"] == "enforced"
    assert _one(b, "versioning")["enabled"] is True
    rules = b["lifecycle_rule"]
    noncurrent = [r for r in rules if "days_since_noncurrent_time" in _one(r, "condition")]
    assert len(noncurrent) == 1
    assert _one(noncurrent[0], "condition")["days_since_noncurrent_time"] == "${var.noncurrent_version_retention_days}"
    assert _one(noncurrent[0], "action")["type"] == "Delete"
    [dyn] = [d["lifecycle_rule"] for d in b["dynamic"] if "lifecycle_rule" in d]
    # Without prefixes there must be no rule: an age rule with no matches_prefix would delete every object.
    assert dyn["for_each"].startswith("${length(var.checkpoint_prefixes) > 0 ?")
    content = _one(dyn, "content")
    cond = _one(content, "condition")
    assert cond["age"] == "${var.checkpoint_retention_days}"
    assert cond["matches_prefix"] == "${lifecycle_rule.value}"
    assert _one(content, "action")["type"] == "Delete"
    for r in rules:  # no static rule deletes current objects unconditionally
        if _one(r, "action")["type"] == "Delete":
            assert "days_since_noncurrent_time" in _one(r, "condition") or "matches_prefix" in _one(r, "condition")
    [enc] = [d["encryption"] for d in b["dynamic"] if "encryption" in d]
    assert "var.bucket_kms_key_name" in enc["for_each"]


def test_artifact_registry_and_image_paths(tf):
    r = _res(tf, "google_artifact_registry_repository", "images")
    assert r["format"] == "DOCKER"
    assert r["location"] == "${var.region}" and r["repository_id"] == "${var.registry_repository_id}"
    loc = tf["locals"]
    assert loc["registry_url"] == "${var.region}-docker.pkg.dev/${var.project_id}/${var.registry_repository_id}"
    for kind in ("gpu", "tpu", "cpu"):
        assert loc[f"trainer_image_{kind}"] == f"${{local.registry_url}}/gemmaft-trainer-{kind}:${{var.image_tag}}"


def test_trainer_and_operator_identities(tf):
    trainer_bucket = _res(tf, "google_storage_bucket_iam_member", "trainer_object_user")
    assert trainer_bucket["role"] == "roles/storage.objectUser"
    assert trainer_bucket["bucket"] == "${google_storage_bucket.runs.name}"
    assert trainer_bucket["member"] == "serviceAccount:${google_service_account.trainer.email}"
    wi = _res(tf, "google_service_account_iam_member", "trainer_workload_identity")
    assert wi["for_each"] == "${toset(var.trainer_namespaces)}"
    assert wi["role"] == "roles/iam.workloadIdentityUser"
    assert wi["service_account_id"] == "${google_service_account.trainer.name}"
    assert wi["member"] == "serviceAccount:${var.project_id}.svc.id.goog[${each.value}/${var.trainer_ksa_name}]"
    assert tf["variable"]["trainer_ksa_name"]["default"] == "gemma-trainer"

    op_bucket = _res(tf, "google_storage_bucket_iam_member", "operator_object_viewer")
    assert op_bucket["role"] == "roles/storage.objectViewer"
    assert op_bucket["member"] == "serviceAccount:${google_service_account.operator.email}"
    op_wi = _res(tf, "google_service_account_iam_member", "operator_workload_identity")
    assert op_wi["role"] == "roles/iam.workloadIdentityUser"
    assert op_wi["member"] == (
        "serviceAccount:${var.project_id}.svc.id.goog[${var.operator_namespace}/${var.operator_ksa_name}]")

    # Nothing is granted broad project roles: only the node account gets its four logging/monitoring roles.
    for (rtype, _), body in tf["resource"].items():
        if rtype.startswith("google_project_iam"):
            roles = body.get("for_each", "") + body.get("role", "")
            assert not re.search(r"roles/(owner|editor|storage\.admin|iam\.)", roles), roles


# --- operator release ----------------------------------------------------------------------------------------------

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
    h = _res(tf, "helm_release", "operator")
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


# --- example tfvars --------------------------------------------------------------------------------------------------


def test_example_tfvars_sets_only_declared_variables_with_allowed_values(tf):
    example = _load(EXAMPLE_TFVARS)
    declared = set(tf["variable"])
    assert set(example) - declared == set(), "example sets undeclared variables"
    required = {n for n, v in tf["variable"].items() if "default" not in v}
    assert required <= set(example), f"example misses required variables {sorted(required - set(example))}"
    for name in ("t4_gpus_per_node", "t4_gpu_driver_version", "tpu_v3_slice_topology", "release_channel"):
        if name in example:
            assert example[name] in _allowed(tf, name), name
    assert re.fullmatch(r"n1-[a-z]+-\d+", example["t4_machine_type"])


# --- terraform fmt and checkov -------------------------------------------------------------------------------------

TERRAFORM = shutil.which("terraform")


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
def test_terraform_fmt():
    proc = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TF)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # fmt -recursive skips *.tfvars.example: format it through stdin.
    text = EXAMPLE_TFVARS.read_text()
    proc = subprocess.run([TERRAFORM, "fmt", "-"], input=text, check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == text, proc.stderr or "example tfvars is not fmt-clean"


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    if not CHECKOV.exists():
        pytest.skip(".venv-tools/bin/checkov is missing (make tools-venv)")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(TF), "--framework", "terraform", "--quiet", "--compact", "-o", "json",
         "--config-file", str(TF / ".checkov.yaml")],
        check=False, capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    [tf_report] = [r for r in reports if r.get("check_type") == "terraform"]
    return tf_report


def test_checkov_finds_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for c in checkov_report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 40 and summary["resource_count"] >= 20


def test_checkov_skips_each_carry_a_reason():
    lines = (TF / ".checkov.yaml").read_text().splitlines()
    config = yaml.safe_load("\n".join(lines))
    skips = config["skip-check"]
    assert skips, "no skips: then drop this test's premise"
    for check in skips:
        i = next(n for n, line in enumerate(lines) if line.strip() == f"- {check}")
        assert lines[i - 1].strip().startswith("#") and len(lines[i - 1].strip()) > 30, (
            f"{check} is skipped without a written reason on the line above")

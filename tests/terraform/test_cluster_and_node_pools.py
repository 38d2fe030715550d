"""The GKE cluster (Standard, Workload Identity, private nodes) and its node pools: one local module hardening
every pool, the T4, L4, H100, TPU v3 and TPU v5e pools, their zones, disks and topologies kept equal to the
operator's accelerator registry."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from gemma_api import facts
from gemma_api.accelerators import ACCELERATORS, profile

from tests.conftest import REPO
from tests.terraform.parse import (
    EXAMPLE_TFVARS,
    TF,
    allowed_values,
    load_hcl,
    pool_call,
    resolve_local,
    single_block,
    tf_resource,
)


def test_cluster_is_standard_with_workload_identity_and_private_nodes(tf):
    c = tf_resource(tf, "google_container_cluster", "this")
    assert single_block(c, "workload_identity_config")["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert c["remove_default_node_pool"] is True
    assert "enable_autopilot" not in c
    assert single_block(c, "release_channel")["channel"] == "${var.release_channel}"
    assert set(allowed_values(tf, "release_channel")) == {"RAPID", "REGULAR", "STABLE"}
    private = single_block(c, "private_cluster_config")
    assert private["enable_private_nodes"] is True
    assert c["networking_mode"] == "VPC_NATIVE" and single_block(c, "ip_allocation_policy")
    assert c["enable_legacy_abac"] is False
    assert single_block(single_block(c, "master_auth"), "client_certificate_config")["issue_client_certificate"] is False
    addons = single_block(c, "addons_config")
    assert single_block(addons, "gcs_fuse_csi_driver_config")["enabled"] == "${var.enable_gcs_fuse_csi_driver}"
    assert single_block(single_block(c, "node_config"), "workload_metadata_config")["mode"] == "GKE_METADATA"


NODE_POOL_MODULE = TF / "modules" / "node-pool"
# The system pool plus every pool an accelerator record names: a new record without its pool fails here.
POOLS = ("system_pool", *(pool for p in ACCELERATORS.values() for pool in p.terraform_pools))


@pytest.fixture(scope="module")
def pool_module() -> dict[str, Any]:
    """The node-pool module: its one google_container_node_pool and its variables."""
    merged: dict[str, Any] = {"resource": {}, "variable": {}}
    for path in sorted(NODE_POOL_MODULE.glob("*.tf")):
        doc = load_hcl(path)
        for block in doc.get("resource", []):
            for rtype, by_name in block.items():
                merged["resource"].update({(rtype, n): b for n, b in by_name.items()})
        for block in doc.get("variable", []):
            merged["variable"].update(block)
    return merged


def test_one_node_pool_module_no_copies(tf, pool_module):
    """Every pool is the local module, instantiated per pool kind; nothing declares a node pool by hand."""
    assert not [k for k in tf["resource"] if k[0] == "google_container_node_pool"]
    assert {n for n, c in tf["module"].items() if c["source"] == "./modules/node-pool"} == set(POOLS)
    assert list(pool_module["resource"]) == [("google_container_node_pool", "this")]
    shared = tf["locals"]["node_pool_cluster"]
    assert shared["name"] == "${google_container_cluster.this.name}"
    assert shared["service_account"] == "${google_service_account.nodes.email}"
    assert resolve_local(tf, shared["image_type"]) == "COS_CONTAINERD"
    assert shared["region"] == "${var.region}" and shared["location"] == "${var.cluster_location}"
    for name in POOLS:
        call = pool_call(tf, name)
        assert call["cluster"] == "${local.node_pool_cluster}", name
        missing = {v for v, body in pool_module["variable"].items() if "default" not in body} - set(call)
        assert missing == set(), f"{name} misses module inputs {missing}"


def test_the_module_hardens_every_pool(pool_module):
    p = pool_module["resource"][("google_container_node_pool", "this")]
    nc = single_block(p, "node_config")
    assert single_block(nc, "workload_metadata_config")["mode"] == "GKE_METADATA"
    shielded = single_block(nc, "shielded_instance_config")
    assert shielded["enable_secure_boot"] is True and shielded["enable_integrity_monitoring"] is True
    mgmt = single_block(p, "management")
    assert mgmt["auto_repair"] is True and mgmt["auto_upgrade"] is True
    [taint] = [d["taint"] for d in nc["dynamic"] if "taint" in d]
    assert single_block(taint, "content") == {"key": "${taint.value}", "value": "present", "effect": "NO_SCHEDULE"}
    [placement] = [d["placement_policy"] for d in p["dynamic"] if "placement_policy" in d]
    assert single_block(placement, "content") == {"type": "COMPACT", "tpu_topology": "${placement_policy.value}"}
    [gpu] = [d["guest_accelerator"] for d in nc["dynamic"] if "guest_accelerator" in d]
    driver = single_block(single_block(gpu, "content"), "gpu_driver_installation_config")
    assert driver["gpu_driver_version"] == "${guest_accelerator.value.driver_version}"
    # Every zone of a pool must lie in the cluster's region (a precondition: the plan fails with the reason).
    rules = " ".join(r["condition"] for r in single_block(p, "lifecycle")["precondition"])
    assert "var.node_locations" in rules and "var.cluster.region" in rules


def test_t4_pool(tf):
    p = pool_call(tf, "t4_pool")
    assert p["count"] == "${var.enable_t4_pool ? 1 : 0}"
    assert p["machine_type"] == "${var.t4_machine_type}"
    machine_rule = tf["variable"]["t4_machine_type"]["validation"][0]["condition"]
    assert "^n1-" in machine_rule
    acc = p["gpu"]
    assert acc["type"] == "nvidia-tesla-t4" and profile(acc["type"]).kind == "gpu"
    assert acc["count"] == "${var.t4_gpus_per_node}"
    assert sorted(allowed_values(tf, "t4_gpus_per_node")) == sorted(profile("nvidia-tesla-t4").gpu_counts)
    assert acc["driver_version"] == "${var.t4_gpu_driver_version}"
    assert sorted(allowed_values(tf, "t4_gpu_driver_version")) == ["DEFAULT", "LATEST"]
    assert p["autoscaling"] == {"min_nodes": 0, "max_nodes": "${var.t4_max_nodes}"}
    assert p["spot"] == "${var.t4_spot}"
    assert p["taint_key"] == profile("nvidia-tesla-t4").taint_key
    check = tf_resource(tf, "terraform_data", "t4_machine_fits_gpus")
    assert "t4_gpus_per_node < 4" in single_block(check, "lifecycle")["precondition"][0]["condition"]


def test_tpu_v3_single_host_pool(tf):
    p = pool_call(tf, "tpu_v3_single_host_pool")
    assert p["count"] == "${var.enable_tpu_v3_single_host ? 1 : 0}"
    assert resolve_local(tf, p["machine_type"]) == profile("tpu-v3").topology("2x2").machine_type
    assert "tpu_topology" not in p, "a single-host v3-8 needs no slice placement"
    assert p["autoscaling"]["min_nodes"] == 0
    assert p["spot"] == "${var.tpu_spot}"
    assert p["taint_key"] == profile("tpu-v3").taint_key
    assert p["node_locations"] == ["${var.tpu_v3_single_host_zone}"]


def test_tpu_v3_slice_pool_is_compact_with_one_node_per_host(tf):
    p = pool_call(tf, "tpu_v3_slice_pool")
    assert p["count"] == "${var.enable_tpu_v3_slice ? 1 : 0}"
    assert resolve_local(tf, p["machine_type"]) == profile("tpu-v3").topology("4x4").machine_type == "ct3p-hightpu-4t"
    assert p["tpu_topology"] == "${var.tpu_v3_slice_topology}"
    assert p["node_count"] == "${local.tpu_v3_slice_hosts}"
    assert "autoscaling" not in p, "a slice is usable only whole: fixed node_count"
    assert p["node_locations"] == ["${var.tpu_v3_slice_zone}"], "a slice lives in one zone"
    assert p["spot"] == "${var.tpu_spot}"
    assert p["taint_key"] == profile("tpu-v3").taint_key


def test_each_tpu_pool_has_its_own_zone_from_the_v3_zone_table(tf):
    """v3-32+ slices exist only in europe-west4-a: one zone for both pools (defaulting to us-central1-b) made the
    slice pool impossible to create."""
    assert "tpu_zone" not in tf["variable"]
    zones = profile("tpu-v3").zones
    assert sorted(allowed_values(tf, "tpu_v3_single_host_zone")) == sorted(zones["single_host"])
    assert allowed_values(tf, "tpu_v3_slice_zone") == list(zones["slice"]) == ["europe-west4-a"]
    for name in ("tpu_v3_single_host_zone", "tpu_v3_slice_zone"):
        assert tf["variable"][name]["default"] in allowed_values(tf, name)
    example = load_hcl(EXAMPLE_TFVARS)
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
        assert pool_call(tf, name)["disk_size_gb"] == "${var.tpu_disk_size_gb}"
    assert pool_call(tf, "t4_pool")["disk_size_gb"] == "${var.t4_disk_size_gb}"
    # T4 trains up to 9B (QLoRA): its download and merged copy plus a CUDA image.
    t4_gb = facts.MODELS["gemma-2-9b"].params * 2 / 1e9
    assert tf["variable"]["t4_disk_size_gb"]["default"] >= 2 * t4_gb + 15


def test_first_apply_installs_no_chart_and_namespaces_match_the_examples(tf):
    """The images do not exist before the first apply: installing the chart then fails. Workload Identity must
    bind the namespace the guide and the examples use."""
    assert tf["variable"]["install_operator"]["default"] is False
    assert load_hcl(EXAMPLE_TFVARS)["install_operator"] is False
    namespaces = set(tf["variable"]["trainer_namespaces"]["default"])
    gke_examples = [yaml.safe_load(p.read_text()) for p in (REPO / "examples").glob("*.yaml")]
    example_namespaces = {d["metadata"]["namespace"] for d in gke_examples if d["spec"]["accelerator"]["type"] != "cpu"}
    assert namespaces == example_namespaces == {"ml"}
    assert load_hcl(EXAMPLE_TFVARS)["trainer_namespaces"] == ["ml"]


def test_tpu_topologies_and_hosts_match_the_api_facts(tf):
    multi_host = {t: topo for t, topo in profile("tpu-v3").topologies.items() if topo.multi_host}
    chips = tf["locals"]["tpu_v3_slice_chips"]
    assert chips == {t: topo.chips for t, topo in multi_host.items()}
    assert sorted(allowed_values(tf, "tpu_v3_slice_topology")) == sorted(multi_host)
    assert {tf["locals"]["tpu_v3_chips_per_host"]} == {topo.chips_per_host for topo in multi_host.values()}
    assert tf["locals"]["tpu_v3_slice_hosts"] == (
        "${local.tpu_v3_slice_chips[var.tpu_v3_slice_topology] / local.tpu_v3_chips_per_host}")
    assert chips["4x4"] // tf["locals"]["tpu_v3_chips_per_host"] == 4  # v3-32: 4 hosts
    assert tf["variable"]["tpu_v3_slice_topology"]["default"] in chips

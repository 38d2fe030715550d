"""The L4, H100 and TPU v5e node pools: created only when asked, their machine types, GPU counts, topologies, hosts
and zones equal to the accelerator registry (api/accelerators.py), so a pod rendered for the record lands there."""

from __future__ import annotations

import pytest
from gemma_api import facts
from gemma_api.accelerators import profile

from tests.terraform.parse import EXAMPLE_TFVARS, allowed_values, load_hcl, pool_call, resolve_local

GPU_POOLS = [  # (record, pool module, variable prefix, machine -> GPUs local)
    ("nvidia-l4", "l4_pool", "l4", "l4_machine_gpus"),
    ("nvidia-h100-80gb", "h100_pool", "h100", "h100_machine_gpus"),
]


@pytest.mark.parametrize("name, pool, prefix, machine_gpus", GPU_POOLS)
def test_gpu_pool_is_off_by_default_and_autoscales_from_zero(tf, name, pool, prefix, machine_gpus):
    p = pool_call(tf, pool)
    assert p["count"] == f"${{var.enable_{prefix}_pool ? 1 : 0}}"
    assert tf["variable"][f"enable_{prefix}_pool"]["default"] is False
    assert p["autoscaling"] == {"min_nodes": 0, "max_nodes": f"${{var.{prefix}_max_nodes}}"}
    assert p["spot"] == f"${{var.{prefix}_spot}}"
    assert p["machine_type"] == f"${{var.{prefix}_machine_type}}"
    assert p["taint_key"] == profile(name).taint_key == "nvidia.com/gpu"
    assert pool in profile(name).terraform_pools


@pytest.mark.parametrize("name, pool, prefix, machine_gpus", GPU_POOLS)
def test_gpu_pool_attaches_the_records_gpu_with_the_machine_types_count(tf, name, pool, prefix, machine_gpus):
    p = pool_call(tf, pool)
    record = profile(name)
    assert p["gpu"]["type"] == record.single_host_value == name, "the node label value the operator selects"
    assert p["gpu"]["count"] == f"${{local.{machine_gpus}[var.{prefix}_machine_type]}}"
    assert p["gpu"]["driver_version"] == "${var.gpu_driver_version}"
    table = tf["locals"][machine_gpus]
    assert sorted(table) == sorted(record.machine_types) == sorted(allowed_values(tf, f"{prefix}_machine_type"))
    assert set(table.values()) == set(record.gpu_counts), "every count the API accepts has a machine type"
    assert tf["variable"][f"{prefix}_machine_type"]["default"] in table


def test_l4_and_h100_machine_types_carry_the_documented_gpus(tf):
    l4, h100 = tf["locals"]["l4_machine_gpus"], tf["locals"]["h100_machine_gpus"]
    assert (l4["g2-standard-8"], l4["g2-standard-24"], l4["g2-standard-48"], l4["g2-standard-96"]) == (1, 2, 4, 8)
    assert {m: h100[m] for m in h100} == {f"a3-highgpu-{n}g": n for n in (1, 2, 4, 8)}


def test_gpu_disks_hold_the_largest_model_twice(tf):
    largest_gb = max(arch.params for arch in facts.MODELS.values()) * 2 / 1e9
    assert tf["variable"]["gpu_disk_size_gb"]["default"] >= 2 * largest_gb + 15
    for pool in ("l4_pool", "h100_pool"):
        assert pool_call(tf, pool)["disk_size_gb"] == "${var.gpu_disk_size_gb}"


def test_tpu_v5e_single_host_pool_machine_type_per_topology(tf):
    p = pool_call(tf, "tpu_v5e_single_host_pool")
    record = profile("tpu-v5e")
    assert p["count"] == "${var.enable_tpu_v5e_single_host ? 1 : 0}"
    assert "tpu_topology" not in p and p["autoscaling"]["min_nodes"] == 0
    single = {t: topo for t, topo in record.topologies.items() if not topo.multi_host}
    assert tf["locals"]["tpu_v5e_single_host_types"] == {t: topo.machine_type for t, topo in single.items()}
    assert sorted(allowed_values(tf, "tpu_v5e_single_host_topology")) == sorted(single)
    assert p["machine_type"] == "${local.tpu_v5e_single_host_types[var.tpu_v5e_single_host_topology]}"
    assert p["taint_key"] == record.taint_key and p["spot"] == "${var.tpu_spot}"


def test_tpu_v5e_slice_pool_is_compact_with_one_node_per_host(tf):
    p = pool_call(tf, "tpu_v5e_slice_pool")
    record = profile("tpu-v5e")
    multi_host = {t: topo for t, topo in record.topologies.items() if topo.multi_host}
    assert p["count"] == "${var.enable_tpu_v5e_slice ? 1 : 0}"
    assert p["tpu_topology"] == "${var.tpu_v5e_slice_topology}" and "autoscaling" not in p
    assert p["node_count"] == "${local.tpu_v5e_slice_hosts}"
    assert tf["locals"]["tpu_v5e_slice_chips"] == {t: topo.chips for t, topo in multi_host.items()}
    assert sorted(allowed_values(tf, "tpu_v5e_slice_topology")) == sorted(multi_host)
    per_host = tf["locals"]["tpu_v5e_chips_per_host"]
    assert {per_host} == {topo.chips_per_host for topo in multi_host.values()} == {4}
    assert {resolve_local(tf, p["machine_type"])} == {topo.machine_type for topo in multi_host.values()}
    assert tf["locals"]["tpu_v5e_slice_chips"]["4x4"] // per_host == 4


def test_tpu_v5e_zones_come_from_the_record(tf):
    zones = profile("tpu-v5e").zones
    for pool, kind in (("single_host", "single_host"), ("slice", "slice")):
        name = f"tpu_v5e_{pool}_zone"
        assert sorted(allowed_values(tf, name)) == sorted(zones[kind])
        assert tf["variable"][name]["default"] in zones[kind]
        assert pool_call(tf, f"tpu_v5e_{pool}_pool")["node_locations"] == [f"${{var.{name}}}"]


def test_example_tfvars_sets_valid_machine_types_and_topologies(tf):
    example = load_hcl(EXAMPLE_TFVARS)
    for name in ("l4_machine_type", "h100_machine_type", "tpu_v5e_single_host_topology", "tpu_v5e_slice_topology"):
        assert example[name] in allowed_values(tf, name), name
    assert example["tpu_v5e_single_host_zone"] in profile("tpu-v5e").zones["single_host"]

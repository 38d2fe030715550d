"""The accelerator registry drives validation: each type's own counts and topologies (in pydantic and in the CRD's
CEL rules), qlora only on GPU types, the memory model's devices (a v5e chip is one device, a v3 chip two), and
fixes that name the next accelerator up."""

from __future__ import annotations

import pytest
from gemma_api import SpecError, estimate, parse_finetune
from gemma_api.accelerators import ACCELERATORS, names_of, profile
from gemma_api.plan import batch_plan
from gemma_local import crd_schema

from tests.conftest import manifest

# (spec overrides, field the message must name, words it must hold)
INVALID = [
    ({"accelerator": {"type": "nvidia-tesla-t4", "count": 8}}, "spec.accelerator.count", "1, 2 or 4"),
    ({"accelerator": {"type": "nvidia-l4", "count": 3}}, "spec.accelerator.count", "accelerator.count"),
    ({"accelerator": {"type": "tpu-v5e", "count": 1}}, "spec.accelerator.count", "nvidia-l4"),
    ({"accelerator": {"type": "tpu-v5e", "topology": "32x32"}}, "spec.accelerator.topology", "accelerator.topology"),
    ({"accelerator": {"type": "tpu-v3", "topology": "1x1"}}, "spec.accelerator.topology", "2x2, 4x4"),
    ({"accelerator": {"type": "nvidia-h100-80gb", "topology": "2x2"}}, "spec.accelerator.topology", "tpu-v5e"),
    ({"method": "qlora", "accelerator": {"type": "tpu-v5e"}}, "spec.method", "nvidia-h100-80gb"),
]


@pytest.mark.parametrize("overrides, field, words", INVALID, ids=[str(o["accelerator"]) for o, _, _ in INVALID])
def test_each_type_refuses_counts_and_topologies_of_the_others_in_pydantic_and_cel(overrides, field, words):
    obj = manifest(**overrides)
    with pytest.raises(SpecError) as info:
        parse_finetune(obj)
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith(field + ":") and words in p for p in found), found
    assert crd_schema.validate(obj), "the CRD schema accepts it"


@pytest.mark.parametrize("name", ACCELERATORS)
def test_every_count_and_topology_of_a_record_is_accepted(name):
    record = profile(name)
    output = {"uri": "./out"} if record.kind == "cpu" else {"uri": "gs://my-runs/ft"}
    shapes = [{"count": c} for c in record.gpu_counts] + [{"topology": t} for t in record.topologies] or [{}]
    for shape in shapes:
        obj = manifest(model="gemma-3-270m", accelerator={"type": name, **shape}, output=output)
        parse_finetune(obj)
        assert crd_schema.validate(obj) == [], (name, shape)


@pytest.mark.parametrize("name", names_of("gpu"))
def test_qlora_is_accepted_on_every_gpu_type(name):
    obj = manifest(model="gemma-2-9b", method="qlora", accelerator={"type": name})
    parse_finetune(obj)
    assert crd_schema.validate(obj) == []


def test_v5e_shards_over_one_device_per_chip_v3_over_two():
    v5e = estimate(parse_finetune(manifest(model="gemma-2-9b", accelerator={"type": "tpu-v5e", "topology": "4x4"})).spec)
    v3 = estimate(parse_finetune(manifest(model="gemma-2-9b", accelerator={"type": "tpu-v3", "topology": "4x4"})).spec)
    assert (v5e.devices, v3.devices) == (16, 32)
    assert v5e.capacity == v3.capacity == 16 * 1024**3
    plan = batch_plan(parse_finetune(manifest(accelerator={"type": "tpu-v5e", "topology": "8x8"})).spec)
    assert (plan.hosts, plan.devices_per_host, plan.processes_per_host, plan.drop_last) == (16, 4, 1, True)


def test_gpus_hold_bf16_weights_and_27b_lora_fits_an_h100_not_an_l4():
    def fit(acc: str):  # estimate() alone: parse_finetune refuses what does not fit
        obj = manifest(model="gemma-2-2b", accelerator={"type": acc})
        spec = parse_finetune(obj).spec.model_copy(update={"model": "gemma-2-27b"})
        return estimate(spec)

    l4, h100, t4 = fit("nvidia-l4"), fit("nvidia-h100-80gb"), fit("nvidia-tesla-t4")
    assert h100.fits and not l4.fits and not t4.fits
    assert l4.weights == h100.weights == t4.weights  # 2 bytes per weight: bf16 on L4/H100, fp16 on T4
    with pytest.raises(SpecError) as info:
        parse_finetune(manifest(model="gemma-2-27b", accelerator={"type": "nvidia-l4"}))
    (problem,) = [str(p) for p in info.value.problems]
    assert "does not fit nvidia-l4" in problem and "accelerator.type nvidia-h100-80gb" in problem


def test_a_slice_too_small_names_larger_topologies_of_its_own_type():
    with pytest.raises(SpecError) as info:
        parse_finetune(manifest(model="gemma-2-27b", accelerator={"type": "tpu-v5e", "topology": "1x1"}))
    (problem,) = [str(p) for p in info.value.problems]
    assert "does not fit tpu-v5e 1x1" in problem and "(2x2, 2x4, 4x4)" in problem


@pytest.mark.parametrize("name", names_of("tpu"))
def test_topologies_are_whole_hosts(name):
    for topology, slice_ in profile(name).topologies.items():
        rows, cols = map(int, topology.split("x"))
        assert rows * cols == slice_.chips
        assert slice_.chips_per_host * slice_.hosts == slice_.chips
        assert slice_.multi_host == (slice_.hosts > 1)

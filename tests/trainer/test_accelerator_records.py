"""The trainer's accelerator plan and XLA facts come from the accelerator registry: L4 and H100 train on CUDA in
bf16 (compute capability 8.9 and 9.0), T4 in fp16, TPU v3 and v5e on XLA in bf16; a v5e chip is one XLA device
(a v3 chip two), and the hosts of a slice are its topology's."""

from __future__ import annotations

import pytest
from gemma_api import parse_spec
from gemma_api.accelerators import names_of, profile
from gemma_trainer import multihost, xla
from gemma_trainer.backends import device_setup
from gemma_trainer.errors import AcceleratorUnavailable


def _spec(accelerator: dict):
    return parse_spec({"model": "gemma-2-2b", "dataset": {"trainUri": "gs://data/t.jsonl"},
                       "accelerator": accelerator, "output": {"uri": "gs://out/runs"}})


@pytest.mark.parametrize("name, precision", [("nvidia-tesla-t4", "fp16"), ("nvidia-l4", "bf16"),
                                             ("nvidia-h100-80gb", "bf16")])
def test_each_gpu_trains_on_cuda_in_its_records_dtype(name, precision):
    record = profile(name)
    count = max(record.gpu_counts)
    plan = device_setup(_spec({"type": name, "count": count}), capability=record.compute_capability)
    assert (plan.device, plan.precision, plan.nproc) == ("cuda", precision, count)
    assert plan.model_dtype == record.compute_dtype
    assert plan.training_args[precision] is True


@pytest.mark.parametrize("name", names_of("gpu"))
def test_a_gpu_spec_without_a_gpu_is_refused(name):
    with pytest.raises(AcceleratorUnavailable, match=f"{name} but no CUDA GPU"):
        device_setup(_spec({"type": name}), capability=None)


@pytest.mark.parametrize("name", names_of("tpu"))
def test_each_tpu_trains_on_xla_in_bf16_with_static_shapes(name):
    plan = device_setup(_spec({"type": name}), tpu=True)
    assert (plan.accelerator, plan.device, plan.precision, plan.model_dtype) == (name, "xla", "bf16", "bfloat16")
    assert plan.pad_buckets and plan.training_args["dataloader_drop_last"] is True
    with pytest.raises(AcceleratorUnavailable, match=f"{name} but no TPU"):
        device_setup(_spec({"type": name}), tpu=False)


@pytest.mark.parametrize("name, topology, devices, hosts", [
    ("tpu-v3", "2x2", 8, 1), ("tpu-v3", "4x4", 32, 4),
    ("tpu-v5e", "1x1", 1, 1), ("tpu-v5e", "2x4", 8, 1), ("tpu-v5e", "4x4", 16, 4), ("tpu-v5e", "16x16", 256, 64),
])
def test_slice_devices_and_hosts(name, topology, devices, hosts):
    spec = _spec({"type": name, "topology": topology})
    assert xla.is_tpu_run(spec)
    assert xla.slice_devices(spec) == devices
    assert multihost.expected_hosts(spec) == hosts


@pytest.mark.parametrize("name", ["nvidia-l4", "nvidia-h100-80gb", "cpu"])
def test_gpus_and_cpu_are_one_host_and_not_xla(name):
    spec = _spec({"type": name})
    assert not xla.is_tpu_run(spec) and multihost.expected_hosts(spec) == 1
    with pytest.raises(ValueError, match="not a TPU type"):
        xla.device_setup(spec)

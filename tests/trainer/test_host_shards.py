"""Multi-host data: each host reads its own rows of every global batch, and one epoch trains every row once.

torch-xla 2.9 cannot join two processes into one SPMD mesh on its CPU backend (one PJRT CPU client per
process, no CPU coordinator), so the hosts of a slice are simulated here with the trainer's own pieces: the
batch plan (``gemma_api.plan``), its step count, and each host's sampler + torch DataLoader as the
trainer builds them. The oracle is independent: TPU v3 facts (4 chips per host, 2 TensorCores per chip) and
set arithmetic on row ids.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from gemma_api import parse_spec
from gemma_api.plan import PlanError, batch_plan, plan_run
from gemma_trainer.multihost import HostShardSampler, host_shard

CORES_PER_V3_HOST = 8  # 4 chips x 2 TensorCores (Cloud TPU v3 docs; torch-xla sees each core as a device)


def spec(accelerator: dict, **training):
    return parse_spec({
        "model": "gemma-2-2b", "dataset": {"trainUri": "gs://data-bkt/train.jsonl"},
        "accelerator": accelerator, "output": {"uri": "gs://out-bkt/runs"}, "training": training,
    })


def tpu(topology: str, **training):
    return spec({"type": "tpu-v3", "topology": topology}, **training)


@pytest.mark.parametrize("topology, hosts", [("2x2", 1), ("4x4", 4), ("4x8", 8), ("8x8", 16)])
def test_batch_is_per_device_and_the_global_batch_is_derived(topology, hosts):
    plan = batch_plan(tpu(topology, batchSize=2, gradientAccumulationSteps=3))
    assert (plan.hosts, plan.devices_per_host) == (hosts, CORES_PER_V3_HOST)
    assert plan.global_batch_size == 2 * hosts * CORES_PER_V3_HOST
    assert plan.per_host_batch_size == 2 * CORES_PER_V3_HOST
    assert plan.per_process_batch_size == plan.per_host_batch_size  # SPMD: one loader per host
    assert plan.sequences_per_step == 3 * plan.global_batch_size


def test_gpu_and_cpu_batches():
    t4 = batch_plan(spec({"type": "nvidia-tesla-t4", "count": 4}, batchSize=2))
    assert (t4.hosts, t4.devices_per_host, t4.global_batch_size, t4.per_process_batch_size) == (1, 4, 8, 2)
    cpu = batch_plan(spec({"type": "cpu"}, batchSize=3))
    assert (cpu.global_batch_size, cpu.per_process_batch_size, cpu.drop_last) == (3, 3, False)


def _rows_each_host_trains(s, n_rows: int, seed: int = 0) -> list[list[int]]:
    """Run each host's loader (the trainer's sampler over one shared seeded order) for the run's steps."""
    from torch.utils.data import DataLoader

    plan = batch_plan(s)
    steps = plan.total_steps(n_rows, s.training.epochs, s.training.max_steps)
    micro_batches = steps * plan.gradient_accumulation_steps
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    per_host = []
    for host in range(plan.hosts):
        sampler = HostShardSampler(order, plan.global_batch_size, plan.per_host_batch_size, host)
        loader = DataLoader(list(range(n_rows)), batch_size=plan.per_process_batch_size, sampler=sampler,
                            drop_last=plan.drop_last)
        seen: list[int] = []
        for i, batch in enumerate(loader):  # one epoch; a run of epochs 1 must not need more
            if i == micro_batches:
                break
            assert len(batch) == plan.per_host_batch_size
            seen.extend(int(x) for x in batch)
        per_host.append(seen)
    return per_host


@pytest.mark.parametrize("topology", ["2x2", "4x4", "8x8"])
@pytest.mark.parametrize("accum", [1, 3])
@pytest.mark.parametrize("n_rows", [1000, 1013])
def test_one_epoch_trains_every_row_once_on_any_number_of_hosts(topology, accum, n_rows):
    """The v3-32 example (epochs 1) used to train on about 25% of the rows: this is the check that catches it."""
    s = tpu(topology, epochs=1, batchSize=1, gradientAccumulationSteps=accum)
    global_batch = batch_plan(s).global_batch_size
    per_host = _rows_each_host_trains(s, n_rows)
    everything = [row for rows in per_host for row in rows]
    assert len(everything) == len(set(everything)), "two hosts trained the same row in one epoch"
    # Only the short last global batch (SPMD needs equal shapes) may be left out.
    assert n_rows - global_batch < len(set(everything)) <= n_rows
    assert len(set(everything)) == (n_rows // global_batch) * global_batch


def test_two_epochs_see_every_row_twice():
    s = tpu("4x4", epochs=2, batchSize=1, gradientAccumulationSteps=1)
    plan = batch_plan(s)
    assert plan.total_steps(640, 2, None) == 2 * 640 // plan.global_batch_size
    # Each epoch is its own seeded order (the sampler's set_epoch); the hosts' loaders over both see each row twice.
    seen = Counter(row for epoch in (0, 1) for rows in _rows_each_host_trains(s, 640, seed=epoch) for row in rows)
    assert set(seen) == set(range(640)) and set(seen.values()) == {2}


def test_each_micro_step_is_one_global_batch_split_across_hosts():
    order = list(range(100, 164))  # 64 rows, global batch 16 of 4 hosts x 4
    shards = [host_shard(order, 16, 4, h) for h in range(4)]
    for step in range(4):
        assembled = [row for h in range(4) for row in shards[h][step * 4:(step + 1) * 4]]
        assert assembled == order[step * 16:(step + 1) * 16]


def test_host_shard_refuses_what_cannot_be_split():
    with pytest.raises(ValueError, match="does not divide"):
        host_shard([], 10, 4, 0)
    with pytest.raises(ValueError, match="outside 0..1"):
        HostShardSampler([], 8, 4, 2)


def test_too_few_rows_for_one_global_batch_names_the_field_and_the_fix():
    s = tpu("4x4", batchSize=2)  # global batch 64
    with pytest.raises(PlanError, match=r"spec.training.batchSize: the data set has 50 rows.*64"):
        batch_plan(s).total_steps(50, 1, None)
    assert batch_plan(s).total_steps(50, 1, 7) == 7  # maxSteps wins, data repeats


def test_plan_json_shows_the_numbers_the_trainer_uses():
    out = plan_run(tpu("4x4", batchSize=1, epochs=1, gradientAccumulationSteps=1, maxSeqLength=1024), examples=1000)
    assert (out["hosts"], out["devicesPerHost"], out["globalBatchSize"], out["perHostBatchSize"]) == (4, 8, 32, 8)
    assert (out["stepsPerEpoch"], out["totalSteps"]) == (31, 31)  # 1000 // 32 whole global batches
    mem = out["memoryPerDevice"]
    assert mem["perDeviceBytes"] == (mem["weightsBytes"] + mem["trainableStateBytes"]) // 32 \
        + mem["activationsBytes"] + mem["runtimeBytes"]
    assert out["checkpointBytes"] > 0

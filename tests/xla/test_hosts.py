"""Host coordination under SPMD: logits/activations sharded along the batch, saves in which every host takes part
in the gather (so the writer cannot wait on hosts that never join), and a gloo host barrier (init 'xla://')."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from gemma_trainer import xla, xla_hosts, xla_trainer

from .conftest import N_DEVICES, lora_model

BATCH_SHARDED = re.compile(rf"\{{devices=\[{N_DEVICES},1,1\]")


def _forward(model, tokenizer, batch: int = N_DEVICES * 2, seq: int = 16):
    import torch
    import torch_xla

    ids = torch.randint(6, len(tokenizer), (batch, seq), generator=torch.Generator().manual_seed(0))
    return model(input_ids=ids.to(torch_xla.device()), labels=ids.to(torch_xla.device()))


def test_logits_and_decoder_outputs_are_sharded_along_the_batch(spmd, tokenizer):
    model = lora_model(len(tokenizer), seed=11)
    xla.shard_model_fsdp_v2(model, spmd)
    layers = [m for m in model.modules() if type(m).__name__ == "Gemma2DecoderLayer"]
    hooked = xla.shard_activations(model, spmd)
    assert hooked == len(layers) + 1  # every decoder layer and the model (logits)
    seen = []  # observed after the sharding hook (hooks run in the order they were registered)
    layers[0].register_forward_hook(lambda _m, _i, out: seen.append(xla.sharding_spec(xla._first_output(out))))
    out = _forward(model, tokenizer)
    assert BATCH_SHARDED.match(xla.sharding_spec(out.logits)), xla.sharding_spec(out.logits)
    assert seen and BATCH_SHARDED.match(seen[0]), seen
    assert out.loss.item() > 0


def _executions() -> int:
    import torch_xla.debug.metrics as met

    data = met.metric_data("ExecuteReplicatedTime") or met.metric_data("ExecuteTime")
    return 0 if data is None else data[0]


def _saving_trainer(tmp_path: Path, model, tokenizer):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", per_device_train_batch_size=8,
                             max_steps=1, optim="adamw_torch", save_strategy="no", disable_tqdm=True,
                             remove_unused_columns=False, dataloader_num_workers=0)
    trainer = xla_trainer.trainer_class(Trainer)(model=model, args=args, processing_class=tokenizer)
    trainer.create_optimizer_and_scheduler(num_training_steps=1)
    return trainer


def test_adapter_save_gathers_on_every_host_and_only_the_writer_writes(spmd, tokenizer, tmp_path, monkeypatch):
    """A LoRA weight that GSPMD sharded can only be read back by a collective: the writer (host 0) and a
    non-writer (host 1, simulated) must run the very same XLA executions, or the writer would wait forever."""
    import torch
    import torch_xla.distributed.spmd as xs

    model = lora_model(len(tokenizer), seed=12)
    xla.shard_model_fsdp_v2(model, spmd)
    lora_a = next(p for n, p in model.named_parameters() if "lora_A" in n)
    xs.mark_sharding(lora_a, spmd, ("fsdp", None))  # what GSPMD may do to an adapter weight
    assert xla.sharding_spec(lora_a).startswith("{devices=[4,1]")
    expected = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = _saving_trainer(tmp_path, model, tokenizer)
    _forward(model, tokenizer).loss.backward()
    trainer.optimizer.step()

    def save(rank: int, name: str) -> int:
        monkeypatch.setattr(xla, "process_rank", lambda: (rank, 0, 4))
        before = _executions()
        out = tmp_path / name
        out.mkdir()
        trainer.save_model(str(out))
        trainer._save_optimizer_and_scheduler(str(out))
        return _executions() - before

    save(0, "warm")  # compiles the gather graphs
    writer_runs, other_runs = save(0, "writer"), save(1, "other")
    assert writer_runs == other_runs > 0, (writer_runs, other_runs)
    assert list((tmp_path / "other").iterdir()) == []  # the non-writer wrote nothing
    names = {p.name for p in (tmp_path / "writer").iterdir()}
    assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt"} <= names
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "writer" / "adapter_model.safetensors"))
    assert len(saved) == len(expected)
    state = torch.load(tmp_path / "writer" / "optimizer.pt", weights_only=False)
    moments = [v for s in state["state"].values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    assert moments and all(t.device.type == "cpu" for t in moments)


def test_replicate_trainable_in_place_leaves_values_and_unshards(spmd, tokenizer):
    import torch_xla.distributed.spmd as xs

    model = lora_model(len(tokenizer), seed=13)
    xla.shard_model_fsdp_v2(model, spmd)
    lora_a = next(p for n, p in model.named_parameters() if "lora_A" in n)
    xs.mark_sharding(lora_a, spmd, ("fsdp", None))
    before = lora_a.detach().cpu().clone()
    assert xla_hosts.replicate_trainable_in_place(model) == sum(p.requires_grad for p in model.parameters())
    assert "devices=[4,1]" not in xla.sharding_spec(lora_a)
    assert (lora_a.detach().cpu() == before).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_host_barrier_is_a_gloo_group_from_xla_init_method():
    """The SPMD docs' recipe runs on this torch-xla: gloo with init_method 'xla://', rank and world from
    the runtime's process index and count (one process here), and dist.barrier() returns."""
    script = textwrap.dedent("""
        import torch.distributed as dist, torch_xla.runtime as xr
        from gemma_trainer import xla, xla_hosts
        xla.ensure_spmd()
        assert xla_hosts.process_group() is None  # one host: nothing to coordinate
        group = xla_hosts.process_group(always=True)
        xla_hosts.host_barrier("t")
        print(dist.get_backend(group), dist.get_world_size(), dist.get_rank(), xr.process_count())
    """)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].split() == ["gloo", "1", "0", "1"]


def test_no_xm_rendezvous_left_in_the_trainer():
    """xm.rendezvous is no host barrier under SPMD: the trainer must not rely on it."""
    package = Path(xla.__file__).parent
    offenders = [p.name for p in package.glob("*.py") if "rendezvous(" in p.read_text()]
    assert offenders == []


def test_trainer_reads_this_hosts_rows_on_a_four_host_slice(spmd, tokenizer, features, tmp_path, monkeypatch):
    """The trainer as host 1 of 4 would build it: its sampler yields host 1's slice of every global batch of the
    same length-grouped order (grouped by global optimizer step), and inputs are sharded as minibatches."""
    import torch_xla.distributed.spmd as xs
    from gemma_trainer.multihost import HostShardSampler, host_shard
    from gemma_trainer.train import _make_trainer_class
    from transformers import TrainingArguments

    monkeypatch.setattr(xla_hosts, "host_count", lambda: 4)
    monkeypatch.setattr(xla, "process_rank", lambda: (1, 0, 4))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, max_steps=1, optim="adamw_torch", seed=3,
                             remove_unused_columns=False, dataloader_drop_last=True, dataloader_num_workers=0)
    lengths = [len(f["input_ids"]) for f in features]
    trainer = xla_trainer.trainer_class(_make_trainer_class())(
        model=lora_model(len(tokenizer), seed=14), args=args, train_dataset=features, train_lengths=lengths)
    assert trainer.length_group_size == 4 * 4 * 2  # per-host batch x hosts x accumulation
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, HostShardSampler)
    sampler.set_epoch(0)  # the order depends only on (seed, epoch): the same on every host
    order = list(sampler.base)
    sampler.set_epoch(0)
    assert list(sampler) == host_shard(order, 16, 4, 1) and len(sampler) == (len(features) // 16) * 4
    loader = trainer.get_train_dataloader()
    spec = loader._parallel_loader_kwargs["input_sharding"]
    assert isinstance(spec, xs.ShardingSpec) and spec.minibatch is True

"""The HF Trainer subclass of the SPMD (torch-xla) path: host-sharded batches, adapter-only checkpoints.

:func:`trainer_class` wraps ``train.GemmaTrainer`` (or any ``Trainer`` subclass) when the setup's device is
``xla``; the mesh, the processes and the writer come from :mod:`gemma_trainer.xla`, the host barrier and the
gathers from :mod:`gemma_trainer.xla_hosts`.
"""

from __future__ import annotations

import logging
import os

from . import multihost, xla, xla_hosts

log = logging.getLogger("gemma_trainer.xla")


class XlaSpmdMixin:
    """Mixed in before an HF ``Trainer`` subclass for the SPMD path (:func:`trainer_class`).

    - each host reads its own rows of every global batch (``multihost.HostShardSampler``; the global order is
      the same on every host), and the loader's ``minibatch`` input sharding assembles the hosts' rows into one
      global batch sharded along ``fsdp``;
    - checkpoints hold the adapter weights only; every host gathers the adapter and optimizer state (a collective
      under SPMD), the writer (global process 0) alone writes (``xla_hosts``);
    - with HF's own ``xla_fsdp_v2`` (:func:`gemma_trainer.xla.hf_fsdp_v2_overrides`), the optimizer is created
      after wrapping (transformers 5.23 skips it).
    """

    def __init__(self, *args, **kwargs):
        xla.ensure_spmd()
        super().__init__(*args, **kwargs)
        self._hosts = xla_hosts.host_count()
        # The slice's global order is length-grouped by global optimizer step (train.GemmaTrainer reads it).
        self.length_group_size = self.args.train_batch_size * self._hosts * self.args.gradient_accumulation_steps

    def _host_sampler(self, sampler, per_host: int):
        if self._hosts <= 1 or sampler is None:
            return sampler
        rank = xla.process_rank()[0]
        return multihost.HostShardSampler(sampler, per_host * self._hosts, per_host, rank)

    def _get_train_sampler(self, train_dataset=None):
        return self._host_sampler(super()._get_train_sampler(train_dataset), self.args.train_batch_size)

    def _get_eval_sampler(self, eval_dataset):
        return self._host_sampler(super()._get_eval_sampler(eval_dataset), self.args.eval_batch_size)

    def _shard_inputs(self, loader, batch_size: int):
        import torch_xla.distributed.parallel_loader as pl
        import torch_xla.distributed.spmd as xs

        if getattr(self, "is_fsdp_xla_v2_enabled", False) or not isinstance(loader, pl.MpDeviceLoader):
            return loader  # HF's own FSDPv2 sets the input sharding itself
        mesh = xs.get_global_mesh() or xla.spmd_mesh()
        n = mesh.shape()[xla.FSDP_AXIS]
        if (batch_size * self._hosts) % n:
            log.warning("xla: global batch %d is not a multiple of %d devices: batches are replicated, not "
                        "sharded (training.batchSize is per device)", batch_size * self._hosts, n)
            return loader
        # minibatch: each host's batch is its part of the global batch (its own rows), not the whole.
        sharding = xs.ShardingSpec(mesh, (xla.FSDP_AXIS, None), minibatch=True)
        loader._parallel_loader_kwargs["input_sharding"] = sharding
        return loader

    def get_train_dataloader(self):
        return self._shard_inputs(super().get_train_dataloader(), self.args.train_batch_size)

    def get_eval_dataloader(self, eval_dataset=None):
        return self._shard_inputs(super().get_eval_dataloader(eval_dataset), self.args.eval_batch_size)

    def _wrap_model(self, model, training=True, dataloader=None):
        wrapped = super()._wrap_model(model, training, dataloader)
        if training and getattr(self, "is_fsdp_xla_enabled", False) and self.optimizer is None \
                and wrapped is not self.model:
            self.create_optimizer(wrapped)
        return wrapped

    def save_model(self, output_dir=None, _internal_call=False):
        model = self.accelerator.unwrap_model(self.model)
        if not hasattr(model, "peft_config"):
            return super().save_model(output_dir, _internal_call)
        output_dir = output_dir or self.args.output_dir
        cpu_state = xla_hosts.trainable_to_cpu(model)  # every host: the gather is a collective
        if xla.is_writer():
            os.makedirs(output_dir, exist_ok=True)
            model.save_pretrained(output_dir, state_dict=cpu_state, is_main_process=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
        return None

    def _save_optimizer_and_scheduler(self, output_dir):
        import torch
        from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

        writer = xla.is_writer()
        xla_hosts.save_state(self.optimizer.state_dict(), os.path.join(output_dir, OPTIMIZER_NAME), writer)
        if writer:
            torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_NAME))


def trainer_class(base):
    """``base`` (an HF ``Trainer`` subclass) with :class:`XlaSpmdMixin` in front: ``XlaSpmd<base name>``."""
    return type(f"XlaSpmd{base.__name__}", (XlaSpmdMixin, base), {"__module__": __name__})

"""The teacher stage: the teacher (with its adapter) forward over the training and eval rows, top-k targets out.

Shards are independent and committed one by one (``targets.py``); a restarted stage skips the committed ones
and redoes only the rest. A SIGTERM stops the pass before the next batch: the shard in progress is dropped
(it is at most ``rows_per_shard`` rows of work) and the stage exits with the preemption code. With several
processes (T4 count > 1, TPU hosts) process ``r`` of ``w`` writes the shards whose number is ``r`` mod ``w``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import torch
from gemma_api.facts import MODELS
from gemma_api.methods import adapter_method_for
from gemma_api.run import COMMIT_MARKER, EXIT_OK, EXIT_PREEMPTED

from .. import xla
from ..batches import PackedCollator, PadCollator
from ..errors import ModelError
from ..image_text import adapter_key_mapping, language_model_state
from ..loss_head import labelled_hidden_states, output_softcap
from ..methods import TRAINABLE_WEIGHTS
from ..model import load_model, load_tokenizer, resolve_model_dir
from ..model_cache import cache_folder, cached_download
from ..packed_attention import use_packed_attention
from .heads import teacher_topk
from .targets import SPLITS, shard_count, shard_manager, write_shard

log = logging.getLogger("gemma_trainer")

ROWS_PER_SHARD_ENV = "GEMMAFT_TEACHER_SHARD_ROWS"
DEFAULT_ROWS_PER_SHARD = 256


def rows_per_shard() -> int:
    return max(1, int(os.environ.get(ROWS_PER_SHARD_ENV) or DEFAULT_ROWS_PER_SHARD))


def _adapter_dir(uri: str) -> Path:
    if uri.startswith("gs://"):
        return cached_download(uri, cache_folder(uri, "adapters"))
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise ModelError(f"spec.distillation.teacher.adapterUri: adapter folder {uri} does not exist")
    return path


def load_teacher(teacher, setup):
    """The teacher model in eval mode on ``setup``'s device, with its adapter applied, and its tokenizer.

    An adapter folder is what a fine-tune wrote to ``<run>/adapter``: a PEFT adapter (lora, qlora), the trained
    tensors of ``freeze`` (``trainable.safetensors``), or a whole model (``full``)."""
    model_dir = resolve_model_dir(teacher.model_uri)
    adapter = _adapter_dir(teacher.adapter_uri) if teacher.adapter_uri else None
    if adapter is not None and (adapter / "config.json").is_file():
        model_dir = adapter  # method full: the adapter folder is the whole model
    method = adapter_method_for(teacher.quantization)
    model = load_model(model_dir, SimpleNamespace(method=method.name), setup)
    if adapter is not None and (adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), key_mapping=adapter_key_mapping(model))
    elif adapter is not None and (adapter / TRAINABLE_WEIGHTS).is_file():
        from safetensors.torch import load_file

        state = language_model_state(model, load_file(str(adapter / TRAINABLE_WEIGHTS)))
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ModelError(f"spec.distillation.teacher.adapterUri: tensors {result.unexpected_keys[:3]} do not "
                             f"belong to {teacher.model}")
    elif adapter is not None and model_dir != adapter:
        raise ModelError(f"spec.distillation.teacher.adapterUri: {teacher.adapter_uri} holds no adapter "
                         "(adapter_config.json, trainable.safetensors or config.json)")
    if setup.device == "cuda" and method.base_quantization is None:  # a quantized base is placed as loaded
        model = model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    elif setup.device == "xla":
        model = xla.prepare_model(model, activation_checkpointing=False)
    model.eval()
    return model, load_tokenizer(model_dir, MODELS[teacher.model].family)


def teacher_collator(model, tokenizer, setup):
    """Batches as the training path makes them: padding-free packed rows, or fixed pad buckets on XLA."""
    if setup.device == "xla":
        return PadCollator(tokenizer.pad_token_id, buckets=setup.pad_buckets)
    use_packed_attention(model)
    return PackedCollator()


@torch.no_grad()
def shard_targets(model, rows: list[dict], batch_size: int, distillation, collator, preemption):
    """(ids, logprobs, rest, counts) of ``rows``; None when a preemption arrived before a batch."""
    lm_head = model.get_output_embeddings()
    softcap = output_softcap(model)
    static = lm_head.weight.device.type == "xla"  # static shapes: every position through the head
    out, counts = [], []
    for start in range(0, len(rows), batch_size):
        if preemption.requested:
            return None
        batch = collator(rows[start:start + batch_size])
        inputs = {k: v.to(lm_head.weight.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        hidden, _, keep = labelled_hidden_states(model, lm_head, inputs, static, use_cache=False)
        top = teacher_topk(hidden, lm_head.weight, softcap, distillation.temperature, distillation.top_k)
        picked = keep.reshape(-1).cpu()
        out.append(tuple(t.cpu()[picked] if static else t.cpu() for t in top))
        counts += _row_counts(batch, keep.cpu())
    ids, logprobs, rest = (torch.cat(parts) for parts in zip(*out, strict=True))
    return ids, logprobs, rest, counts


def _row_counts(batch: dict, keep: torch.Tensor) -> list[int]:
    """Labelled positions per row of a padded ([rows, seq]) or packed ([1, total] + row_bounds) batch."""
    bounds = batch.get("row_bounds")
    if bounds is None:
        return keep.sum(1).tolist()
    flat = keep.reshape(-1)
    return [int(flat[a:b].sum()) for a, b in itertools.pairwise(bounds)]


def run_teacher_stage(cfg, features: dict, model, collator, store, progress, preemption,
                      rank, scratch: Path, per_shard: int) -> int:
    """Write every uncommitted shard this process owns; the stage marker when all are committed."""
    d, spec = cfg.spec.distillation, cfg.spec
    plan_shards = {split: shard_count(len(rows), per_shard) for split, rows in features.items()}
    total = sum(plan_shards.values())
    managers = {split: shard_manager(store, split) for split in plan_shards}
    committed = {split: {info.step for info in manager.committed()} for split, manager in managers.items()}
    done = sum(len(steps) for steps in committed.values())
    progress.update(force=True, state="training", step=done, total_steps=total,
                    message=f"teacher pass: {done} of {total} shards committed")
    for split, rows in features.items():
        manager = managers[split]
        for shard in range(plan_shards[split]):
            if shard in committed[split] or shard % rank.world_size != rank.rank:
                continue
            chunk = [dict(r) for r in rows.select(range(shard * per_shard, min(len(rows), (shard + 1) * per_shard)))]
            result = shard_targets(model, chunk, spec.training.batch_size, d, collator, preemption)
            if result is None:
                progress.update(force=True, state="preempted", step=done,
                                message=f"teacher pass preempted with {done} of {total} shards committed")
                return EXIT_PREEMPTED
            local = write_shard(scratch / manager.rel(shard), chunk, *result)
            manager.commit(local, shard)
            shutil.rmtree(local, ignore_errors=True)
            done += 1
            progress.update(force=True, state="training", step=done, total_steps=total,
                            message=f"teacher pass: {done} of {total} shards committed")
    return EXIT_OK


def commit_stage(cfg, store, rows: dict[str, int], per_shard: int) -> bool:
    """Write ``<teacher>/COMMITTED`` once every shard of every split is committed; whether it was written."""
    d = cfg.spec.distillation
    shards = {split: shard_count(n, per_shard) for split, n in rows.items()}
    for split, n in shards.items():
        if len(shard_manager(store, split).committed()) < n:
            return False
    marker = {"rows": rows, "shards": shards, "rowsPerShard": per_shard, "topK": d.top_k,
              "temperature": d.temperature, "teacher": cfg.teacher.to_api()}
    store.write_text(COMMIT_MARKER, json.dumps(marker, indent=1))
    return True


__all__ = ["SPLITS", "commit_stage", "load_teacher", "rows_per_shard", "run_teacher_stage"]

"""The TPU device setup: buckets, TrainingArguments extras and the seam in backends.device_setup."""

from __future__ import annotations

import pytest
from gemma_api import parse_spec
from gemma_trainer import xla


def spec(**training):
    return parse_spec({
        "model": "gemma-2-2b", "dataset": {"trainUri": "gs://data-bkt/train.jsonl"},
        "accelerator": {"type": "tpu-v3", "topology": "2x2"}, "output": {"uri": "gs://out-bkt/runs"},
        "training": training,
    })


def test_bucket_lengths():
    assert xla.bucket_lengths(1024) == (128, 256, 512, 1024)
    assert xla.bucket_lengths(1000) == (128, 256, 512, 1000)
    assert xla.bucket_lengths(128) == (128,)
    assert xla.bucket_lengths(100) == (100,)
    assert xla.bucket_lengths(8192) == (128, 256, 512, 1024, 2048, 4096, 8192)
    assert xla.bucket_lengths(64, min_bucket=16) == (16, 32, 64)
    with pytest.raises(ValueError):
        xla.bucket_lengths(0)


def test_pad_length():
    buckets = xla.bucket_lengths(1000)
    assert [xla.pad_length(n, buckets) for n in (1, 128, 129, 257, 999, 1000)] == [128, 128, 256, 512, 1000, 1000]
    with pytest.raises(ValueError, match="longer than the largest bucket 1000"):
        xla.pad_length(1001, buckets)


def test_device_setup_of_a_tpu():
    s = spec(maxSeqLength=2048, batchSize=1)
    assert xla.is_tpu_run(s)
    plan = xla.device_setup(s)
    assert (plan.device, plan.precision, plan.model_dtype, plan.nproc) == ("xla", "bf16", "bfloat16", 1)
    assert plan.pad_buckets == [128, 256, 512, 1024, 2048]
    args = plan.training_args
    assert args["bf16"] is True and args["dataloader_drop_last"] is True
    assert args["optim"] == "adamw_torch"  # the fused default refuses XLA tensors
    assert "fsdp" not in args  # explicit mark_sharding route, see xla's docstring
    assert xla.slice_devices(s) == 8  # v3-8: 4 chips x 2 TensorCores


def test_backends_seam_uses_the_xla_device_setup():
    from gemma_trainer.backends import device_setup

    assert device_setup(spec(maxSeqLength=512)).pad_buckets == [128, 256, 512]


def test_xla_device_setup_refuses_other_accelerators():
    gpu = parse_spec({"model": "gemma-2-2b", "dataset": {"trainUri": "gs://data-bkt/t.jsonl"},
                      "accelerator": {"type": "nvidia-tesla-t4"}, "output": {"uri": "gs://out-bkt/r"}})
    assert not xla.is_tpu_run(gpu)
    with pytest.raises(ValueError, match="not a TPU type"):
        xla.device_setup(gpu)


def test_hf_fsdp_v2_recipe_is_accepted_by_training_arguments(tmp_path):
    from transformers import TrainingArguments

    extras = {**xla.training_args_overrides(spec()), **xla.hf_fsdp_v2_overrides(), "bf16": False}
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", **extras)
    assert args.fsdp_config["xla"] and args.fsdp_config["xla_fsdp_v2"] and args.fsdp_config["xla_fsdp_grad_ckpt"]
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["Gemma2DecoderLayer"]

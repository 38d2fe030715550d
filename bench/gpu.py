"""GPU benchmark: Gemma-2-2B (real architecture, random weights), LoRA r=16 on all linear layers, sequences of
1024 tokens, bf16 where the GPU supports it (else fp16): the project's trainer path against plain
transformers + peft. Exits 0 with "no CUDA GPU: skipped" where CUDA is not available.

* ours: ``gemma_trainer.config.accelerator_plan`` (precision from the compute capability),
  ``gemma_trainer.model.apply_method`` (LoRA, fp32 adapter weights), ``gemma_trainer.train.training_arguments``
  (activation checkpointing, the plan's bf16/fp16 flag) and the ``GemmaTrainer`` with ``PadCollator``;
* baseline: ``peft.get_peft_model`` with the same LoraConfig and a plain ``transformers.Trainer`` with bf16/fp16
  and default settings (no activation checkpointing), the same model weights, batches and steps.

Figures per run: tokens/s (all tokens are real: every sequence is 1024 long), MFU, peak memory
(``torch.cuda.max_memory_allocated``). MFU = 6 x N x tokens/s / peak, N = all parameters of the model (frozen
included); the 6N convention counts forward (2N) + backward (4N) and gives no credit for the recomputed forward
of activation checkpointing nor for attention FLOPs. Peak: the GPU's dense bf16 (fp16 on T4) tensor-core
TFLOPS from the table below, or ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import final_json, say

# Dense (no sparsity) bf16 tensor-core peaks, TFLOPS, by a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0, "T4": 65.0}

GEMMA2_2B = {
    "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256,
    "sliding_window": 4096, "max_position_embeddings": 8192, "final_logit_softcapping": 30.0,
    "attn_logit_softcapping": 50.0, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    "tie_word_embeddings": True, "attn_implementation": "eager",
}


def spec_for(batch: int, seq: int, steps: int):
    from gemma_operator.api import parse_finetune

    return parse_finetune({
        "apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune", "metadata": {"name": "bench-gpu"},
        "spec": {"model": "gemma-2-2b", "modelUri": "/unused", "method": "lora",
                 "dataset": {"trainUri": "/unused.jsonl"},
                 "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "targetModules": ["all-linear"]},
                 "training": {"maxSteps": steps, "batchSize": batch, "gradientAccumulationSteps": 1,
                              "maxSeqLength": seq, "warmupRatio": 0.0, "lrScheduler": "constant",
                              "loggingSteps": 1000},
                 "accelerator": {"type": "nvidia-tesla-t4"},
                 "output": {"uri": "gs://unused/bench", "checkpointEverySteps": 1000000}},
    }).spec


def base_model(dtype):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Gemma2ForCausalLM(Gemma2Config(**GEMMA2_2B)).to(dtype)
    model.config.use_cache = False
    return model


def features(n: int, seq: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(6, 256000, (n, seq), generator=g)
    return [{"input_ids": row.tolist(), "labels": row.tolist()} for row in ids]


class StepTimer:
    """Wall time of the optimizer steps after the warm-up steps (CUDA synchronised)."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                import torch

                torch.cuda.synchronize()
                if state.global_step == warmup:
                    timer.t0 = time.perf_counter()
                timer.t1 = time.perf_counter()
                timer.steps = state.global_step - warmup

        self.callback = Callback()
        self.t0 = self.t1 = None
        self.steps = 0

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def run(kind: str, args, spec, plan, dtype) -> dict:
    import torch
    from gemma_trainer.batches import PadCollator, lengths
    from gemma_trainer.model import apply_method
    from gemma_trainer.train import _make_trainer_class, training_arguments
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    data = features(args.batch * (args.steps + 1), args.seq)
    timer = StepTimer(args.warmup)
    out = Path(tempfile.mkdtemp(prefix=f"bench-gpu-{kind}-"))
    model = base_model(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if kind == "ours":
        model = apply_method(model, spec, plan)
        targs = training_arguments(spec, plan, out, args.steps, has_eval=False, report_tqdm=False)
        trainer = _make_trainer_class()(model=model, args=targs, train_dataset=data,
                                        data_collator=PadCollator(0, buckets=plan.pad_buckets),
                                        callbacks=[timer.callback], train_lengths=lengths(data))
    else:
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 bias="none", task_type="CAUSAL_LM"))
        precision = {"bf16": True} if plan.precision == "bf16" else {"fp16": True}
        targs = TrainingArguments(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
                                  learning_rate=2e-4, lr_scheduler_type="constant", logging_steps=1000,
                                  save_strategy="no", report_to="none", disable_tqdm=True,
                                  remove_unused_columns=False, **precision)
        trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=PadCollator(0),
                          callbacks=[timer.callback])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer.train()
    tokens_per_s = timer.steps * args.batch * args.seq / timer.seconds
    peak = torch.cuda.max_memory_allocated()
    mfu = 6 * n_params * tokens_per_s / (args.peak_tflops * 1e12)
    say(f"  {kind:8s}: {tokens_per_s:,.0f} tokens/s over {timer.steps} steps, MFU {100 * mfu:.1f}%, "
        f"peak memory {peak / 2**30:.1f} GiB ({trainable:,} trainable of {n_params:,})")
    del trainer, model
    torch.cuda.empty_cache()
    return {"tokens_per_s": tokens_per_s, "mfu": mfu, "peak_memory_bytes": peak, "params": n_params,
            "trainable": trainable, "timed_steps": timer.steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)  # the T4 memory rule refuses 4 x 1024
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        say("no CUDA GPU: skipped (torch is not installed)")
        final_json("gpu", {"skipped": "no torch"})
        return 0
    if not torch.cuda.is_available():
        say("no CUDA GPU: skipped")
        final_json("gpu", {"skipped": "no CUDA GPU"})
        return 0

    from gemma_trainer.config import accelerator_plan

    name = torch.cuda.get_device_name(0)
    if args.peak_tflops is None:
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        if args.peak_tflops is None:
            say(f"unknown GPU {name!r}: pass --peak-tflops for MFU; using 100")
            args.peak_tflops = 100.0
    spec = spec_for(args.batch, args.seq, args.steps)
    plan = accelerator_plan(spec)
    dtype = torch.bfloat16 if plan.precision == "bf16" else torch.float16
    say(f"GPU {name} (capability {torch.cuda.get_device_capability(0)}), {plan.precision}, peak "
        f"{args.peak_tflops:g} TFLOPS; Gemma-2-2B random weights, LoRA r=16 all-linear, batch {args.batch} x "
        f"{args.seq} tokens, {args.steps} steps ({args.warmup} warm-up steps not timed)")
    results = {kind: run(kind, args, spec, plan, dtype) for kind in ("baseline", "ours")}
    ratio = results["ours"]["tokens_per_s"] / results["baseline"]["tokens_per_s"]
    mem_ratio = results["ours"]["peak_memory_bytes"] / results["baseline"]["peak_memory_bytes"]
    say(f"  ours / baseline: {ratio:.2f}x tokens/s, {mem_ratio:.2f}x peak memory "
        f"(ours uses activation checkpointing, the baseline does not)")
    final_json("gpu", {"device": name, "precision": plan.precision, "peak_tflops": args.peak_tflops,
                       "batch": args.batch, "seq": args.seq, **results, "ratio_tokens_per_s": ratio,
                       "ratio_peak_memory": mem_ratio,
                       "mfu_formula": "6 * all_params * tokens_per_s / peak (no recompute, no attention FLOPs)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

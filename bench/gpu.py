"""GPU benchmark: Gemma-2-2B (real architecture, random weights), LoRA r=16 on all linear layers, batch 4 x 1024,
bf16 where the GPU supports it (else fp16): the project's trainer against TRL's SFTTrainer + peft; then Gemma-2-9B
QLoRA at batch 2 x 2048 under a T4's 14.7 GB cap. Exits 0 with "no CUDA GPU: skipped" where CUDA is not available.

* ours: ``gemma_trainer.backends.device_setup`` (precision from the compute capability),
  ``gemma_trainer.model.apply_method`` (LoRA, fp32 adapter weights), ``gemma_trainer.train.training_arguments``
  (activation checkpointing), the ``GemmaTrainer`` (chunked loss head) with ``PackedCollator`` and
  ``packed_attention`` (padding-free, attention row by row);
* TRL: ``trl.SFTTrainer`` with ``SFTConfig`` defaults (activation checkpointing on, its fused LM head) and the
  plan's bf16/fp16 flag, on the same PEFT model, token ids, steps.

Figures per run: tokens/s (all tokens are real: every sequence is 1024 long), MFU, peak memory
(``torch.cuda.max_memory_allocated``) and, for ours, the memory model's prediction for the same spec
(gemma_api.memory: weights + trainable state + activations, without its runtime allowance; target:
within 15% of the measurement). MFU = 6 x N x tokens/s / peak, N = all parameters of the model (frozen
included); the 6N convention counts forward (2N) + backward (4N) and gives no credit for the recomputed forward
of activation checkpointing nor for attention FLOPs. Peak: the GPU's dense bf16 (fp16 on T4) tensor-core TFLOPS
from the table below, or ``--peak-tflops``.

T4 precision on this GPU (``--t4``, on by default): the T4's plan (compute capability 7.5 forced: fp16 projections
around an fp32 stream, a loss-scaled backward; ``gemma_api.precision``) natively on this GPU's fp16
tensor cores, under a 14.7 GB cap: per family it can build (Gemma 2 2B and Gemma 3 1B shapes; random weights, as
this machine reaches no hub), the loss of one batch against fp32 on the same weights, next to plain fp16 autocast
on fp16 weights (the trainer's T4 load before the precision table); then tokens/s and peak memory of LoRA training
under the policy and under fp16 autocast, and the memory model's prediction for the policy. Random weights do not
reproduce Gemma's large activations (the real Gemma 3 270M overflows fp16 at layer 8: ``gemmaft check-numerics``
shows it on a CPU), so the loss figures here check the arithmetic's agreement, not the overflow.

9B QLoRA: Gemma-2-9B's architecture with random weights, every decoder linear layer replaced by a bitsandbytes
NF4 ``Linear4bit`` (double quantisation, fp16 compute), embedding and norms fp16; the process is capped at 14.7 GB
(``torch.cuda.set_per_process_memory_fraction``) and trains ``--qlora-steps`` steps of 2 x 2048 with ours:
completed or not, peak memory, predicted vs measured.
"""

from __future__ import annotations

import argparse
import contextlib
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
GEMMA3_1B = {"vocab_size": 262144, "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
             "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256,
             "sliding_window": 512, "max_position_embeddings": 32768, "pad_token_id": 0, "eos_token_id": 1,
             "bos_token_id": 2, "tie_word_embeddings": True, "attn_implementation": "eager"}
GEMMA2_9B = {**GEMMA2_2B, "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
             "num_attention_heads": 16, "num_key_value_heads": 8}
T4_USABLE_BYTES = int(14.7e9)


def spec_for(model: str, method: str, batch: int, seq: int, steps: int):
    from gemma_api import parse_finetune

    return parse_finetune({
        "apiVersion": "gemmaft.dev/v1alpha1", "kind": "GemmaFineTune", "metadata": {"name": "bench-gpu"},
        "spec": {"model": model, "modelUri": "/unused", "method": method, "dataset": {"trainUri": "/unused.jsonl"},
                 "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "targetModules": ["all-linear"]},
                 "training": {"maxSteps": steps, "batchSize": batch, "gradientAccumulationSteps": 1,
                              "maxSeqLength": seq, "warmupRatio": 0.0, "lrScheduler": "constant",
                              "loggingSteps": 1000},
                 "accelerator": {"type": "nvidia-tesla-t4"},
                 "output": {"uri": "gs://unused/bench", "checkpointEverySteps": 1000000}},
    }).spec


def base_model(dtype, config: dict = GEMMA2_2B):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    gemma3 = config["vocab_size"] == GEMMA3_1B["vocab_size"]
    config_class, model_class = (Gemma3TextConfig, Gemma3ForCausalLM) if gemma3 else (Gemma2Config, Gemma2ForCausalLM)
    with torch.device("cuda"):
        model = model_class(config_class(**config)).to(dtype)
    model.config.use_cache = False
    return model


def quantized_9b_model():
    """Gemma-2-9B's architecture, random weights, decoder linears as bitsandbytes NF4 (what qlora loads)."""
    import bitsandbytes as bnb
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    with torch.device("meta"):
        model = Gemma2ForCausalLM(Gemma2Config(**GEMMA2_9B)).half()
    for name, module in list(model.model.layers.named_modules()):
        if isinstance(module, torch.nn.Linear):
            weight = torch.randn(module.out_features, module.in_features, dtype=torch.float16) * 0.02
            new = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=False,
                                    compute_dtype=torch.float16, compress_statistics=True, quant_type="nf4")
            new.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=True,
                                           quant_type="nf4").to("cuda")  # quantised on the way to the GPU
            model.model.layers.set_submodule(name, new)
    for module in model.modules():  # what is left on meta (embedding, norms, buffers): fp16 on the GPU
        if any(t.is_meta for t in (*module.parameters(recurse=False), *module.buffers(recurse=False))):
            module.to_empty(device="cuda", recurse=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.zero_()  # Gemma's RMSNorm scales by (1 + weight)
            elif param.dtype != torch.uint8:
                param.normal_(0.0, 0.02)
        model.model.embed_tokens.embed_scale.fill_(GEMMA2_9B["hidden_size"] ** 0.5)
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(model.config).to("cuda")  # its buffers were meta
    model.is_loaded_in_4bit = True
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


def predicted_bytes(spec) -> int:
    """The memory model's figure for ``spec`` without its runtime allowance (CUDA context, allocator slack)."""
    from gemma_api import estimate

    est = estimate(spec)
    return est.weights + est.trainable + est.activations


def ours_trainer(model, spec, setup, data, out: Path, callbacks, steps: int):
    from gemma_trainer.batches import PackedCollator
    from gemma_trainer.dataset import lengths_of
    from gemma_trainer.model import apply_method
    from gemma_trainer.packed_attention import use_packed_attention
    from gemma_trainer.precision import apply_precision
    from gemma_trainer.train import _make_trainer_class, training_arguments

    model = apply_method(apply_precision(model, setup.policy), spec, setup)
    use_packed_attention(model)
    args = training_arguments(spec, setup, out, steps, has_eval=False, report_tqdm=False)
    return _make_trainer_class()(model=model, args=args, train_dataset=data, data_collator=PackedCollator(),
                                 callbacks=callbacks, train_lengths=lengths_of(data), setup=setup)


def trl_trainer(model, setup, args, data, out: Path, callbacks):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    precision = {"bf16": True, "fp16": False} if setup.precision == "bf16" else {"fp16": True, "bf16": False}
    config = SFTConfig(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
                       learning_rate=2e-4, lr_scheduler_type="constant", logging_steps=1000, save_strategy="no",
                       report_to="none", disable_tqdm=True, max_length=args.seq, **precision)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", bias="none",
                      task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=config, peft_config=lora, callbacks=callbacks,
                      train_dataset=Dataset.from_list([{"input_ids": f["input_ids"]} for f in data]))


def run(kind: str, args, spec, setup, dtype, cap_bytes: int | None = None) -> dict:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    data = features(args.batch * (args.steps + 1), args.seq)
    timer = StepTimer(args.warmup)
    out = Path(tempfile.mkdtemp(prefix=f"bench-gpu-{kind}-"))
    model = base_model(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if kind == "trl":
        trainer = trl_trainer(model, setup, args, data, out, [timer.callback])
    else:
        trainer = ours_trainer(model, spec, setup, data, out, [timer.callback], args.steps)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    with memory_cap(cap_bytes):
        trainer.train()
    tokens_per_s = timer.steps * args.batch * args.seq / timer.seconds
    peak = torch.cuda.max_memory_allocated()
    mfu = 6 * n_params * tokens_per_s / (args.peak_tflops * 1e12)
    figures = {"tokens_per_s": tokens_per_s, "mfu": mfu, "peak_memory_bytes": peak, "params": n_params,
               "trainable": trainable, "timed_steps": timer.steps}
    if kind != "trl":
        figures["predicted_memory_bytes"] = predicted_bytes(spec)
        figures["predicted_over_measured"] = figures["predicted_memory_bytes"] / peak
    say(f"  {kind:8s}: {tokens_per_s:,.0f} tokens/s over {timer.steps} steps, MFU {100 * mfu:.1f}%, "
        f"peak memory {peak / 2**30:.2f} GiB ({trainable:,} trainable of {n_params:,})"
        + (f"; predicted {figures['predicted_memory_bytes'] / 2**30:.2f} GiB "
           f"({figures['predicted_over_measured']:.2f}x)" if kind != "trl" else ""))
    del trainer, model
    torch.cuda.empty_cache()
    return figures


@contextlib.contextmanager
def memory_cap(cap_bytes: int | None):
    """The process's CUDA memory capped at ``cap_bytes`` within the block (None: no cap)."""
    import torch

    if cap_bytes:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total))
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def t4_losses(config: dict, seq: int) -> dict:
    """One batch's loss on the same random weights: fp32, the T4 policy (native fp16 projections) and fp16
    weights under fp16 autocast; with per-layer maxima from ``gemma_trainer.numerics.measure``."""
    import torch
    from gemma_api.precision import FP16_AUTOCAST, FP16_PROJECTIONS, FP32
    from gemma_trainer.batches import PackedCollator
    from gemma_trainer.numerics import measure
    from gemma_trainer.packed_attention import use_packed_attention
    from gemma_trainer.precision import apply_precision

    batch = {k: v.to("cuda") if hasattr(v, "to") else v for k, v in PackedCollator()(features(2, seq)).items()}
    out = {}
    for policy, dtype in ((FP32, torch.float32), (FP16_PROJECTIONS, torch.float16), (FP16_AUTOCAST, torch.float16)):
        model = apply_precision(base_model(dtype, config), policy)
        use_packed_attention(model)
        for name, param in model.named_parameters():
            param.requires_grad_("norm" in name)  # the backward reaches every layer; norms are small
        with torch.autocast("cuda", dtype=torch.float16, enabled=policy.autocast is not None):
            loss, layers, scale = measure(model, batch, policy)
        out[policy.name] = {"loss": loss, "grads_finite_at_scale": scale,
                            "max_hidden": max(layer.max_hidden for layer in layers)}
        del model
        torch.cuda.empty_cache()
    reference = out["fp32"]["loss"]
    for name, row in out.items():
        row["loss_rel_diff"] = abs(row["loss"] - reference) / abs(reference)
        say(f"    {name:17s} loss {row['loss']:.5f} ({100 * row['loss_rel_diff']:.3f}% off fp32), max |hidden| "
            f"{row['max_hidden']:.3g}, gradients finite at scale {row['grads_finite_at_scale']}")
    return out


def run_t4_policy(args) -> dict:
    """The T4's plan natively on this GPU under the T4's memory: losses against fp32 per family, then LoRA
    training under the policy and under plain fp16 autocast (tokens/s, peak memory, the memory model)."""
    import torch
    from gemma_trainer.backends import device_setup

    say("T4 precision on this GPU (fp16 forced, 14.7 GB cap):")
    losses = {}
    for family, config in (("gemma2-2b", GEMMA2_2B), ("gemma3-1b", GEMMA3_1B)):
        say(f"  {family}, one batch of 2 x {args.seq}:")
        losses[family] = t4_losses(config, args.seq)
    spec = spec_for("gemma-2-2b", "lora", args.batch, args.seq, args.steps)
    training = {}
    for precision in ("fp16-projections", "fp16-autocast"):
        setup = device_setup(spec, capability=(7, 5), precision=precision)
        training[precision] = run(precision, args, spec, setup, torch.float16, cap_bytes=T4_USABLE_BYTES)
    ratio = training["fp16-projections"]["tokens_per_s"] / training["fp16-autocast"]["tokens_per_s"]
    say(f"  policy / fp16 autocast: {ratio:.2f}x tokens/s")
    return {"losses": losses, "training": training, "ratio_tokens_per_s_vs_fp16_autocast": ratio}


def run_qlora_9b(args) -> dict:
    """9B QLoRA, batch 2 x 2048, with ours under a T4's usable memory: does it complete its steps?"""
    import torch
    from gemma_trainer.backends import device_setup

    spec = spec_for("gemma-2-9b", "qlora", 2, 2048, args.qlora_steps)
    setup = device_setup(spec, capability=(7, 5))  # the T4's precision policy: fp16 projections, fp32 stream
    torch.cuda.empty_cache()
    model = quantized_9b_model()
    torch.cuda.reset_peak_memory_stats()
    out = Path(tempfile.mkdtemp(prefix="bench-gpu-qlora-"))
    trainer = ours_trainer(model, spec, setup, features(2 * args.qlora_steps, 2048), out, [], args.qlora_steps)
    try:
        with memory_cap(T4_USABLE_BYTES):
            trainer.train()
        completed, error = trainer.state.global_step, None
    except torch.OutOfMemoryError as err:
        completed, error = trainer.state.global_step, str(err).splitlines()[0]
    peak, predicted = torch.cuda.max_memory_allocated(), predicted_bytes(spec)
    say(f"  9B QLoRA 2 x 2048 under {T4_USABLE_BYTES / 1e9:.1f} GB: {completed}/{args.qlora_steps} steps"
        f"{' (OOM: ' + error + ')' if error else ''}; peak {peak / 2**30:.2f} GiB, predicted "
        f"{predicted / 2**30:.2f} GiB ({predicted / peak:.2f}x)")
    return {"steps": completed, "of": args.qlora_steps, "error": error, "peak_memory_bytes": peak,
            "predicted_memory_bytes": predicted, "predicted_over_measured": predicted / peak}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--qlora-steps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--no-t4", dest="t4", action="store_false", help="skip the T4 precision section")
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

    from gemma_trainer.backends import device_setup

    name = torch.cuda.get_device_name(0)
    if args.peak_tflops is None:
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        if args.peak_tflops is None:
            say(f"unknown GPU {name!r}: pass --peak-tflops for MFU; using 100")
            args.peak_tflops = 100.0
    spec = spec_for("gemma-2-2b", "lora", args.batch, args.seq, args.steps)
    setup = device_setup(spec)
    dtype = torch.bfloat16 if setup.precision == "bf16" else torch.float16
    say(f"GPU {name} (capability {torch.cuda.get_device_capability(0)}), {setup.precision}, peak "
        f"{args.peak_tflops:g} TFLOPS; Gemma-2-2B random weights, LoRA r=16 all-linear, batch {args.batch} x "
        f"{args.seq} tokens, {args.steps} steps ({args.warmup} warm-up steps not timed)")
    results = {kind: run(kind, args, spec, setup, dtype) for kind in ("trl", "ours")}
    ratio = results["ours"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
    mem_ratio = results["ours"]["peak_memory_bytes"] / results["trl"]["peak_memory_bytes"]
    say(f"  ours / TRL: {ratio:.2f}x tokens/s, {mem_ratio:.2f}x peak memory")
    t4 = run_t4_policy(args) if args.t4 else None
    qlora = run_qlora_9b(args)
    final_json("gpu", {"device": name, "precision": setup.precision, "peak_tflops": args.peak_tflops,
                       "batch": args.batch, "seq": args.seq, **results, "ratio_tokens_per_s_vs_trl": ratio,
                       "ratio_peak_memory_vs_trl": mem_ratio, "qlora_9b_2x2048_t4_cap": qlora, "t4_policy": t4,
                       "mfu_formula": "6 * all_params * tokens_per_s / peak (no recompute, no attention FLOPs)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Admission rules of ``spec.serving``: can the engine serve what this spec trains, on the GPU it names?

Each problem names the field, the numbers and the fix, as the training rules do (``rules.py``). The engine's
limits come from ``serving_engine.py``, the GPUs from the accelerator registry, the memory from
``serving_memory.py``.
"""

from __future__ import annotations

from .accelerators import names_of, profile, spelled_list
from .facts import GB, MODELS
from .methods import training_method
from .problem import Problem, accelerator_problems
from .serving_engine import (
    ENGINE,
    ENGINE_FAMILIES,
    MAX_LORA_RANKS,
    EngineFamily,
    engine_family,
    engine_lora_rank,
    expand_targets,
)
from .serving_memory import inference_estimate, max_model_length
from .spec import GemmaFineTuneSpec

PATH = "spec.serving"
SERVABLE_MODEL_SCHEMES = ("hf://", "gs://")


def _placement_problems(spec: GemmaFineTuneSpec) -> list[Problem]:
    acc = spec.serving.accelerator
    if profile(acc.type).kind != "gpu":
        return [Problem(f"{PATH}.accelerator.type",
                        f"serving runs {ENGINE} on a CUDA GPU, not {acc.type}: use accelerator.type "
                        f"{spelled_list(names_of('gpu'))}")]
    problems = accelerator_problems(acc, f"{PATH}.accelerator")
    heads, gpus = MODELS[spec.model].heads, profile(acc.type).gpus(acc.count)
    if heads % gpus:
        fits = [c for c in profile(acc.type).gpu_counts if heads % c == 0]
        problems.append(Problem(f"{PATH}.accelerator.count",
                                f"{ENGINE} splits {spec.model}'s {heads} attention heads over the GPUs of a replica "
                                f"(tensor parallelism): count {gpus} does not divide them; use count "
                                f"{spelled_list(fits)}"))
    return problems


def _source_problems(spec: GemmaFineTuneSpec) -> list[Problem]:
    problems = []
    if not spec.resolved_model_uri.startswith(SERVABLE_MODEL_SCHEMES):
        problems.append(Problem("spec.modelUri",
                                f"the serving pods read the base model from hf:// or gs://, not {spec.resolved_model_uri}"
                                f": set modelUri to hf://google/{spec.model} or a gs:// copy of the weights the "
                                "adapter was trained on, or remove serving"))
    if not spec.output.uri.startswith("gs://"):
        problems.append(Problem("spec.output.uri",
                                "the serving pods read the run's adapter from GCS: output.uri must be "
                                "gs://BUCKET/PATH, or remove serving"))
    if training_method(spec.method).served_from_merged and not spec.output.merge_adapter:
        problems.append(Problem("spec.output.mergeAdapter",
                                f"method {spec.method} writes only the trained layers, which {ENGINE} cannot load: serving "
                                "needs the merged weights; set output.mergeAdapter: true"))
    return problems


def _length_problems(spec: GemmaFineTuneSpec) -> list[Problem]:
    length, positions = max_model_length(spec), MODELS[spec.model].max_positions
    if length <= positions:
        return []
    field = f"{PATH}.maxModelLength" if spec.serving.max_model_length else "spec.training.maxSeqLength"
    return [Problem(field, f"{spec.model} has {positions} positions: a served sequence of {length} tokens is "
                           f"longer; set serving.maxModelLength to at most {positions}")]


def lora_problems(spec: GemmaFineTuneSpec, row: EngineFamily) -> list[Problem]:
    """The adapter's rank and target modules against the engine's LoRA limits."""
    if not training_method(spec.method).peft_adapter:
        return []
    problems = []
    rank, limit = spec.lora.r, spec.serving.max_lora_rank
    if engine_lora_rank(rank) is None:
        problems.append(Problem("spec.lora.r", f"{ENGINE} serves adapters up to rank {MAX_LORA_RANKS[-1]}, not "
                                               f"{rank}: train with lora.r at most {MAX_LORA_RANKS[-1]}"))
    elif limit is not None and rank > limit:
        problems.append(Problem(f"{PATH}.maxLoraRank",
                                f"the adapter has rank {rank} (lora.r), above {ENGINE}'s --max-lora-rank {limit}: "
                                f"set serving.maxLoraRank to {engine_lora_rank(rank)} (it takes "
                                f"{spelled_list(MAX_LORA_RANKS)}) or train with lora.r at most {limit}"))
    refused = [m for m in expand_targets(spec.lora.target_modules) if m not in row.lora_modules]
    if refused:
        problems.append(Problem("spec.lora.targetModules",
                                f"{ENGINE}'s LoRA for {spec.model} accepts {spelled_list(sorted(row.lora_modules))}, "
                                f"not {spelled_list(refused)}: remove them from lora.targetModules"))
    return problems


def _memory_fix(spec: GemmaFineTuneSpec, row: EngineFamily) -> str:
    """Other GPUs (one each) that serve the same request, or the knobs that shrink it."""
    fixes = []
    for name in names_of("gpu"):
        if name == spec.serving.accelerator.type:
            continue
        other = spec.model_copy(update={"serving": spec.serving.model_copy(
            update={"accelerator": spec.serving.accelerator.model_copy(update={"type": name, "count": None})})})
        est = inference_estimate(other, row)
        if est.fits:
            fixes.append(f"serving.accelerator.type {name} (serves it in {est.dtype}: about {est.per_gpu / GB:.1f} "
                         "GB)")
    fixes.append(f"lower serving.maxModelLength ({max_model_length(spec)}) or serving.concurrentSequences "
                 f"({spec.serving.concurrent_sequences})")
    return "; or ".join(fixes)


def _memory_problems(spec: GemmaFineTuneSpec, row: EngineFamily) -> list[Problem]:
    est = inference_estimate(spec, row)
    if est.fits:
        return []
    acc = spec.serving.accelerator
    gpus = profile(acc.type).gpus(acc.count)
    why = ""
    if est.dtype != profile(acc.type).compute_dtype:
        why = (f" ({ENGINE} refuses {profile(acc.type).compute_dtype} for {spec.model}: numerical instability; "
               f"{acc.type} has no bfloat16, so it serves in {est.dtype})")
    where = f"{gpus} x {acc.type}" if gpus > 1 else acc.type
    return [Problem(f"{PATH}.accelerator.type",
                    f"{spec.model} cannot be served on {where}{why}: {est.describe()}. Fix: "
                    f"{_memory_fix(spec, row)}.")]


def check_serving(spec: GemmaFineTuneSpec) -> list[Problem]:
    """Every serving rule; the memory fit only once the rest holds."""
    row = engine_family(MODELS[spec.model].family)
    if row is None:
        return [Problem(f"{PATH}", f"no {ENGINE} facts for {spec.model}'s family ({MODELS[spec.model].family}) in "
                                   f"api/serving_engine.py (known: {spelled_list(ENGINE_FAMILIES)}): remove serving")]
    problems = _placement_problems(spec) + _source_problems(spec) + _length_problems(spec) + lora_problems(spec, row)
    return problems or _memory_problems(spec, row)

"""spec.distillation: defaults, field-level refusals (CRD and pydantic), the forward-only fit, run ids."""

from __future__ import annotations

import pytest
from gemma_api import SpecError, parse_finetune, run_id
from gemma_api.distillation import resolve_teacher, teacher_key, teacher_uri
from gemma_api.facts import MODELS, tokenizer_family
from gemma_api.teacher_memory import teacher_estimate

from tests.conftest import manifest
from tests.support import crd_schema

T4 = {"type": "nvidia-tesla-t4"}
TPU = {"type": "tpu-v3", "topology": "2x2"}


def distil(teacher: dict | None = None, student: dict | None = None, **distillation) -> dict:
    """A gemma-2-2b-it student on a T4 distilled from a teacher (default: gemma-2-9b-it on a TPU v3-8)."""
    d = {"teacher": {"model": "gemma-2-9b-it", **(teacher or {})}, "accelerator": TPU, **distillation}
    return manifest(model="gemma-2-2b-it", distillation=d, **(student or {}))


def problems(obj: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_finetune(obj)
    return [str(p) for p in info.value.problems]


def test_defaults_and_teacher_accelerator_default_to_the_student():
    spec = parse_finetune(manifest(model="gemma-2-2b-it", distillation={"teacher": {"model": "gemma-2-2b"}})).spec
    d = spec.distillation
    assert (d.top_k, d.temperature, d.kd_weight, d.accelerator) == (64, 1.0, 0.5, None)
    assert teacher_estimate(spec).capacity == teacher_estimate(
        parse_finetune(distil({"model": "gemma-2-2b"}, accelerator=T4)).spec).capacity
    assert crd_schema.validate(distil()) == []


# (distillation overrides, field the message names, also rejected by the CRD schema?)
INVALID = [
    ({"topK": 0}, "spec.distillation.topK", True),
    ({"topK": 5000}, "spec.distillation.topK", True),
    ({"temperature": 0}, "spec.distillation.temperature", True),
    ({"kdWeight": 1.5}, "spec.distillation.kdWeight", True),
    ({"teacher": {"model": "gemma-2-9b-it", "fromFineTune": "big", "adapterUri": "gs://bkt/a"}},
     "spec.distillation.teacher.fromFineTune", True),
    ({"teacher": {"model": "gemma-2-9b-it", "quantization": "nf4"}}, "spec.distillation.teacher.quantization", False),
    ({"accelerator": {"type": "tpu-v3", "count": 2}}, "spec.distillation.accelerator.count", True),
    ({"student": {"accelerator": TPU}}, "spec.accelerator.type", False),
    # A 9B teacher in 16-bit does not fit one T4 even forward-only.
    ({"accelerator": T4}, "spec.distillation.teacher.model", False),
    ({"teacher": {"model": "gemma-2-27b-it", "quantization": "nf4"}, "accelerator": T4},
     "spec.distillation.teacher.model", False),
]


@pytest.mark.parametrize("overrides, field, crd_rejects", INVALID, ids=[f for _, f, _ in INVALID])
def test_invalid_distillations_name_the_field(overrides, field, crd_rejects):
    obj = distil(**{k: v for k, v in overrides.items() if k not in ("teacher", "student")}, teacher=None,
                 student=overrides.get("student"))
    if "teacher" in overrides:
        obj["spec"]["distillation"]["teacher"] = overrides["teacher"]
    found = problems(obj)
    assert any(p.startswith(field + ":") for p in found), found
    assert bool(crd_schema.validate(obj)) is crd_rejects


def test_teacher_fit_is_forward_only_and_names_the_fixes():
    (message,) = problems(distil(accelerator=T4))
    assert "does not fit nvidia-tesla-t4" in message and "quantization: nf4" in message and "tpu-v3" in message
    fitted = parse_finetune(distil({"quantization": "nf4"}, accelerator=T4)).spec  # the first fix fits
    est = teacher_estimate(fitted)
    assert est.trainable == 0 and est.fits
    # Forward-only needs less than training the same model with LoRA would (no gradients, no kept activations).
    from gemma_api import estimate

    lora_9b = estimate(parse_finetune(manifest(model="gemma-2-9b", accelerator=TPU)).spec)
    teacher_9b = teacher_estimate(parse_finetune(distil()).spec)
    assert teacher_9b.weights == lora_9b.weights and teacher_9b.activations < lora_9b.activations / 2


def test_different_tokenizer_families_are_refused():
    gemma3 = [m for m in MODELS if tokenizer_family(m) != tokenizer_family("gemma-2-2b-it")]
    assert gemma3, "no model of another tokenizer family than Gemma 2's"
    found = problems(distil({"model": gemma3[0]}))
    (message,) = [p for p in found if p.startswith("spec.distillation.teacher.model:")]
    assert "tokenizer" in message and tokenizer_family(gemma3[0]) in message
    assert "Gemma 2" in message


def test_a_teacher_change_starts_a_new_run_and_student_changes_reuse_the_teacher_outputs():
    def ids(obj):
        spec = parse_finetune(obj).spec
        key = teacher_key(spec, resolve_teacher(spec))
        return run_id(spec), key, teacher_uri(spec, key)

    base = ids(distil())
    student_only = [
        distil(kdWeight=0.9),
        distil(student={"training": {"learningRate": 1e-4, "seed": 3}}),
        distil(student={"method": "qlora"}),
        distil(accelerator={"type": "tpu-v3", "topology": "4x4"}),  # where the teacher runs, not what it says
    ]
    for obj in student_only:
        rid, key, uri = ids(obj)
        assert rid != base[0] and (key, uri) == base[1:]
    teacher_changes = [
        distil({"adapterUri": "gs://bkt/runs/big/abc/adapter"}),
        distil({"model": "gemma-2-27b-it"}, accelerator={"type": "tpu-v3", "topology": "4x4"}),
        distil(topK=32),
        distil(temperature=2.0),
        distil(student={"training": {"maxSeqLength": 512}}),
        distil(student={"dataset": {"trainUri": "gs://bkt/other.jsonl"}}),
    ]
    for obj in teacher_changes:
        rid, key, uri = ids(obj)
        assert rid != base[0] and key != base[1] and uri != base[2]
    assert base[2] == f"gs://out/runs/teacher-{base[1]}"


def test_from_fine_tune_resolves_to_the_referenced_runs_adapter():
    student = parse_finetune(distil({"fromFineTune": "big"})).spec
    pending = resolve_teacher(student)
    assert not pending.resolved and pending.from_fine_tune == "big"
    source = parse_finetune({**manifest(model="gemma-2-9b-it", accelerator=TPU), "metadata": {"name": "big"}})
    teacher = resolve_teacher(student, source.spec, "gs://out/runs/r1/adapter")
    assert teacher.resolved
    assert (teacher.model_uri, teacher.adapter_uri) == ("hf://google/gemma-2-9b-it", "gs://out/runs/r1/adapter")
    assert run_id(student, teacher) != run_id(student, pending)

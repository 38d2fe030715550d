"""``spec.distillation``: train the student (the spec's model) on a teacher's next-token distribution.

A distillation run has two stages. The *teacher stage* runs the teacher forward over the training and eval rows
and stores, per labelled position, the teacher's top-k token ids and log-probabilities plus the log of the
remaining mass, in a folder keyed by the teacher stage's own content hash (:func:`teacher_key`):
``<output.uri>/teacher-<key>/``. The *student stage* is a normal run in ``<output.uri>/<runId>/`` whose loss is
``kdWeight x KL(teacher || student) + (1 - kdWeight) x cross-entropy``. The run id covers the teacher key, so a
change to the teacher or its adapter starts a new run, while a change to student fields alone reuses the
committed teacher outputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from .accelerator_spec import Accelerator
from .base import ApiModel, cel, with_cel
from .facts import hub_id
from .fields import DnsSubdomain, ModelName, ModelUri, Uri
from .run_stages import TEACHER_STAGE

TeacherQuantization = Literal["none", "nf4"]

TOP_K_MAX = 1024
# The teacher's LM head is applied to at most TEACHER_POSITION_CHUNK positions x TEACHER_VOCAB_CHUNK vocabulary
# entries at a time (the trainer and the forward-only memory estimate both read these).
TEACHER_POSITION_CHUNK = 512
TEACHER_VOCAB_CHUNK = 16_384
TEACHER_DIR_PREFIX = "teacher-"


class Teacher(ApiModel):
    """The model whose next-token distribution the student learns (it only runs forward)."""

    model_config = with_cel(
        cel("!has(self.fromFineTune) || (!has(self.modelUri) && !has(self.adapterUri))",
            "fromFineTune takes the weights and adapter of that fine-tune: remove teacher.modelUri and "
            "teacher.adapterUri", ".fromFineTune"),
    )

    model: ModelName
    """Teacher checkpoint (same tokenizer family as spec.model), e.g. gemma-2-9b-it for a gemma-2-2b-it student."""
    model_uri: ModelUri | None = None
    """Where the teacher's weights are read: gs://..., hf://org/name, or a local folder; default hf://google/<model>."""
    adapter_uri: Uri | None = None
    """The adapter folder of an earlier fine-tune of the teacher (its <run>/adapter): applied before the pass."""
    from_fine_tune: DnsSubdomain | None = None
    """Name of a GemmaFineTune in this namespace: its model and adapter, used once it has Succeeded."""
    quantization: TeacherQuantization = "none"
    """none (the accelerator's precision) or nf4 (4-bit base weights, a QLoRA teacher; CUDA only)."""


class Distillation(ApiModel):
    """Knowledge distillation: a teacher pass, then the student trained on its top-k distribution."""

    teacher: Teacher
    top_k: int = Field(64, ge=1, le=TOP_K_MAX)
    """Teacher log-probabilities kept per labelled position; the remaining mass is kept as one rest bucket."""
    temperature: float = Field(1.0, gt=0, le=20.0)
    """Softmax temperature applied to teacher and student logits in the KL term (not in the cross-entropy)."""
    kd_weight: float = Field(0.5, ge=0.0, le=1.0)
    """loss = kdWeight x KL(teacher || student) + (1 - kdWeight) x cross-entropy on the labels."""
    accelerator: Accelerator | None = None
    """Where the teacher stage runs; default: the student's spec.accelerator."""


class ResolvedTeacher(ApiModel):
    """The teacher as the teacher stage loads it (fromFineTune replaced by that fine-tune's outputs)."""

    model: ModelName
    model_uri: str
    adapter_uri: str | None = None
    quantization: TeacherQuantization = "none"
    from_fine_tune: str | None = None
    """Set while the referenced fine-tune is not resolved yet (its model and adapter are unknown)."""

    @property
    def resolved(self) -> bool:
        return self.from_fine_tune is None


def resolve_teacher(spec, source_spec=None, source_adapter_uri: str | None = None) -> ResolvedTeacher:
    """The teacher of ``spec.distillation``. For ``fromFineTune``: ``source_spec`` is the referenced fine-tune's
    spec and ``source_adapter_uri`` its status.outputs.adapterUri once it has Succeeded; without them the
    teacher stays unresolved."""
    teacher = spec.distillation.teacher
    if teacher.from_fine_tune is None:
        return ResolvedTeacher(model=teacher.model, model_uri=teacher.model_uri or f"hf://{hub_id(teacher.model)}",
                               adapter_uri=teacher.adapter_uri, quantization=teacher.quantization)
    if source_spec is None or not source_adapter_uri:
        return ResolvedTeacher(model=teacher.model, model_uri="", quantization=teacher.quantization,
                               from_fine_tune=teacher.from_fine_tune)
    return ResolvedTeacher(model=teacher.model, model_uri=source_spec.resolved_model_uri,
                           adapter_uri=source_adapter_uri, quantization=teacher.quantization)


def teacher_accelerator(spec) -> Accelerator:
    return spec.distillation.accelerator or spec.accelerator


def stage_spec(spec, stage: str | None):
    """The spec whose accelerator runs ``stage``: the teacher stage runs on the teacher's accelerator."""
    if spec.distillation is None or stage != TEACHER_STAGE:
        return spec
    return spec.model_copy(update={"accelerator": teacher_accelerator(spec)})


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


def teacher_key(spec, teacher: ResolvedTeacher) -> str:
    """Content hash of the teacher stage's outputs: the teacher's weights and adapter, the rows and their
    tokenisation length, topK and temperature. Student fields and the teacher's accelerator are not part of it
    (the outputs mean the same on any accelerator)."""
    d = spec.distillation
    fields = {
        "teacher": teacher.model_dump(mode="json", by_alias=True),
        "dataset": spec.dataset.model_dump(mode="json", by_alias=True),
        "maxSeqLength": spec.training.max_seq_length,
        "topK": d.top_k,
        "temperature": d.temperature,
    }
    return _digest(fields)


def run_identity(spec, teacher: ResolvedTeacher | None = None) -> dict:
    """What a distillation adds to the run id: the teacher key, the KD weight and where the teacher runs."""
    teacher = teacher or resolve_teacher(spec)
    d = spec.distillation
    return {"teacherKey": teacher_key(spec, teacher), "kdWeight": d.kd_weight,
            "teacherAccelerator": teacher_accelerator(spec).model_dump(mode="json", by_alias=True)}


def teacher_uri(spec, key: str) -> str:
    """Folder of the teacher stage's outputs (shared by every run with the same teacher key)."""
    return f"{spec.output.uri.rstrip('/')}/{TEACHER_DIR_PREFIX}{key}"

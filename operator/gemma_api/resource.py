"""The whole ``GemmaFineTune`` object and the run config the trainer reads."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import ApiModel
from .distillation import ResolvedTeacher, resolve_teacher, run_identity, teacher_key, teacher_uri
from .run_stages import StageAlone
from .spec import GemmaFineTuneSpec
from .status import GemmaFineTuneStatus

GROUP = "gemmaft.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "GemmaFineTune"
PLURAL = "gemmafinetunes"
SINGULAR = "gemmafinetune"
SHORT_NAMES = ("gft",)
CATEGORIES = ("all", "ml")
RUN_CONFIG_KIND = "GemmaFineTuneRun"

# Spec sections that change what is trained; a change to any of them starts a new run.
TRAINING_FIELDS = ("model", "model_uri", "dataset", "method", "lora", "freeze", "training", "accelerator", "output")


class ObjectMeta(ApiModel):
    """The part of metadata this project reads; the rest passes through untouched."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class GemmaFineTune(ApiModel):
    """One Gemma 2 fine-tune, as applied with kubectl."""

    api_version: Literal["gemmaft.dev/v1alpha1"] = API_VERSION
    kind: Literal["GemmaFineTune"] = KIND
    metadata: ObjectMeta
    spec: GemmaFineTuneSpec
    status: GemmaFineTuneStatus | None = None


def run_id(spec: GemmaFineTuneSpec, teacher: ResolvedTeacher | None = None) -> str:
    """Deterministic id of the run a spec asks for: equal training fields give the same id. A distillation adds
    its teacher stage's key (``teacher``: the resolved teacher, needed for ``fromFineTune``)."""
    fields = spec.model_dump(mode="json", include=set(TRAINING_FIELDS), by_alias=True)
    if spec.distillation is not None:
        fields["distillation"] = run_identity(spec, teacher)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def run_uri(spec: GemmaFineTuneSpec, rid: str) -> str:
    return f"{spec.output.uri.rstrip('/')}/{rid}"


class RunConfig(ApiModel):
    """What the operator mounts into every trainer pod (and what a local run builds from a manifest)."""

    api_version: Literal["gemmaft.dev/v1alpha1"] = API_VERSION
    kind: Literal["GemmaFineTuneRun"] = RUN_CONFIG_KIND
    name: str
    namespace: str = "default"
    run_id: str
    run_uri: str
    spec: GemmaFineTuneSpec
    teacher: ResolvedTeacher | None = None
    """Distillation: the resolved teacher."""
    teacher_uri: str | None = None
    """Distillation: folder of the teacher stage's outputs (``<output.uri>/teacher-<key>``)."""
    stage: StageAlone | None = None
    """The one stage this config runs (a Job per stage: teacher, student, evaluate); unset: every stage in order."""

    @classmethod
    def for_finetune(cls, ft: GemmaFineTune, teacher: ResolvedTeacher | None = None,
                     **overrides: Any) -> RunConfig:
        spec = ft.spec
        fields: dict[str, Any] = {}
        if spec.distillation is not None:
            teacher = teacher or resolve_teacher(spec)
            fields.update(teacher=teacher, teacher_uri=teacher_uri(spec, teacher_key(spec, teacher)))
        rid = run_id(spec, teacher)
        fields.update(
            name=ft.metadata.name,
            namespace=ft.metadata.namespace or "default",
            run_id=rid,
            run_uri=run_uri(spec, rid),
            spec=spec,
        )
        fields.update(overrides)
        return cls(**fields)

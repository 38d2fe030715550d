"""The whole ``GemmaFineTune`` object and the run config the trainer reads."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field

from .base import ApiModel
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

    model_config = {"extra": "allow"}

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


def run_id(spec: GemmaFineTuneSpec) -> str:
    """Deterministic id of the run a spec asks for: equal training fields give the same id."""
    fields = spec.model_dump(mode="json", include=set(TRAINING_FIELDS), by_alias=True)
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

    @classmethod
    def for_finetune(cls, ft: GemmaFineTune, **overrides: Any) -> "RunConfig":
        rid = run_id(ft.spec)
        fields = dict(
            name=ft.metadata.name,
            namespace=ft.metadata.namespace or "default",
            run_id=rid,
            run_uri=run_uri(ft.spec, rid),
            spec=ft.spec,
        )
        fields.update(overrides)
        return cls(**fields)

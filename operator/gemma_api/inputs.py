"""What a run read, pinned at its first start: ``<run>/run.json`` and ``status.runs[].inputs``.

Every later attempt of the run reads exactly these data files (GCS: the recorded ``generation``; local files: the
recorded sha256). When one is gone or changed the attempt fails with reason ``InputsChanged`` (trainer exit code
``run.EXIT_INPUTS_CHANGED``): a run id never trains on other data silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiModel
from .spec import GemmaFineTuneSpec

RUN_RECORD_KIND = "GemmaFineTuneRunRecord"


class PinnedFile(ApiModel):
    """One data file as the run's first start read it."""

    uri: str
    size: int = Field(ge=0)
    generation: int | None = None
    """GCS object generation (read back with ``generation=``)."""
    md5: str | None = None
    """GCS md5Hash (base64), when the object has one."""
    crc32c: str | None = None
    """GCS crc32c (base64)."""
    sha256: str | None = None
    """Local files: hex sha256 of the content."""


class PinnedModel(ApiModel):
    """The base weights' identity: hub id and resolved commit, GCS generations, a package's or files' sha256."""

    uri: str
    revision: str | None = None
    """hf://: the commit the download resolved to."""
    files: list[PinnedFile] = Field(default_factory=list)
    """gs:// and local folders: every file (generation or sha256); pkg://: the assembled file's sha256."""


class RunInputs(ApiModel):
    """The pinned inputs of one run (the part of ``run.json`` mirrored into status)."""

    train: list[PinnedFile]
    eval: list[PinnedFile] = Field(default_factory=list)
    model: PinnedModel | None = None
    trainer_image: str | None = None
    """The trainer image as the pod ran it (a digest where the reference carries one)."""
    recorded_at: str


class RunRecordFile(ApiModel):
    """``<run>/run.json``: the pinned inputs and the resolved spec of the run."""

    api_version: Literal["gemmaft.dev/v1alpha1"] = "gemmaft.dev/v1alpha1"
    kind: Literal["GemmaFineTuneRunRecord"] = RUN_RECORD_KIND
    run_id: str
    inputs: RunInputs
    spec: GemmaFineTuneSpec

"""Pinned inputs: the run's first start records what it reads in ``<run>/run.json``; every later attempt reads
exactly that (GCS ``generation=`` reads, sha256-checked local files) or fails with ``InputsChanged``.

Hooks elsewhere are small: ``rows.load_rows(..., read=)`` reads through :class:`PinnedReader`, and ``train``
passes one in and records the pin in progress.json (the operator copies it into ``status.runs[].inputs``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gemma_api.facts import MODEL_PACKAGES
from gemma_api.inputs import PinnedFile, PinnedModel, RunInputs, RunRecordFile
from gemma_api.run import RUN_RECORD_FILE

from .gcs_store import gcs_client
from .object_store import NotFound, ObjectStore, StorageError
from .storage import parse_gs

log = logging.getLogger(__name__)

TRAINER_IMAGE_ENV = "GEMMAFT_TRAINER_IMAGE"  # set by the operator on trainer pods (render/manifests.py)
HUB_SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})(/|$)")
CHUNK = 1 << 20
T = TypeVar("T")


class InputsChanged(Exception):
    """An input pinned at the run's first start is gone or changed; the run must not train on other inputs."""

    def __init__(self, subject: str, record_uri: str, what: str):
        super().__init__(
            f"InputsChanged: {subject}, pinned at the run's first start in {record_uri}, {what}; the run never "
            "trains on other inputs under the same run id. Fix: restore that version (with object versioning on, "
            "an overwritten generation stays readable until the bucket's noncurrent-version lifecycle deletes it), "
            "or write the new data or weights under a new URI and point the spec at it (a new run id)")


def describe(pinned: PinnedFile) -> str:
    """A pinned file as messages name it: its URI and version."""
    at = f"generation {pinned.generation}" if pinned.generation is not None else f"sha256 {pinned.sha256}"
    return f"{pinned.uri} {at} ({pinned.size} bytes)"


def model_change(recorded: PinnedModel | None, current: PinnedModel) -> str | None:
    """How the weights this attempt loaded differ from those pinned at the first start; None when they do not."""
    if recorded is None:
        return None
    if recorded.revision != current.revision:
        return f"{recorded.uri} commit {recorded.revision} (this attempt resolved {current.revision})"
    now = {f.uri: f for f in current.files}
    for pinned in recorded.files:
        if now.pop(pinned.uri, None) != pinned:
            return describe(pinned)
    return f"{recorded.uri} (new file {min(now)})" if now else None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _gcs_blob(uri: str, generation: int | None = None):
    bucket, key = parse_gs(uri)
    return gcs_client().bucket(bucket).blob(key, generation=generation)


def pin_file(uri: str) -> PinnedFile:
    """What ``uri`` is now: its GCS generation, size and checksums, or a local file's size and sha256."""
    if uri.startswith("gs://"):
        blob = _gcs_blob(uri)
        blob.reload()
        return PinnedFile(uri=uri, size=int(blob.size or 0), generation=int(blob.generation),
                          md5=blob.md5_hash, crc32c=blob.crc32c)
    path = Path(uri)
    return PinnedFile(uri=uri, size=path.stat().st_size, sha256=_sha256_file(path))


def read_pinned(pinned: PinnedFile, record_uri: str) -> bytes:
    """The bytes of exactly the pinned version; :class:`InputsChanged` when it is gone or differs."""
    if pinned.generation is not None:
        from google.api_core.exceptions import NotFound as GcsNotFound

        try:
            return _gcs_blob(pinned.uri, pinned.generation).download_as_bytes()
        except GcsNotFound:
            raise InputsChanged(describe(pinned), record_uri, "is gone (overwritten or deleted)") from None
    try:
        data = Path(pinned.uri).read_bytes()
    except FileNotFoundError:
        raise InputsChanged(describe(pinned), record_uri, "is gone (deleted or moved)") from None
    if hashlib.sha256(data).hexdigest() != pinned.sha256:
        raise InputsChanged(describe(pinned), record_uri, f"has changed (now {len(data)} bytes, another sha256)")
    return data


def pin_model(uri: str, model_dir: Path | None) -> PinnedModel:
    """The base weights' identity: the hub commit of the downloaded snapshot, a package's sha256, or every file
    of a gs:// or local folder (generations, sha256)."""
    if uri.startswith("hf://"):
        match = HUB_SNAPSHOT.search(str(model_dir or ""))
        return PinnedModel(uri=uri, revision=match.group(1) if match else None)
    if uri.startswith("pkg://"):
        package = MODEL_PACKAGES[uri.removeprefix("pkg://")]
        return PinnedModel(uri=uri, files=[PinnedFile(uri=uri, size=0, sha256=package.sha256)])
    if uri.startswith("gs://"):
        bucket, prefix = parse_gs(uri)
        blobs = gcs_client().list_blobs(bucket, prefix=prefix.rstrip("/") + "/")
        return PinnedModel(uri=uri, files=[PinnedFile(uri=f"gs://{bucket}/{b.name}", size=int(b.size or 0),
                                                      generation=int(b.generation), md5=b.md5_hash,
                                                      crc32c=b.crc32c) for b in blobs])
    root = Path(uri)
    return PinnedModel(uri=uri, files=[pin_file(str(p)) for p in sorted(root.rglob("*")) if p.is_file()])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PinnedReader:
    """``read(store, key) -> bytes`` for ``rows.load_rows``: the first call of a run pins every data file of the
    spec into ``run.json`` (or loads the pin an earlier attempt wrote); every read returns the pinned version."""

    def __init__(self, cfg, run_store: ObjectStore, data_files: Callable[[str], list[tuple[ObjectStore, str]]],
                 model_dir: Path | None = None, model_uri: str | None = None):
        self.cfg = cfg
        self.run_store = run_store
        self.data_files = data_files
        self.model_dir = model_dir
        self.model_uri = model_uri or cfg.spec.resolved_model_uri  # a distillation teacher pins its own weights
        self._record: RunRecordFile | None = None

    @property
    def record_uri(self) -> str:
        return self.run_store.url(RUN_RECORD_FILE)

    def record(self) -> RunRecordFile:
        """The run's pin: written now at its first start, else loaded (and the weights checked against it)."""
        if self._record is None:
            earlier = self._load()
            if earlier is not None:
                self._check_model(earlier.inputs.model)
            self._record = earlier or self._pin()
        return self._record

    def _check_model(self, recorded: PinnedModel | None) -> None:
        change = model_change(recorded, pin_model(self.model_uri, self.model_dir))
        if change is not None:
            raise InputsChanged(f"the base weights {change}", self.record_uri, "differ from what this attempt loaded")

    def _load(self) -> RunRecordFile | None:
        try:
            return RunRecordFile.model_validate_json(self.run_store.read_text(RUN_RECORD_FILE))
        except NotFound:
            return None

    def _pin(self) -> RunRecordFile:
        spec = self.cfg.spec
        files = {which: [pin_file(store.url(key)) for store, key in self.data_files(uri)]
                 for which, uri in (("train", spec.dataset.train_uri), ("eval", spec.dataset.eval_uri)) if uri}
        inputs = RunInputs(train=files["train"], eval=files.get("eval", []), recorded_at=_now(),
                           model=pin_model(self.model_uri, self.model_dir),
                           trainer_image=os.environ.get(TRAINER_IMAGE_ENV))
        record = RunRecordFile(run_id=self.cfg.run_id, inputs=inputs, spec=spec)
        text = json.dumps(record.to_api(), indent=1) + "\n"
        try:
            self.run_store.write_text(RUN_RECORD_FILE, text, if_absent=True)
        except StorageError:  # another host of the slice pinned first: its record wins
            earlier = self._load()
            if earlier is None:
                raise
            return earlier
        log.info("pinned %d data file(s) of run %s in %s", len(inputs.train) + len(inputs.eval), self.cfg.run_id,
                 self.record_uri)
        return record

    def __call__(self, store: ObjectStore, key: str) -> bytes:
        uri = store.url(key)
        inputs = self.record().inputs
        pinned = next((f for f in (*inputs.train, *inputs.eval) if f.uri == uri), None)
        if pinned is None:
            raise InputsChanged(f"{uri} (not among the pinned data files)", self.record_uri,
                                "was not there at the run's first start (a new file under the data prefix)")
        return read_pinned(pinned, self.record_uri)


def pinned_features(tokenize: Callable[[PinnedReader], T], reader: PinnedReader, progress) -> T:
    """``tokenize(reader)``, with the pin recorded in progress.json (the operator mirrors it into status), or the
    attempt marked failed there with the InputsChanged message before the error goes on (exit code 5)."""
    try:
        features = tokenize(reader)
        inputs = reader.record().inputs  # already read when this host tokenized; else loaded (and checked) now
    except InputsChanged as err:
        progress.update(force=True, state="failed", message=str(err))
        raise
    progress.update(force=True, inputs=inputs)
    return features

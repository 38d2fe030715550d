"""Training data rows: find the data files, read JSONL / Parquet, detect the format and validate every row.

Formats (one per data set, detected from the first row when ``format="auto"``):

* ``messages``: ``{"messages": [{"role": "system"|"user"|"assistant"|"model", "content": str}, ...]}``. An
  optional system message comes first; then user and assistant (``model``) turns alternate, starting with user,
  with at least one assistant turn.
* ``prompt-completion``: ``{"prompt": str, "completion": str}``.
* ``text``: ``{"text": str}``.

Other keys in a row (``id``, ``source``...) are ignored; a row carrying the keys of two formats is an error.
Rendering and tokenizing are in :mod:`gemma_trainer.data`; batching in :mod:`gemma_trainer.batches`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .object_store import NotFound, ObjectStore
from .storage import open_store, split_uri

log = logging.getLogger(__name__)

FORMATS = ("messages", "prompt-completion", "text")
ROLES = ("system", "user", "assistant", "model")
DATA_SUFFIXES = (".jsonl", ".parquet")
_FORMAT_KEYS = {"messages": ("messages",), "prompt-completion": ("prompt", "completion"), "text": ("text",)}
_ALL_FORMAT_KEYS = {"messages", "prompt", "completion", "text"}


class DataError(Exception):
    """A data problem found before training: ``source`` (URI of the file), ``line`` (1-based line of a JSONL
    file or row of a Parquet file; None for the whole file) and ``reason``."""

    def __init__(self, source: str, line: int | None, reason: str):
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line is not None else f"{self.source}: {self.reason}"

    def __reduce__(self):
        return (type(self), (self.source, self.line, self.reason))


# ---------------------------------------------------------------------------------------------- reading


def _data_files(uri: str) -> list[tuple[ObjectStore, str]]:
    """(store, key) of every data file named by ``uri``: one file, or every *.jsonl / *.parquet below a folder."""
    uri = str(uri)
    is_bucket_root = uri.startswith("gs://") and "/" not in uri[len("gs://"):].strip("/")
    if not is_bucket_root:
        parent, name = split_uri(uri)
        if name and parent.exists(name):
            return [(parent, name)]
        if name.endswith(DATA_SUFFIXES):
            raise DataError(uri, None, "file not found")
    folder = open_store(uri)
    keys = [k for k in folder.list() if k.endswith(DATA_SUFFIXES) and not k.rsplit("/", 1)[-1].startswith(".")]
    if not keys:
        raise DataError(uri, None, "no such file, and no *.jsonl or *.parquet files under it")
    return [(folder, k) for k in keys]


def _read_jsonl(source: str, data: bytes) -> Iterable[tuple[int, Any]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(source, number, f"invalid UTF-8 encoding (byte {e.start + 1} of the line: "
                                            f"{raw[e.start:e.start + 4]!r}); save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(source, number, f"invalid JSON: {e.msg} at column {e.colno}") from None
        yield number, value


def _read_parquet(source: str, data: bytes) -> Iterable[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(source, None, f"not a readable Parquet file: {e}") from None
    yield from enumerate(table.to_pylist(), start=1)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def detect_format(row: Any) -> str | None:
    """The format of one row by its keys, or None."""
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    if "text" in row:
        return "text"
    return None


IMAGE_KEYS = ("images", "image")  # a row's images, as vision data sets (TRL's among them) name them
_TEXT_ONLY = ("gemmaft trains on text only (an image-text checkpoint's language model is trained alone): "
              "remove the images from the data set")


def _image_refusal(row: dict) -> str | None:
    """Why a row that carries images is refused, naming the field; None for a text row."""
    for key in IMAGE_KEYS:
        if row.get(key):
            return f"field {key!r}: the row has images; {_TEXT_ONLY}"
    for i, message in enumerate(row.get("messages") or [], start=1):
        parts = message.get("content") if isinstance(message, dict) else None
        if isinstance(parts, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in parts):
            kinds = sorted({str(p.get("type")) for p in parts if isinstance(p, dict) and p.get("type") != "text"})
            return f"message {i}: 'content' has {', '.join(kinds)} parts; {_TEXT_ONLY}"
    return None


def validate_row(row: Any, fmt: str) -> str | None:
    """Why ``row`` is not a valid ``fmt`` row, or None when it is."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {_type_name(row)}"
    refusal = _image_refusal(row)
    if refusal:
        return refusal
    required = _FORMAT_KEYS[fmt]
    missing = [k for k in required if k not in row]
    if missing:
        return (f"missing field {', '.join(repr(k) for k in missing)} for format {fmt!r} "
                f"(row has {sorted(row) or 'no fields'})")
    foreign = sorted((_ALL_FORMAT_KEYS - set(required)) & set(row))
    if foreign:
        return (f"field {', '.join(repr(k) for k in foreign)} does not belong to format {fmt!r}: one data set "
                f"uses one format")
    if fmt == "text":
        if not _is_str(row["text"]):
            return f"field 'text' must be a string, got {_type_name(row['text'])}"
        if not row["text"].strip():
            return "field 'text' is empty"
        return None
    if fmt == "prompt-completion":
        for key in ("prompt", "completion"):
            if isinstance(row[key], list):
                return f"field {key!r} is a list: conversational prompt/completion is not supported, use 'messages'"
            if not _is_str(row[key]):
                return f"field {key!r} must be a string, got {_type_name(row[key])}"
        if not row["completion"].strip():
            return "field 'completion' is empty"
        return None
    return _validate_messages(row["messages"])


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return f"field 'messages' must be a list, got {_type_name(messages)}"
    if not messages:
        return "field 'messages' is empty"
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            return f"message {i} must be an object with 'role' and 'content', got {_type_name(m)}"
        for key in ("role", "content"):
            if key not in m or m[key] is None:
                return f"message {i} has no {key!r}"
            if not _is_str(m[key]):
                return f"message {i}: {key!r} must be a string, got {_type_name(m[key])}"
        if m["role"] not in ROLES:
            return f"message {i}: role {m['role']!r} is not one of {', '.join(ROLES)}"
        if not m["content"].strip():
            return f"message {i} ({m['role']}) has empty content"
    roles = ["assistant" if m["role"] == "model" else m["role"] for m in messages]
    for i, role in enumerate(roles[1:], start=2):
        if role == "system":
            return f"message {i}: a system message is only allowed first"
    turns = roles[1:] if roles[0] == "system" else roles
    first = 2 if roles[0] == "system" else 1
    if not turns:
        return "conversation has only a system message"
    if "assistant" not in turns:
        return "conversation has no assistant/model turn to learn from"
    for j, role in enumerate(turns):
        expected = "user" if j % 2 == 0 else "assistant"
        if role != expected:
            article = "an" if expected == "assistant" else "a"
            return (f"message {first + j}: expected {article} {expected} turn, got {role}: after an optional system "
                    f"message, user and assistant/model turns alternate, starting with user")
    return None


def data_files(uri: str) -> list[tuple[ObjectStore, str]]:
    """(store, key) of every data file ``uri`` names (what ``gemma_trainer.inputs`` pins)."""
    return _data_files(uri)


def read_current(store: ObjectStore, key: str) -> bytes:
    """A data file as it is now (unpinned)."""
    return store.read_bytes(key)


def load_rows(uri: str, format: str = "auto", read: Callable[[ObjectStore, str], bytes] = read_current,
              ) -> tuple[list[dict], str]:
    """Every row of a JSONL or Parquet file, or of every *.jsonl / *.parquet below a folder or prefix, validated.
    Returns ``(rows, format)``; ``format="auto"`` detects it from the first row. ``read``: how a file's bytes are
    read (``inputs.PinnedReader``: the version pinned at the run's first start). Raises :class:`DataError`."""
    if format != "auto" and format not in FORMATS:
        raise DataError(str(uri), None, f"unknown format {format!r}; use auto, {', '.join(FORMATS)}")
    fmt = None if format == "auto" else format
    rows: list[dict] = []
    for store, key in _data_files(str(uri)):
        source = store.url(key)
        try:
            data = read(store, key)
        except NotFound:
            raise DataError(source, None, "file not found") from None
        reader = _read_parquet if key.endswith(".parquet") else _read_jsonl
        count = 0
        for number, row in reader(source, data):
            if fmt is None:
                fmt = detect_format(row)
                if fmt is None:
                    if not isinstance(row, dict):
                        raise DataError(source, number, f"expected a JSON object, got {_type_name(row)}")
                    raise DataError(source, number, "cannot detect the format: expected 'messages', 'prompt' and "
                                                    f"'completion', or 'text'; row has {sorted(row)}")
                log.info("data format detected from %s:%d: %s", source, number, fmt)
            reason = validate_row(row, fmt)
            if reason:
                raise DataError(source, number, reason)
            rows.append(row)
            count += 1
        if count == 0:
            raise DataError(source, None, "empty file: no rows")
    assert fmt is not None
    return rows, fmt

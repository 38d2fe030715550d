"""Training data: read and validate every row, render it with the chat template, tokenize, mask, pad.

Formats (one per data set, detected from the first row when ``format="auto"``):

* ``messages``: ``{"messages": [{"role": "system"|"user"|"assistant"|"model", "content": str}, ...]}``. An
  optional system message comes first; then user and assistant (``model``) turns alternate, starting with user,
  with at least one assistant turn. Loss is on every assistant turn's content and its ``<end_of_turn>``.
* ``prompt-completion``: ``{"prompt": str, "completion": str}``, rendered as one user turn and one model turn.
  Loss is on the completion and its ``<end_of_turn>``.
* ``text``: ``{"text": str}``, tokenized as is with one ``<bos>`` first and one ``<eos>`` last (a row that
  already starts with ``<bos>`` or ends with ``<eos>`` keeps its own); loss on every token.

Other keys in a row (``id``, ``source``...) are ignored; a row carrying the keys of two formats is an error.

Conversations are rendered by the tokenizer's chat template, system message included, exactly as
``apply_chat_template`` renders them at inference (Gemma has no system role: the template writes it into the first
user turn; see :mod:`gemma_trainer.templates`, which also chooses the template).

Rows whose trainable tokens are all cut off by ``max_seq_length`` are DROPPED; their count and row numbers are
logged and returned through ``report``; when no row is left, :class:`DataError` is raised.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .storage import NotFound, Store, open_store, split_uri

log = logging.getLogger(__name__)

FORMATS = ("messages", "prompt-completion", "text")
ROLES = ("system", "user", "assistant", "model")
IGNORE_INDEX = -100
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


def _data_files(uri: str) -> list[tuple[Store, str]]:
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


def validate_row(row: Any, fmt: str) -> str | None:
    """Why ``row`` is not a valid ``fmt`` row, or None when it is."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {_type_name(row)}"
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


def load_rows(uri: str, format: str = "auto") -> tuple[list[dict], str]:
    """Every row of a JSONL or Parquet file, or of every *.jsonl / *.parquet below a folder or prefix, validated.
    Returns ``(rows, format)``; ``format="auto"`` detects it from the first row. Raises :class:`DataError`."""
    if format != "auto" and format not in FORMATS:
        raise DataError(str(uri), None, f"unknown format {format!r}; use auto, {', '.join(FORMATS)}")
    fmt = None if format == "auto" else format
    rows: list[dict] = []
    for store, key in _data_files(str(uri)):
        source = store.url(key)
        try:
            data = store.read_bytes(key)
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


# ---------------------------------------------------------------------------------------------- tokenizing


def to_messages(row: dict, fmt: str) -> list[dict]:
    """The conversation of a messages or prompt-completion row, with ``model`` as ``assistant``. A system message
    stays a system message: the chat template decides how it is written, as it does at inference."""
    if fmt == "prompt-completion":
        return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
    return [{"role": "assistant" if m["role"] == "model" else m["role"], "content": m["content"]}
            for m in row["messages"]]


def _template_kwargs(tokenizer) -> dict:
    if getattr(tokenizer, "chat_template", None):
        return {}
    from .templates import GEMMA2_CHAT_TEMPLATE

    return {"chat_template": GEMMA2_CHAT_TEMPLATE}


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                         **_template_kwargs(tokenizer))


def render_with_spans(tokenizer, messages: list[dict], end_marker: str = "<end_of_turn>") -> tuple[str, list]:
    """The rendered conversation and the character spans to learn: each assistant turn's content up to and
    including the ``end_marker`` that closes the turn (its last one: the content may contain the marker's text)."""
    full = _render(tokenizer, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], True)
        through = _render(tokenizer, messages[: i + 1], False)
        if not full.startswith(before) or not full.startswith(through):
            raise ValueError("the tokenizer's chat template does not render conversations prefix by prefix; "
                             "cannot locate assistant turns")
        start = len(before)
        marker = full.rfind(end_marker, start, len(through))
        end = marker + len(end_marker) if marker >= 0 else len(through)
        spans.append((start, end))
    return full, spans


def _encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _text_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a text row: one ``<bos>`` first and one ``<eos>`` last, whether or not the text has them."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]  # the text began with its own <bos>
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return ids


def format_and_tokenize(rows: Sequence[dict], fmt: str, tokenizer, max_seq_length: int,
                        report: dict | None = None, source: str = "dataset") -> list[dict]:
    """``[{"input_ids": [...], "labels": [...]}, ...]`` for validated rows of ``fmt``.

    Labels are ``-100`` except on what the model should learn: the completion / every assistant turn and its
    ``<end_of_turn>`` (the text format: every token). Sequences are cut to ``max_seq_length``. Rows left with no
    trainable token are dropped; ``report`` (when given) receives ``dropped`` (count) and ``dropped_rows``
    (0-based indices). :class:`DataError` (naming ``source``) when no row is left."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if max_seq_length < 2:
        raise ValueError("max_seq_length must be at least 2")
    end_marker = "<end_of_turn>"
    features, dropped = [], []
    for index, row in enumerate(rows):
        if fmt == "text":
            ids = _text_ids(tokenizer, row["text"])
            labels = list(ids)
        else:
            text, spans = render_with_spans(tokenizer, to_messages(row, fmt), end_marker)
            ids, offsets = _encode_with_offsets(tokenizer, text)
            labels = [IGNORE_INDEX] * len(ids)
            for t, (start, end) in enumerate(offsets):
                if end > start and any(s <= start < e for s, e in spans):
                    labels[t] = ids[t]
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        if all(label == IGNORE_INDEX for label in labels[1:]):  # position 0 is never a target
            dropped.append(index)
            continue
        features.append({"input_ids": ids, "labels": labels})
    if report is not None:
        report["dropped"] = len(dropped)
        report["dropped_rows"] = dropped
    if dropped:
        log.warning("%d of %d rows dropped: nothing left to learn within max_seq_length=%d (rows %s%s)",
                    len(dropped), len(rows), max_seq_length, ", ".join(str(i + 1) for i in dropped[:10]),
                    " ..." if len(dropped) > 10 else "")
    if not features:
        raise DataError(source, None, f"no row has a trainable token within max_seq_length={max_seq_length} "
                                         f"({len(rows)} rows): raise max_seq_length or shorten the prompts")
    return features


# ---------------------------------------------------------------------------------------------- batching


def lengths(features: Sequence[dict]) -> list[int]:
    """Token count of each feature (for length-grouped batching)."""
    return [len(f["input_ids"]) for f in features]


def default_buckets(max_seq_length: int, smallest: int = 64) -> tuple[int, ...]:
    """Powers of two from ``smallest`` below ``max_seq_length``, then ``max_seq_length`` itself.

    Padding each batch to one of these (static shapes) makes XLA compile at most ``len(buckets)`` graphs."""
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be positive, got {max_seq_length}")
    if smallest < 1:
        raise ValueError(f"the smallest bucket must be positive, got {smallest}")
    out = []
    size = smallest
    while size < max_seq_length:
        out.append(size)
        size *= 2
    out.append(max_seq_length)
    return tuple(out)


def pad_length(longest: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds a batch whose longest row has ``longest`` tokens."""
    for size in sorted(buckets):
        if size >= longest:
            return size
    raise ValueError(f"a sequence of {longest} tokens is longer than the largest bucket {max(buckets)}; "
                     "keep max_seq_length <= max(buckets)")


class PadCollator:
    """Pads a list of features to one batch of tensors: ``input_ids`` with the pad id, ``labels`` with -100,
    ``attention_mask`` 1 on tokens. Pads to the longest sequence, or with ``buckets`` to the smallest bucket that
    holds it (a longer sequence is an error: keep ``max_seq_length <= max(buckets)``). ``pad_to_multiple_of``
    rounds the longest up when no buckets are given."""

    def __init__(self, pad_token_id: int = 0, buckets: tuple[int, ...] | None = None,
                 pad_to_multiple_of: int | None = None, label_pad_id: int = IGNORE_INDEX):
        self.pad_token_id = pad_token_id
        self.buckets = tuple(sorted(buckets)) if buckets else None
        self.pad_to_multiple_of = pad_to_multiple_of
        self.label_pad_id = label_pad_id

    def target_length(self, longest: int) -> int:
        if self.buckets:
            return pad_length(longest, self.buckets)
        if self.pad_to_multiple_of:
            return int(math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        return longest

    def __call__(self, features: Sequence[dict]) -> dict:
        import torch

        if not features:
            raise ValueError("empty batch")
        size = self.target_length(max(len(f["input_ids"]) for f in features))
        n = len(features)
        input_ids = torch.full((n, size), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, size), self.label_pad_id, dtype=torch.long)
        attention_mask = torch.zeros((n, size), dtype=torch.long)
        for i, f in enumerate(features):
            ids = list(f["input_ids"])
            lab = list(f.get("labels", ids))
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            labels[i, : len(lab)] = torch.as_tensor(lab, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

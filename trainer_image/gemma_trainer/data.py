"""Training data: render every row with the chat template, tokenize and mask it (reading and validating the rows:
:mod:`gemma_trainer.rows`; batching: :mod:`gemma_trainer.batches`).

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

import logging
from collections.abc import Sequence

from .batches import IGNORE_INDEX
from .rows import FORMATS, DataError
from .templates import GEMMA2_CHAT_TEMPLATE, turn_end_marker

log = logging.getLogger(__name__)


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
    end_marker = turn_end_marker(tokenizer)  # <end_of_turn>; Gemma 4: <turn|>
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

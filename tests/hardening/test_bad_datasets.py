"""Broken training data fails before training, naming the file, the line and the reason, in bounded time.

``load_rows`` is what the trainer calls before any model weights are loaded; one case also goes through the real
``gemmaft train`` CLI (a subprocess): exit code 2, ``file:line`` on stderr, no traceback.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from gemma_api.run import EXIT_INVALID_INPUT
from gemma_trainer.rows import DataError, load_rows

from tests.trainer.conftest import make_manifest, run_cli, run_folder

GOOD = {"prompt": "What is the capital of France?", "completion": "Paris."}
GOOD_LINE = json.dumps(GOOD).encode()
HUGE = 5 * 1024 * 1024  # one 5 MB row
SECONDS = 10.0  # generous bound for a shared, loaded machine; each case takes well under a second alone


def _lines(*rows: bytes) -> bytes:
    return b"".join(r + b"\n" for r in rows)


# (id, file bytes, expected line (None: the whole file), reason pattern)
BROKEN = [
    ("broken-json", _lines(GOOD_LINE, GOOD_LINE, b'{"prompt": "p", "completion": "c"'), 3, r"invalid JSON"),
    ("missing-field", _lines(GOOD_LINE, b'{"prompt": "only a prompt"}'), 2, r"missing field 'completion'"),
    ("empty-file", b"", None, r"empty file"),
    ("only-blank-lines", b"\n \r\n\t\n", None, r"empty file"),
    ("latin-1", _lines(GOOD_LINE, '{"prompt": "Où est la gare?", "completion": "Là."}'.encode("latin-1")), 2,
     r"invalid UTF-8.*save the file as UTF-8"),
    ("utf-16-bom", _lines(GOOD_LINE.decode().encode("utf-16")), 1, r"invalid UTF-8"),
    ("utf-16-bom-first", '{"text": "a"}\n{"text": "b"}\n'.encode("utf-16"), 1, r"invalid UTF-8"),
    ("nul-bytes-line", _lines(GOOD_LINE, b"\x00" * 64), 2, r"invalid JSON"),
    ("nul-inside-string", _lines(GOOD_LINE, b'{"prompt": "a\x00b", "completion": "c"}'), 2,
     r"invalid JSON: Invalid control character"),
    ("nul-padded-tail", GOOD_LINE + b"\n" + b"\x00" * 4096, 2, r"invalid JSON"),  # a crashed writer's file
    ("json-array-one-line", json.dumps([GOOD, GOOD]).encode() + b"\n", 1, r"expected a JSON object, got list"),
    ("json-array-pretty", json.dumps([GOOD, GOOD], indent=2).encode(), 1, r"invalid JSON"),
    ("huge-broken-line", b'{"text": "' + b"x" * HUGE + b'"', 1, r"invalid JSON"),  # unterminated 5 MB string
    ("huge-line-bad-utf8", _lines(b'{"text": "' + b"x" * HUGE + b'\xff"}'), 1, r"invalid UTF-8"),
]


@pytest.mark.parametrize("data, line, reason", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_file_fails_with_line_and_reason_in_bounded_time(tmp_path, data, line, reason):
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_rows(str(path), "auto")
    elapsed = time.monotonic() - start
    err = info.value
    assert elapsed < SECONDS, f"took {elapsed:.1f}s"
    assert err.source == str(path) and err.line == line, str(err)
    assert re.search(reason, err.reason), err.reason
    # The message is for a person: one short line, never the row itself (5 MB) echoed back.
    assert len(str(err)) < 400 and "\n" not in str(err), str(err)[:500]
    assert str(err).startswith(f"{path}:{line}: " if line is not None else f"{path}: ")


def test_a_huge_valid_row_is_accepted_whole_in_bounded_time(tmp_path):
    """A 5 MB row is valid JSON: it is read whole (truncation to maxSeqLength happens at tokenization)."""
    path = tmp_path / "train.jsonl"
    text = "word " * (HUGE // 5)
    path.write_bytes(_lines(GOOD_LINE, json.dumps({"prompt": "summarise", "completion": text}).encode()))
    start = time.monotonic()
    rows, fmt = load_rows(str(path), "auto")
    assert time.monotonic() - start < SECONDS
    assert fmt == "prompt-completion" and len(rows) == 2 and rows[1]["completion"] == text


def test_crlf_line_endings_and_a_utf8_bom_are_fine(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_LINE + b"\r\n" + GOOD_LINE + b"\r\n")
    assert load_rows(str(path), "auto") == ([GOOD, GOOD], "prompt-completion")


@pytest.mark.slow
def test_gemmaft_train_exits_2_naming_file_and_line_without_a_traceback(tmp_path, tiny_model_dir):
    train = tmp_path / "train.jsonl"
    train.write_bytes(_lines(GOOD_LINE, GOOD_LINE, b"\x00\x00\x00", GOOD_LINE))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out")
    result = run_cli(manifest, tmp_path, timeout=120)
    assert result.returncode == EXIT_INVALID_INPUT, result.stderr[-2000:]
    assert f"{train}:3: invalid JSON" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # It failed before training: no checkpoint, no adapter.
    run = Path(run_folder(manifest))
    assert not (run / "checkpoints").exists() and not (run / "adapter").exists()

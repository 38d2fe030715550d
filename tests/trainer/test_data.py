"""gemma_trainer.data: reading and validating rows, chat rendering, exact label masks, padding."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from gemma_trainer import tiny
from gemma_trainer.batches import IGNORE_INDEX, PadCollator, default_buckets
from gemma_trainer.data import format_and_tokenize
from gemma_trainer.dataset import lengths_of
from gemma_trainer.rows import DataError, detect_format, load_rows

EOT = "<end_of_turn>"


@pytest.fixture(scope="module")
def tok():
    return tiny.build_tiny_tokenizer()


def write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def label_runs(feature) -> list[list[int]]:
    """Contiguous runs of trained token ids."""
    runs, current = [], []
    for label in feature["labels"]:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    return runs + ([current] if current else [])


# ------------------------------------------------------------------ formats end to end


def test_messages_end_to_end_exact_masks(tmp_path, tok):
    rows = tiny.make_dataset_rows("messages", 12)
    uri = write_jsonl(tmp_path / "train.jsonl", rows)
    loaded, fmt = load_rows(uri, "auto")
    assert fmt == "messages" and loaded == rows
    features = format_and_tokenize(loaded, fmt, tok, 512)
    assert len(features) == len(rows)
    for row, f in zip(rows, features, strict=True):
        assert len(f["input_ids"]) == len(f["labels"])
        assert f["input_ids"][0] == tok.bos_token_id
        for tid, lab in zip(f["input_ids"], f["labels"], strict=True):
            assert lab in (IGNORE_INDEX, tid)
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert [tok.decode(run) for run in label_runs(f)] == [a + EOT for a in answers]
        rendered = tok.decode(f["input_ids"])
        if row["messages"][0]["role"] == "system":
            system, user = row["messages"][0]["content"], row["messages"][1]["content"]
            assert rendered.startswith(f"<bos><start_of_turn>user\n{system}\n\n{user}{EOT}\n")
        assert rendered.endswith(f"<start_of_turn>model\n{answers[-1]}{EOT}\n")


def test_model_role_and_unicode(tok):
    rows = [{"messages": [{"role": "system", "content": "Réponds en français."},
                          {"role": "user", "content": "Capitale de la Grèce ?"},
                          {"role": "model", "content": "Athènes — évidemment."}]}]
    (f,) = format_and_tokenize(rows, "messages", tok, 512)
    assert [tok.decode(r) for r in label_runs(f)] == ["Athènes — évidemment." + EOT]


def test_prompt_completion_end_to_end(tmp_path, tok):
    rows = tiny.make_dataset_rows("prompt-completion", 10)
    loaded, fmt = load_rows(write_jsonl(tmp_path / "pc.jsonl", rows), "auto")
    assert fmt == "prompt-completion"
    for row, f in zip(rows, format_and_tokenize(loaded, fmt, tok, 512), strict=True):
        assert [tok.decode(r) for r in label_runs(f)] == [row["completion"] + EOT]
        assert tok.decode(f["input_ids"]) == (
            f"<bos><start_of_turn>user\n{row['prompt']}{EOT}\n<start_of_turn>model\n{row['completion']}{EOT}\n")


def test_text_end_to_end_loss_on_all_tokens(tmp_path, tok):
    rows = tiny.make_dataset_rows("text", 6)
    loaded, fmt = load_rows(write_jsonl(tmp_path / "t.jsonl", rows), "text")
    assert fmt == "text"
    for row, f in zip(rows, format_and_tokenize(loaded, fmt, tok, 512), strict=True):
        assert f["labels"] == f["input_ids"]
        assert f["input_ids"][0] == tok.bos_token_id and f["input_ids"][-1] == tok.eos_token_id
        assert tok.decode(f["input_ids"][1:-1]) == row["text"]


@pytest.mark.parametrize("row,fmt", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "messages"),
    ({"prompt": "a", "completion": "b", "id": 3}, "prompt-completion"),
    ({"text": "a", "source": "x"}, "text"),
    ({"prompt": "a"}, None),
    ([1, 2], None),
])
def test_detect_format(row, fmt):
    assert detect_format(row) == fmt


def test_auto_detection_from_first_row_then_every_row_must_match(tmp_path):
    uri = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a"}, {"text": "b"}, {"prompt": "p", "completion": "c"}])
    with pytest.raises(DataError) as info:
        load_rows(uri, "auto")
    assert info.value.line == 3 and "missing field 'text'" in info.value.reason


def test_explicit_format_mismatch(tmp_path):
    uri = write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match=r"t\.jsonl:1: missing field 'messages'"):
        load_rows(uri, "messages")
    with pytest.raises(DataError, match="unknown format"):
        load_rows(uri, "csv")


# ------------------------------------------------------------------ bad input: file, line, reason

GOOD = json.dumps({"prompt": "p", "completion": "c"})
M = "messages"


def msgs(*pairs):
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in pairs]})


BAD = [
    ("broken json", [GOOD, '{"prompt": "p", "completion": }'], 2, "invalid JSON"),
    ("truncated json", [GOOD, GOOD, '{"prompt": "p"'], 3, "invalid JSON"),
    ("not an object", [GOOD, "[1, 2]"], 2, "expected a JSON object, got list"),
    ("string row", [GOOD, '"hello"'], 2, "expected a JSON object, got str"),
    ("first row undetectable", ['{"question": "q", "answer": "a"}'], 1, "cannot detect the format"),
    ("first row not object", ["42"], 1, "expected a JSON object, got int"),
    ("missing completion", [GOOD, '{"prompt": "p"}'], 2, "missing field 'completion'"),
    ("two formats", [GOOD, '{"prompt": "p", "completion": "c", "text": "t"}'], 2, "'text' does not belong"),
    ("completion not str", [GOOD, '{"prompt": "p", "completion": 5}'], 2, "'completion' must be a string, got int"),
    ("prompt null", [GOOD, '{"prompt": null, "completion": "c"}'], 2, "'prompt' must be a string, got null"),
    ("conversational pc", [GOOD, '{"prompt": [], "completion": "c"}'], 2, "use 'messages'"),
    ("empty completion", [GOOD, '{"prompt": "p", "completion": "  "}'], 2, "'completion' is empty"),
    ("empty text", ['{"text": "a"}', '{"text": ""}'], 2, "'text' is empty"),
    ("text not str", ['{"text": "a"}', '{"text": ["a"]}'], 2, "'text' must be a string, got list"),
    ("messages not list", [msgs(("user", "a"), ("assistant", "b")), '{"messages": "hi"}'], 2,
     "'messages' must be a list"),
    ("messages empty", ['{"messages": []}'], 1, "'messages' is empty"),
    ("message not object", ['{"messages": ["hi"]}'], 1, "message 1 must be an object"),
    ("no content", ['{"messages": [{"role": "user"}]}'], 1, "message 1 has no 'content'"),
    ("content not str", ['{"messages": [{"role": "user", "content": 1}]}'], 1, "'content' must be a string"),
    ("bad role", [msgs(("user", "a"), ("assistant", "b")), msgs(("user", "a"), ("bot", "b"))], 2,
     "role 'bot' is not one of"),
    ("empty content", [msgs(("user", "a"), ("assistant", ""))], 1, r"message 2 \(assistant\) has empty content"),
    ("no assistant", [msgs(("user", "a"), ("assistant", "b")), msgs(("system", "s"), ("user", "a"))], 2,
     "no assistant/model turn"),
    ("system not first", [msgs(("user", "a"), ("system", "s"), ("assistant", "b"))], 1,
     "message 2: a system message is only allowed first"),
    ("only system", [msgs(("system", "s"))], 1, "only a system message"),
    ("starts with assistant", [msgs(("assistant", "b"), ("user", "a"), ("assistant", "c"))], 1,
     "message 1: expected a user turn"),
    ("no alternation", [msgs(("system", "s"), ("user", "a"), ("user", "b"), ("model", "c"))], 1,
     "message 3: expected an assistant turn, got user"),
    ("image part", [msgs(("user", "a"), ("assistant", "b")), json.dumps({"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]},
        {"role": "assistant", "content": "a cat"}]})], 2, "message 1: 'content' has image parts; gemmaft"),
    ("images field", [json.dumps({"prompt": "p", "completion": "c", "images": ["cat.png"]})], 1,
     "field 'images': the row has images; gemmaft trains on text only"),
]


@pytest.mark.parametrize("lines,line,reason", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_rows(tmp_path, lines, line, reason):
    uri = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as info:
        load_rows(uri, "auto")
    err = info.value
    assert err.source == uri and err.line == line
    assert re.search(reason, err.reason), err.reason
    assert str(err) == f"{uri}:{line}: {err.reason}"


def test_blank_lines_count_in_line_numbers(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(f"{GOOD}\n\n   \n{{oops\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_rows(str(path), "auto")
    assert info.value.line == 4


def test_bad_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + '{"prompt": "café", "completion": "x"}'.encode("latin-1") + b"\n")
    with pytest.raises(DataError) as info:
        load_rows(str(path), "auto")
    assert info.value.line == 2 and "invalid UTF-8" in info.value.reason


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    assert load_rows(str(path), "auto") == ([{"prompt": "p", "completion": "c"}], "prompt-completion")


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_rows(str(path), "auto")
    assert info.value.line is None and "empty file" in info.value.reason and str(info.value).startswith(str(path))


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_rows(str(tmp_path / "nope.jsonl"), "auto")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no \*\.jsonl or \*\.parquet"):
        load_rows(str(tmp_path / "folder"), "auto")


# ------------------------------------------------------------------ Parquet, folders, GCS


def test_parquet_messages_and_folder_of_files(tmp_path, tok):
    rows = tiny.make_dataset_rows("messages", 8)
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:5]), folder / "a.parquet")
    write_jsonl(folder / "b.jsonl", rows[5:])
    (folder / "README.md").write_text("ignored")
    loaded, fmt = load_rows(str(folder), "auto")
    assert fmt == "messages"
    assert [[(m["role"], m["content"]) for m in r["messages"]] for r in loaded] == \
        [[(m["role"], m["content"]) for m in r["messages"]] for r in rows]
    features = format_and_tokenize(loaded, fmt, tok, 512)
    assert [tok.decode(r) for r in label_runs(features[0])] == \
        [m["content"] + EOT for m in rows[0]["messages"] if m["role"] == "assistant"]


def test_parquet_bad_row_number(tmp_path):
    path = tmp_path / "pc.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b", "c"], "completion": ["x", None, "z"]}), path)
    with pytest.raises(DataError) as info:
        load_rows(str(path), "auto")
    assert info.value.line == 2 and "'completion' must be a string, got null" in info.value.reason
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_rows(str(broken), "auto")


def test_read_from_fake_gcs(bucket, tmp_path):
    rows = tiny.make_dataset_rows("prompt-completion", 6)
    bucket.blob("sets/one/train.jsonl").upload_from_string(
        "".join(json.dumps(r) + "\n" for r in rows[:4]))
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows[4:]), buf)
    bucket.blob("sets/one/part-2.parquet").upload_from_string(buf.getvalue().to_pybytes())
    bucket.blob("sets/bad.jsonl").upload_from_string(json.dumps(rows[0]) + "\n{bad\n")
    assert load_rows(f"gs://{bucket.name}/sets/one/train.jsonl", "auto") == (rows[:4], "prompt-completion")
    loaded, _ = load_rows(f"gs://{bucket.name}/sets/one", "prompt-completion")
    assert sorted(map(json.dumps, loaded)) == sorted(map(json.dumps, rows))
    with pytest.raises(DataError) as info:
        load_rows(f"gs://{bucket.name}/sets/bad.jsonl", "auto")
    assert (info.value.source, info.value.line) == (f"gs://{bucket.name}/sets/bad.jsonl", 2)
    with pytest.raises(DataError, match="file not found"):
        load_rows(f"gs://{bucket.name}/sets/missing.jsonl", "auto")


# ------------------------------------------------------------------ truncation, padding


def test_truncation_and_dropped_rows(tok):
    long_prompt = " ".join(["seven"] * 60)
    rows = [{"prompt": "opposite of up", "completion": "down"},
            {"prompt": long_prompt, "completion": "x"},
            {"prompt": "reverse: one two", "completion": " ".join(["two one"] * 40)}]
    report: dict = {}
    features = format_and_tokenize(rows, "prompt-completion", tok, 32, report=report)
    assert report == {"dropped": 1, "dropped_rows": [1]}
    assert len(features) == 2 and all(n <= 32 for n in lengths_of(features))
    assert len(features[1]["input_ids"]) == 32  # cut, still has trained tokens
    assert any(label != IGNORE_INDEX for label in features[1]["labels"])
    with pytest.raises(DataError, match="^gs://b/train.jsonl: no row .* max_seq_length=32"):
        format_and_tokenize(rows[1:2], "prompt-completion", tok, 32, source="gs://b/train.jsonl")
    text = format_and_tokenize([{"text": long_prompt}], "text", tok, 16)
    assert len(text[0]["input_ids"]) == 16


def test_pad_collator_longest_and_buckets():
    features = [{"input_ids": [2, 5, 6], "labels": [-100, 5, 6]}, {"input_ids": [2, 7, 8, 9, 10], "labels":
                                                                   [-100, -100, 8, 9, 10]}]
    assert lengths_of(features) == [3, 5]
    batch = PadCollator(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 0, 0], [2, 7, 8, 9, 10]]
    assert batch["labels"].tolist() == [[-100, 5, 6, -100, -100], [-100, -100, 8, 9, 10]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long
    bucketed = PadCollator(pad_token_id=0, buckets=(16, 4, 8))(features)
    assert bucketed["input_ids"].shape == (2, 8) and bucketed["attention_mask"].sum().item() == 8
    assert bucketed["labels"][0, 3:].tolist() == [-100] * 5
    assert PadCollator(buckets=(4, 8))(features[:1])["input_ids"].shape == (1, 4)
    assert PadCollator(pad_to_multiple_of=4)(features)["input_ids"].shape == (2, 8)
    with pytest.raises(ValueError, match="largest bucket 4"):
        PadCollator(buckets=(2, 4))(features)
    assert default_buckets(512) == (64, 128, 256, 512)
    assert default_buckets(300, smallest=128) == (128, 256, 300)


def test_tiny_model_learns_the_data(tok):
    """The whole path (rows -> masked features -> padded batches) trains: loss on completions falls."""
    torch.manual_seed(0)
    rows = [r for r in tiny.make_dataset_rows("prompt-completion", 64) if r["prompt"].startswith("opposite")]
    features = format_and_tokenize(rows, "prompt-completion", tok, 32)[:8]
    model = tiny.build_tiny_gemma2(len(tok), seed=0)
    model.train()
    batch = PadCollator(tok.pad_token_id, buckets=(32,))(features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    # From about ln(vocab) to below half of it: the answers' format is learned within a dozen steps.
    assert losses[-1] < 0.5 * losses[0], [round(x, 2) for x in losses]

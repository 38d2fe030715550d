"""Pinned inputs: run.json at the first start, later attempts read exactly those versions or fail InputsChanged.

fake-gcs-server (the real binary the tests run) honours ``generation=`` on reads but cannot keep old generations:
its storage backend refuses bucket versioning ("fs storage type does not support versioning yet"), so an
overwritten object's old generation is gone at once. The tests therefore show on it: the pin (generation, size,
md5, crc32c), reads that send the recorded generation (a wrong one is refused by the server), and the overwrite
that fails the next attempt with InputsChanged. Reading an older generation after an overwrite needs a versioned
bucket (the Terraform bucket has versioning on); on local files the pin is the sha256.
"""

from __future__ import annotations

import json
import shutil

import pytest
from gemma_api.inputs import PinnedFile, PinnedModel, RunRecordFile
from gemma_api.run import EXIT_INPUTS_CHANGED, EXIT_OK
from gemma_trainer.inputs import InputsChanged, model_change, pin_file, read_pinned
from gemma_trainer.tiny import make_dataset_rows

from .conftest import make_manifest, run_folder, train_in_process, write_jsonl

ROWS = [json.dumps(r) + "\n" for r in make_dataset_rows("text", 16, seed=4)]


def test_a_gcs_file_is_pinned_by_generation_and_read_back_at_exactly_that_generation(bucket):
    blob = bucket.blob("data/train.jsonl")
    blob.upload_from_string("".join(ROWS))
    uri = f"gs://{bucket.name}/data/train.jsonl"
    pinned = pin_file(uri)
    stored = bucket.get_blob("data/train.jsonl")
    assert (pinned.generation, pinned.size, pinned.md5, pinned.crc32c) == (
        stored.generation, stored.size, stored.md5_hash, stored.crc32c)
    assert read_pinned(pinned, "gs://x/run.json") == "".join(ROWS).encode()
    wrong = pinned.model_copy(update={"generation": pinned.generation + 1})
    with pytest.raises(InputsChanged):  # the server answers generation= reads: the parameter is sent
        read_pinned(wrong, "gs://x/run.json")
    blob.upload_from_string("".join(ROWS[:3]))  # overwritten: a new generation
    with pytest.raises(InputsChanged) as info:
        read_pinned(pinned, f"gs://{bucket.name}/runs/r1/run.json")
    message = str(info.value)
    assert message.startswith(f"InputsChanged: {uri} generation {pinned.generation} ({pinned.size} bytes), pinned "
                              f"at the run's first start in gs://{bucket.name}/runs/r1/run.json, is gone")
    assert "Fix: restore that version" in message and "a new URI" in message


def test_a_local_file_is_pinned_by_sha256(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 4))
    pinned = pin_file(str(path))
    assert pinned.generation is None and len(pinned.sha256) == 64 and pinned.size == path.stat().st_size
    assert read_pinned(pinned, "run.json") == path.read_bytes()
    path.write_text(path.read_text() + path.read_text())
    with pytest.raises(InputsChanged, match="has changed"):
        read_pinned(pinned, "run.json")
    path.unlink()
    with pytest.raises(InputsChanged, match="is gone"):
        read_pinned(PinnedFile(uri=str(path), size=1, sha256="0" * 64), "run.json")


def _attempt(manifest, tmp_path, name, monkeypatch) -> int:
    """One attempt of the run as a fresh pod makes it: its own empty scratch, the run folder in the bucket."""
    monkeypatch.setenv("GEMMAFT_TRAINER_IMAGE", "registry/gemmaft-trainer-cpu@sha256:" + "a" * 64)
    return train_in_process(manifest, tmp_path / name, monkeypatch=monkeypatch)


def test_run_json_pins_the_first_start_and_an_overwrite_fails_the_next_attempt(tmp_path, tiny_model_dir, bucket,
                                                                                monkeypatch):
    bucket.blob("data/train.jsonl").upload_from_string("".join(ROWS))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir,
                             train_uri=f"gs://{bucket.name}/data/train.jsonl",
                             output_uri=f"gs://{bucket.name}/runs", training={"maxSteps": 2})
    assert _attempt(manifest, tmp_path, "a0", monkeypatch) == EXIT_OK
    rid = run_folder(manifest).rsplit("/", 1)[1]
    record = RunRecordFile.model_validate_json(bucket.blob(f"runs/{rid}/run.json").download_as_text())
    [pinned] = record.inputs.train
    assert pinned.generation == bucket.get_blob("data/train.jsonl").generation and pinned.size > 0
    assert record.run_id == rid and record.spec.dataset.train_uri.endswith("data/train.jsonl")
    assert record.inputs.trainer_image.endswith("@sha256:" + "a" * 64)
    assert record.inputs.model.uri == str(tiny_model_dir) and record.inputs.model.files
    progress = json.loads(bucket.blob(f"runs/{rid}/progress.json").download_as_text())
    assert progress["inputs"]["train"][0]["generation"] == pinned.generation

    # Unchanged data: a later attempt (fresh scratch) reads the pinned generation and finishes.
    assert _attempt(manifest, tmp_path, "a1", monkeypatch) == EXIT_OK
    bucket.blob("data/train.jsonl").upload_from_string("".join(reversed(ROWS)))  # someone overwrites it
    assert _attempt(manifest, tmp_path, "a2", monkeypatch) == EXIT_INPUTS_CHANGED
    failed = json.loads(bucket.blob(f"runs/{rid}/progress.json").download_as_text())
    assert failed["state"] == "failed" and failed["message"].startswith(
        f"InputsChanged: gs://{bucket.name}/data/train.jsonl generation {pinned.generation}")
    again = RunRecordFile.model_validate_json(bucket.blob(f"runs/{rid}/run.json").download_as_text())
    assert again == record  # the pin is never rewritten


def test_local_data_changed_between_attempts_fails_inputs_changed(tmp_path, tiny_model_dir, monkeypatch, capsys):
    train = write_jsonl(tmp_path / "data" / "train.jsonl", make_dataset_rows("text", 16, seed=4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out", training={"maxSteps": 2})
    assert _attempt(manifest, tmp_path, "a0", monkeypatch) == EXIT_OK
    shutil.copy(train, tmp_path / "copy.jsonl")
    write_jsonl(train, make_dataset_rows("text", 16, seed=5))
    assert _attempt(manifest, tmp_path, "a1", monkeypatch) == EXIT_INPUTS_CHANGED
    err = capsys.readouterr().err
    assert f"InputsChanged: {train} sha256" in err and "Traceback" not in err
    shutil.copy(tmp_path / "copy.jsonl", train)  # restored: the same run goes on
    assert _attempt(manifest, tmp_path, "a2", monkeypatch) == EXIT_OK


def test_other_base_weights_on_a_later_attempt_fail_inputs_changed(tmp_path, tiny_model_dir, monkeypatch, capsys):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("text", 16, seed=4))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=model, train_uri=train, output_uri=tmp_path / "out",
                             training={"maxSteps": 2})
    assert _attempt(manifest, tmp_path, "a0", monkeypatch) == EXIT_OK
    config = model / "config.json"
    pinned = next(f for f in RunRecordFile.model_validate_json(
        (tmp_path / "out" / run_folder(manifest).rsplit("/", 1)[1] / "run.json").read_text()).inputs.model.files
        if f.uri == str(config))
    config.write_text(config.read_text().replace("{", '{"_edited": true, ', 1))  # the folder's weights changed
    capsys.readouterr()
    assert _attempt(manifest, tmp_path, "a1", monkeypatch) == EXIT_INPUTS_CHANGED
    assert f"InputsChanged: the base weights {config} sha256 {pinned.sha256}" in capsys.readouterr().err


def test_model_change_names_the_commit_the_generation_or_the_new_file():
    hub = PinnedModel(uri="hf://google/gemma-2-2b", revision="a" * 40)
    assert model_change(hub, hub) is None and model_change(None, hub) is None
    assert model_change(hub, hub.model_copy(update={"revision": "b" * 40})) == (
        f"hf://google/gemma-2-2b commit {'a' * 40} (this attempt resolved {'b' * 40})")
    one = PinnedFile(uri="gs://w/m/model.safetensors", size=9, generation=5)
    gcs = PinnedModel(uri="gs://w/m", files=[one])
    assert model_change(gcs, gcs.model_copy(update={"files": [one.model_copy(update={"generation": 6})]})) == (
        "gs://w/m/model.safetensors generation 5 (9 bytes)")
    extra = PinnedFile(uri="gs://w/m/extra.bin", size=1, generation=1)
    assert model_change(gcs, gcs.model_copy(update={"files": [one, extra]})) == "gs://w/m (new file gs://w/m/extra.bin)"

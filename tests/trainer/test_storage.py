"""gemma_trainer.storage against a local folder and the real fake-gcs-server, same behaviours for both."""

from __future__ import annotations

import uuid

import pytest
from gemma_trainer.gcs_store import GcsStore
from gemma_trainer.storage import LocalStore, NotFound, StorageError, open_store, split_uri


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "root"))
    bucket = request.getfixturevalue("bucket")
    return open_store(f"gs://{bucket.name}/some/prefix")


def test_open_store_kinds(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    assert open_store(f"file://{tmp_path}").uri == str(tmp_path)
    gs = open_store("gs://bkt/a/b/")
    assert isinstance(gs, GcsStore) and (gs.bucket_name, gs.prefix, gs.uri) == ("bkt", "a/b", "gs://bkt/a/b")
    assert open_store("gs://bkt").uri == "gs://bkt"
    assert gs.child("c/d").uri == "gs://bkt/a/b/c/d"
    assert gs.url("x.json") == "gs://bkt/a/b/x.json"
    with pytest.raises(StorageError, match="unsupported URI scheme"):
        open_store("s3://bkt/x")
    with pytest.raises(StorageError, match="bucket name"):
        open_store("gs:///x")
    parent, name = split_uri("gs://bkt/a/train.jsonl")
    assert parent.uri == "gs://bkt/a" and name == "train.jsonl"


def test_roundtrip(store):
    store.write_bytes("a/b.bin", b"\x00\x01\xff")
    store.write_text("c.txt", "héllo\n")
    assert store.read_bytes("a/b.bin") == b"\x00\x01\xff"
    assert store.read_text("c.txt") == "héllo\n"
    store.write_text("c.txt", "replaced")
    assert store.read_text("c.txt") == "replaced"
    assert store.child("a").read_bytes("b.bin") == b"\x00\x01\xff"
    assert store.child("a").uri == store.uri.rstrip("/") + "/a"


def test_write_if_absent(store):
    store.write_text("marker", "1", if_absent=True)
    with pytest.raises(StorageError, match="already exists"):
        store.write_text("marker", "2", if_absent=True)
    assert store.read_text("marker") == "1"


def test_list_is_recursive_sorted_and_folder_scoped(store):
    for key in ["ckpt/step-10/x", "ckpt/step-1/b", "ckpt/step-1/a/deep", "top.json", "ckpt/step-2"]:
        store.write_text(key, key)
    assert store.list() == sorted(["ckpt/step-10/x", "ckpt/step-1/b", "ckpt/step-1/a/deep", "top.json",
                                   "ckpt/step-2"])
    assert store.list("ckpt/step-1") == ["ckpt/step-1/a/deep", "ckpt/step-1/b"]
    assert store.list("ckpt/step-1/") == ["ckpt/step-1/a/deep", "ckpt/step-1/b"]
    assert store.list("top.json") == ["top.json"]
    assert store.list("nothing") == []
    assert store.child("ckpt").list("step-10") == ["step-10/x"]


def test_exists(store):
    assert not store.exists("x/y")
    store.write_text("x/y", "1")
    assert store.exists("x/y")
    assert not store.exists("x")  # a folder is not an object
    assert not store.exists("x/y/z")


def test_delete_prefix(store):
    for key in ["run/ckpt/step-1/a", "run/ckpt/step-1/b/c", "run/ckpt/step-10/a", "run/progress.json"]:
        store.write_text(key, "v")
    assert store.delete_prefix("run/ckpt/step-1") == 2
    assert store.list() == ["run/ckpt/step-10/a", "run/progress.json"]
    assert store.delete_prefix("absent") == 0
    assert store.delete_prefix("") == 2
    assert store.list() == []


def test_upload_and_download_dir(store, tmp_path):
    src = tmp_path / "src"
    files = {"adapter_model.safetensors": b"\x00" * 3000, "adapter_config.json": b"{}",
             "nested/deeper/state.pt": b"state", "nested/rng.pth": b"rng"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    keys = store.upload_dir(src, "checkpoints/step-00000005", workers=4)
    assert sorted(keys) == sorted(f"checkpoints/step-00000005/{r}" for r in files)
    assert store.list("checkpoints") == sorted(keys)
    dst = tmp_path / "dst"
    rels = store.download_dir("checkpoints/step-00000005", dst, workers=4)
    assert sorted(rels) == sorted(files)
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    # upload to the root of the store, then download everything
    dst2 = tmp_path / "dst2"
    store.child("other").upload_dir(src)
    store.child("other").download_dir("", dst2)
    assert {p.relative_to(dst2).as_posix() for p in dst2.rglob("*") if p.is_file()} == set(files)


def test_download_nothing_is_not_found(store, tmp_path):
    with pytest.raises(NotFound):
        store.download_dir("checkpoints/step-00000001", tmp_path / "d")


def test_upload_missing_local_dir(store, tmp_path):
    with pytest.raises(StorageError, match="not a directory"):
        store.upload_dir(tmp_path / "missing", "x")


def test_missing_key_is_not_found(store):
    with pytest.raises(NotFound) as info:
        store.read_bytes("no/such/key.json")
    assert "no/such/key.json" in str(info.value)
    assert info.value.uri.endswith("no/such/key.json")


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    store = open_store(str(tmp_path))
    store.write_bytes("d/f", b"1")
    store.write_bytes("d/f", b"2")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["f"]
    assert store.read_bytes("d/f") == b"2"
    with pytest.raises(StorageError, match=r"'\.\.'"):
        store.read_bytes("../escape")


def test_missing_bucket_gives_clear_storage_error(gcs, tmp_path):
    name = f"missing-{uuid.uuid4().hex[:8]}"
    store = open_store(f"gs://{name}/runs", retry_timeout=5)
    for call in (lambda: store.read_bytes("x.json"), lambda: store.write_text("x.json", "{}"),
                 lambda: store.list(), lambda: store.exists("x.json"),
                 lambda: store.download_dir("ckpt", tmp_path / "d")):
        with pytest.raises(StorageError) as info:
            call()
        msg = str(info.value)
        assert not isinstance(info.value, NotFound), msg
        assert f"gs://{name}" in msg and "does not exist" in msg
        assert "STORAGE_EMULATOR_HOST" in msg, msg


def test_upload_failures_are_checked_and_named(bucket, tmp_path, monkeypatch):
    """transfer_manager returns exceptions in its result list: every one must surface."""
    from google.cloud.storage import transfer_manager

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "ok.bin").write_bytes(b"1")
    (src / "sub" / "bad.bin").write_bytes(b"2")
    real = transfer_manager.upload_many

    def flaky(pairs, **kwargs):
        results = real(pairs, **kwargs)
        return [RuntimeError("boom") if path.endswith("bad.bin") else r for (path, _), r in zip(pairs, results)]

    monkeypatch.setattr(transfer_manager, "upload_many", flaky)
    store = open_store(f"gs://{bucket.name}/p")
    with pytest.raises(StorageError, match=r"upload failed for 1 of 2 files \(sub/bad.bin\)"):
        store.upload_dir(src, "ck")

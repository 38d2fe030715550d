"""One small interface over ``gs://bucket/prefix`` (google-cloud-storage) and local folders.

``open_store(uri)`` gives an :class:`~gemma_trainer.object_store.ObjectStore` rooted at ``uri``. Keys are ``/``-separated paths relative to that
root. ``list(prefix)`` and ``delete_prefix(prefix)`` treat ``prefix`` as a folder: ``"checkpoints/step-1"``
matches ``checkpoints/step-1`` and ``checkpoints/step-1/...``, never ``checkpoints/step-10/...``.

``gs://`` is :class:`gemma_trainer.gcs_store.GcsStore` (its client, retries and preconditions are described
there); the interface and its errors are :mod:`gemma_trainer.object_store`; this module holds local folders
and ``open_store``.

Errors: :class:`NotFound` for a missing key (or nothing under a folder to download), :class:`StorageError` for
everything else, with a message naming the URI and what to check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .gcs_store import GcsStore
from .object_store import (
    NotFound,
    ObjectStore,
    StorageError,
    checked_key,
    download_one_by_one,
    files_below,
    join_key,
)

_TMP_PREFIX = ".tmp-"


# ---------------------------------------------------------------------------------------------- local


class LocalStore(ObjectStore):
    """A local directory; writes go to a temporary file in the same folder, then ``os.replace``."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def _path(self, rel: str) -> Path:
        rel = checked_key(rel)
        return self.root / rel if rel else self.root

    def child(self, rel: str) -> LocalStore:
        return LocalStore(self._path(rel))

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"{path}: no such file", uri=str(path)) from None
        except OSError as e:
            raise StorageError(f"{path}: cannot read: {e}", uri=str(path)) from e

    def write_bytes(self, rel: str, data: bytes, *, if_absent: bool = False) -> None:
        path = self._path(rel)
        if not checked_key(rel):
            raise StorageError(f"{path}: cannot write an object at the store root")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if if_absent:
                    # link() fails when the target exists: an atomic create-if-absent.
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise StorageError(f"{path}: already exists", uri=str(path)) from None
                    finally:
                        os.unlink(tmp)
                else:
                    os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except StorageError:
            raise
        except OSError as e:
            raise StorageError(f"{path}: cannot write: {e}", uri=str(path)) from e

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def list(self, prefix: str = "") -> list[str]:
        prefix = checked_key(prefix)
        base = self._path(prefix)
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                keys.append(Path(dirpath, name).relative_to(self.root).as_posix())
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        prefix = checked_key(prefix)
        keys = self.list(prefix)
        base = self._path(prefix)
        try:
            if base.is_file():
                base.unlink()
            elif base.is_dir():
                if prefix:
                    shutil.rmtree(base)
                else:
                    for entry in base.iterdir():
                        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError as e:
            raise StorageError(f"{base}: cannot delete: {e}", uri=str(base)) from e
        return len(keys)

    def upload_dir(self, local_dir: str | Path, rel_prefix: str = "", workers: int = 8) -> list[str]:
        files = files_below(local_dir)
        keys = []
        for rel in files:
            key = join_key(checked_key(rel_prefix), rel)
            self.write_bytes(key, (Path(local_dir) / rel).read_bytes())
            keys.append(key)
        return keys

    def download_dir(self, rel_prefix: str, local_dir: str | Path, workers: int = 8) -> list[str]:
        return download_one_by_one(self, rel_prefix, local_dir)


# ---------------------------------------------------------------------------------------------- open


def parse_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = uri[len("gs://"):]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def open_store(uri: str, **gcs_options) -> ObjectStore:
    """An :class:`ObjectStore` for ``gs://bucket/prefix``, ``file:///path`` or a local path.
    ``gcs_options``: ``timeout`` (seconds per request) and ``retry_timeout`` (seconds of retries)."""
    uri = str(uri)
    if uri.startswith("gs://"):
        bucket, prefix = parse_gs(uri)
        return GcsStore(bucket, prefix, **gcs_options)
    if uri.startswith("file://"):
        return LocalStore(uri[len("file://"):] or "/")
    if "://" in uri:
        raise StorageError(f"{uri}: unsupported URI scheme; use gs://BUCKET/PATH or a local path", uri=uri)
    return LocalStore(uri)


def split_uri(uri: str) -> tuple[ObjectStore, str]:
    """``(store of the parent folder, base name)`` for a URI naming one object."""
    uri = str(uri).rstrip("/")
    parent, _, name = uri.rpartition("/")
    if uri.startswith("gs://") and parent in ("gs:/", "gs:"):
        raise StorageError(f"{uri}: names a bucket, not an object", uri=uri)
    return open_store(parent or "."), name

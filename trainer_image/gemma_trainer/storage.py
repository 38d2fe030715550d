"""One small interface over ``gs://bucket/prefix`` (google-cloud-storage) and local folders.

``open_store(uri)`` gives a :class:`Store` rooted at ``uri``. Keys are ``/``-separated paths relative to that
root. ``list(prefix)`` and ``delete_prefix(prefix)`` treat ``prefix`` as a folder: ``"checkpoints/step-1"``
matches ``checkpoints/step-1`` and ``checkpoints/step-1/...``, never ``checkpoints/step-10/...``.

``gs://`` is :class:`gemma_trainer.gcs_store.GcsStore` (its client, retries and preconditions are described
there); this module holds the interface, local folders and ``open_store``.

Errors: :class:`NotFound` for a missing key (or nothing under a folder to download), :class:`StorageError` for
everything else, with a message naming the URI and what to check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_TMP_PREFIX = ".tmp-"


class StorageError(Exception):
    """A storage operation failed; the message names the URI and what to check."""

    def __init__(self, message: str, uri: str | None = None):
        super().__init__(message)
        self.uri = uri


class NotFound(StorageError):
    """The key (or folder) does not exist."""


def access_hint() -> str:
    """What to check when a bucket cannot be reached (the emulator, or Workload Identity and its role)."""
    if os.environ.get(EMULATOR_ENV):
        return (f"check that the bucket exists on the storage emulator at {EMULATOR_ENV}="
                f"{os.environ[EMULATOR_ENV]} and that the emulator is running")
    return ("check that the bucket exists and that the pod's Kubernetes service account is bound (Workload "
            "Identity) to a Google service account with roles/storage.objectAdmin on it; outside GKE, check "
            f"GOOGLE_APPLICATION_CREDENTIALS; for a local emulator set {EMULATOR_ENV}")


def join_key(*parts: str) -> str:
    """``parts`` joined with single slashes, empty parts skipped."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def checked_key(rel: str) -> str:
    """``rel`` as a storage key (forward slashes, no leading or trailing one); StorageError for '.' or '..'."""
    rel = rel.replace("\\", "/").strip("/")
    if any(part in ("..", ".") for part in rel.split("/")):
        raise StorageError(f"invalid key {rel!r}: '.' and '..' are not allowed in storage keys")
    return rel


class Store(ABC):
    """A folder of objects: ``gs://bucket/prefix`` or a local directory."""

    uri: str

    @abstractmethod
    def child(self, rel: str) -> Store:
        """The store rooted at ``rel`` below this one."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The object's bytes; :class:`NotFound` when it does not exist."""

    def read_text(self, rel: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(rel).decode(encoding)

    @abstractmethod
    def write_bytes(self, rel: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write a whole object (atomically: readers see the old or the new bytes). With ``if_absent`` the
        write fails with :class:`StorageError` when the key already exists."""

    def write_text(self, rel: str, text: str, *, if_absent: bool = False) -> None:
        self.write_bytes(rel, text.encode("utf-8"), if_absent=if_absent)

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether an object named ``rel`` exists (folders are not objects)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under the folder ``prefix`` (recursive, sorted), relative to this store's root."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under the folder ``prefix`` (everything when empty); returns how many."""

    @abstractmethod
    def upload_dir(self, local_dir: str | Path, rel_prefix: str = "", workers: int = 8) -> list[str]:
        """Upload every file below ``local_dir`` to ``rel_prefix/<relative path>``; returns the keys written."""

    @abstractmethod
    def download_dir(self, rel_prefix: str, local_dir: str | Path, workers: int = 8) -> list[str]:
        """Download every key under ``rel_prefix`` into ``local_dir`` (paths relative to ``rel_prefix``);
        returns those relative paths. :class:`NotFound` when there is nothing under ``rel_prefix``."""

    def url(self, rel: str = "") -> str:
        """The URI of a key below this store."""
        rel = checked_key(rel)
        return self.uri.rstrip("/") + ("/" + rel if rel else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def key_is_under(key: str, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` itself or below the folder ``prefix`` (every key is under an empty one)."""
    return not prefix or key == prefix or key.startswith(prefix + "/")


# ---------------------------------------------------------------------------------------------- local


class LocalStore(Store):
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


def files_below(local_dir: str | Path) -> list[str]:
    """Every file below ``local_dir``, as sorted relative POSIX paths (StorageError when it is no folder)."""
    root = Path(local_dir)
    if not root.is_dir():
        raise StorageError(f"{root}: not a directory, nothing to upload", uri=str(root))
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def download_one_by_one(store: Store, rel_prefix: str, local_dir: str | Path) -> list[str]:
    """Every object below ``rel_prefix`` of ``store`` read and written into ``local_dir``; their relative paths."""
    rel_prefix = checked_key(rel_prefix)
    keys = store.list(rel_prefix)
    if not keys:
        raise NotFound(f"{store.url(rel_prefix)}: nothing to download (no objects under it)",
                       uri=store.url(rel_prefix))
    out = []
    for key in keys:
        rel = key[len(rel_prefix):].lstrip("/") if rel_prefix else key
        rel = rel or Path(key).name
        target = Path(local_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(key))
        out.append(rel)
    return out


# ---------------------------------------------------------------------------------------------- open


def parse_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = uri[len("gs://"):]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def open_store(uri: str, **gcs_options) -> Store:
    """A :class:`Store` for ``gs://bucket/prefix``, ``file:///path`` or a local path.
    ``gcs_options``: ``timeout`` (seconds per request) and ``retry_timeout`` (seconds of retries)."""
    uri = str(uri)
    if uri.startswith("gs://"):
        from .gcs_store import GcsStore

        bucket, prefix = parse_gs(uri)
        return GcsStore(bucket, prefix, **gcs_options)
    if uri.startswith("file://"):
        return LocalStore(uri[len("file://"):] or "/")
    if "://" in uri:
        raise StorageError(f"{uri}: unsupported URI scheme; use gs://BUCKET/PATH or a local path", uri=uri)
    return LocalStore(uri)


def split_uri(uri: str) -> tuple[Store, str]:
    """``(store of the parent folder, base name)`` for a URI naming one object."""
    uri = str(uri).rstrip("/")
    parent, _, name = uri.rpartition("/")
    if uri.startswith("gs://") and parent in ("gs:/", "gs:"):
        raise StorageError(f"{uri}: names a bucket, not an object", uri=uri)
    return open_store(parent or "."), name

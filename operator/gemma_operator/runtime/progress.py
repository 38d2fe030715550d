"""Read a run's progress.json from gs:// (honouring STORAGE_EMULATOR_HOST) or a local folder."""

from __future__ import annotations

import asyncio
import logging
import os
from functools import lru_cache
from pathlib import Path

from gemma_api.run import PROGRESS_FILE, RunProgress
from pydantic import ValidationError

log = logging.getLogger("gemma_operator.progress")


@lru_cache(maxsize=4)
def _client(emulator: str | None):
    from google.cloud import storage

    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="local", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": emulator})
    return storage.Client()


def _read_text(run_uri: str) -> str | None:
    if run_uri.startswith("gs://"):
        from google.api_core.exceptions import NotFound

        bucket, _, prefix = run_uri[len("gs://"):].partition("/")
        blob = _client(os.environ.get("STORAGE_EMULATOR_HOST")).bucket(bucket).blob(
            f"{prefix.rstrip('/')}/{PROGRESS_FILE}".lstrip("/"))
        try:
            return blob.download_as_text(timeout=10)
        except NotFound:
            return None
    path = Path(run_uri) / PROGRESS_FILE
    return path.read_text() if path.exists() else None


def read_progress_sync(run_uri: str) -> RunProgress | None:
    try:
        text = _read_text(run_uri)
    except Exception as err:  # noqa: BLE001  storage down or no permission: the status just lacks progress for now
        log.warning("cannot read %s/%s: %s", run_uri, PROGRESS_FILE, err)
        return None
    if text is None:
        return None
    try:
        return RunProgress.model_validate_json(text)
    except ValidationError as err:
        log.warning("ignoring malformed %s/%s: %s", run_uri, PROGRESS_FILE, err.errors()[:1])
        return None


async def read_progress(run_uri: str) -> RunProgress | None:
    return await asyncio.to_thread(read_progress_sync, run_uri)

"""The model cache of this machine (``$GEMMAFT_CACHE_DIR``, default ``~/.cache/gemmaft/models``): downloaded
model and adapter folders, and the folders ``pkg://`` weights are prepared into (``gemma_trainer.packaged``)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .storage import open_store

log = logging.getLogger("gemma_trainer.model")


def cache_root() -> Path:
    return Path(os.environ.get("GEMMAFT_CACHE_DIR") or Path.home() / ".cache" / "gemmaft" / "models")


COMPLETE_MARKER = ".gemmaft-complete"  # written last into a cached download: the download finished


def cache_folder(uri: str, under: str = "") -> Path:
    """The cache folder of a downloaded ``uri``: ``cache_root()/<under>/<hash of uri>``."""
    return cache_root() / under / hashlib.sha256(uri.encode()).hexdigest()[:16]


def cached_download(uri: str, local: Path) -> Path:
    """The storage folder ``uri`` downloaded once into ``local`` (marked complete last, so an interrupted download
    is redone); later calls return ``local`` at once."""
    done = local / COMPLETE_MARKER
    if not done.exists():
        log.info("downloading %s to %s", uri, local)
        local.mkdir(parents=True, exist_ok=True)
        open_store(uri).download_dir("", str(local))
        done.write_text(uri)
    return local

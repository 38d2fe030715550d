"""Logging of the trainer's commands (``gemmaft train``, ``check-numerics``, ``prepare-model``): one line per
record on stderr, the rank in front on data-parallel workers other than rank 0, chatty libraries quietened."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging() -> None:
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank not in (None, "0") else ""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {prefix}%(message)s", force=True)
    for noisy in ("urllib3", "google", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

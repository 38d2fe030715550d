"""Deterministic object names that fit Kubernetes' limits for any GemmaFineTune name.

Every name is a DNS-1035 label (what Services need; valid for Jobs and ConfigMaps too). Job names leave room
for the ``-<index>`` suffix of Indexed Job hostnames, which must stay within 63 characters as well.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
JOB_NAME_MAX = DNS_LABEL_MAX - 5  # hostname "<job>-<index>" with up to 4 index digits


def _sanitize(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower())
    return cleaned if cleaned[:1].isalpha() else f"g{cleaned}"


def bounded_name(base: str, suffix: str, limit: int = DNS_LABEL_MAX) -> str:
    """``<base>-<suffix>`` within ``limit`` characters; a truncated base keeps a hash of the original."""
    base = _sanitize(base)
    full = f"{base}-{suffix}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    room = limit - len(suffix) - len(digest) - 2
    return f"{base[:room].rstrip('-')}-{digest}-{suffix}"


LABEL_VALUE_MAX = 63


def label_value(name: str) -> str:
    """A fine-tune name as a label value (at most 63 characters; a longer name keeps a hash of itself)."""
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:56].rstrip('-.')}-{digest}"


def run_key(run_id: str, stage: str | None = None) -> str:
    """What the names of a run's objects are built from: the run id, plus the stage of a distillation
    (``teacher``, ``student``; a plain run has none, recorded as ``train``)."""
    return run_id if stage in (None, "train") else f"{run_id}-{stage}"


def _run_suffix(run_id: str, attempt: int) -> str:
    return run_id if attempt == 0 else f"{run_id}-a{attempt}"


def job_name(name: str, run_id: str, attempt: int = 0) -> str:
    return bounded_name(name, _run_suffix(run_id, attempt), JOB_NAME_MAX)


def service_name(name: str, run_id: str, attempt: int = 0) -> str:
    """Headless Service of a multi-host slice (the pods' subdomain)."""
    return job_name(name, run_id, attempt)


def config_map_name(name: str, run_id: str) -> str:
    return bounded_name(name, f"{run_id}-config")


def serving_name(name: str) -> str:
    """The serving Deployment and its Service (one per fine-tune, whatever run it serves)."""
    return bounded_name(name, "serve")

"""Field types the spec's sections share: names, URIs, Kubernetes names, accelerator types (with ``spec``,
``accelerator_spec`` and ``distillation`` importing them, none of those imports another to get them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from .accelerators import ACCELERATORS, all_gpu_counts, all_topologies, spelled_list
from .facts import LINEAR_MODULES, MODELS
from .methods import METHODS

ModelName = Literal[tuple(MODELS)]  # type: ignore[valid-type]
Method = Literal[tuple(METHODS)]  # type: ignore[valid-type]
DataFormat = Literal["auto", "messages", "prompt-completion", "text"]
AcceleratorType = Literal[tuple(ACCELERATORS)]  # type: ignore[valid-type]
Topology = Literal[all_topologies()]  # type: ignore[valid-type]
GpuCount = Literal[all_gpu_counts()]  # type: ignore[valid-type]
LrScheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
TargetModule = Literal[(*LINEAR_MODULES, "all-linear")]  # type: ignore[valid-type]

# gs://bucket[/path] or a local path; http(s) and other schemes are refused.
GCS_OR_LOCAL = r"^(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?|/.*|\./.*|[A-Za-z0-9_.-][^:]*)$"
MODEL_URI = (r"^(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?|hf://[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
             r"|pkg://[a-z0-9][a-z0-9._-]*|/.*|\./.*|[A-Za-z0-9_.-][^:]*)$")
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Uri = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=GCS_OR_LOCAL)]
ModelUri = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=MODEL_URI)]
DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]
DnsSubdomain = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
Image = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]


def not_bool(value):
    if isinstance(value, bool):  # Literal[1, 2, 4] would take True as 1
        raise ValueError(f"expected an integer ({spelled_list(all_gpu_counts())}), not a boolean")  # noqa: TRY004 (pydantic reports ValueError)
    return value


def reject_bool(value):
    """For integer Literals (pydantic takes True as 1 there): a boolean is refused."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")  # noqa: TRY004 (pydantic reports ValueError)
    return value

"""A field-level problem of a spec, and the accelerator section's own (shared by training, teacher and serving)."""

from __future__ import annotations

from dataclasses import dataclass

from .accelerator_spec import Accelerator
from .accelerators import names_of, profile, spelled_list


@dataclass(frozen=True)
class Problem:
    field: str  # dotted path in camelCase, e.g. "spec.accelerator.count"
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def accelerator_problems(acc: Accelerator, path: str) -> list[Problem]:
    record = profile(acc.type)
    problems = []
    if acc.count is not None and acc.count not in record.gpu_counts:
        problems.append(Problem(f"{path}.count", _count_message(acc)))
    if acc.topology is not None and acc.topology not in record.topologies:
        problems.append(Problem(f"{path}.topology", _topology_message(acc)))
    return problems


def _count_message(acc: Accelerator) -> str:
    counts = profile(acc.type).gpu_counts
    if not counts:
        return (f"count applies only to {spelled_list(names_of('gpu'))}, not {acc.type}: remove it "
                "(a TPU slice is sized by topology)")
    return f"{acc.type} takes count {spelled_list(counts)}, not {acc.count}"


def _topology_message(acc: Accelerator) -> str:
    topologies = profile(acc.type).topologies
    if not topologies:
        return f"topology applies only to {spelled_list(names_of('tpu'))}: remove it or set a TPU type"
    return f"{acc.type} topologies: {spelled_list(topologies)}, not {acc.topology}"

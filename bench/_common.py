"""Shared helpers of the benchmarks: machine description, statistics, the final JSON line."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    """What the numbers were measured on: CPU count, load average at the time, Python and torch versions."""
    info = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return info


def say(*parts) -> None:
    print(*parts, flush=True)


def median(values):
    return statistics.median(values)


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[k]


def target_line(name: str, value: float, target: float, higher_is_better: bool, unit: str = "") -> dict:
    """Print whether ``value`` meets ``target`` and by how much it misses; returns a small dict for the JSON."""
    met = value >= target if higher_is_better else value <= target
    if met:
        say(f"  target {name}: {'>=' if higher_is_better else '<='} {target:g}{unit}: MET ({value:.3g}{unit})")
    else:
        if higher_is_better:
            miss = f"short by {target - value:.3g}{unit} ({100.0 * (target - value) / target:.0f}% below)"
        else:
            miss = f"over by {value - target:.3g}{unit} ({100.0 * (value - target) / target:.0f}% above)"
        say(f"  target {name}: {'>=' if higher_is_better else '<='} {target:g}{unit}: MISSED ({value:.3g}{unit}; "
            f"{miss})")
    return {"value": value, "target": target, "met": met}


def final_json(name: str, figures: dict) -> None:
    """The one machine-readable line every benchmark ends with."""
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}, sort_keys=True, default=str),
          flush=True)
    sys.stdout.flush()

"""Run every benchmark in turn (``make bench``): each prints human-readable lines and one final JSON line.

The whole set is sized to finish in under 10 minutes on 2 CPU cores: the operator benchmark creates
``BENCH_OPERATOR_N`` fine-tunes (default 100 here; ``bench/operator_scale.py`` alone runs 100 and 1,000).
A summary of the JSON lines is printed at the end; the exit code is non-zero if a benchmark crashed (missed
targets do not fail the run: they are printed with the amount by which they were missed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("trainer_throughput", []),
    ("checkpoint_cost", []),
    ("operator_scale", ["-n", os.environ.get("BENCH_OPERATOR_N", "100"), "--timeout", "200"]),
    ("gpu", []),
]


def main() -> int:
    env = dict(os.environ, PYTHONWARNINGS="ignore", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    only = set(sys.argv[1:])
    failed, summary = [], {}
    started = time.perf_counter()
    for name, extra in BENCHMARKS:
        if only and name not in only:
            continue
        print(f"=== {name} ===", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *extra], env=env, cwd=HERE.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        last_json = None
        for line in proc.stdout:
            stripped = line.strip()
            if stripped.startswith("{") and '"benchmark"' in stripped:
                last_json = stripped
            # Library progress bars and warnings are noise here; our own lines start with a letter or space.
            if stripped and not any(s in line for s in ("Warning", "warnings.warn", "it/s]", "Loading weights")):
                print(line, end="", flush=True)
        rc = proc.wait()
        seconds = time.perf_counter() - t0
        print(f"--- {name}: exit {rc} in {seconds:.0f} s", flush=True)
        if rc != 0 or last_json is None:
            failed.append(name)
        else:
            summary[name] = json.loads(last_json).get("targets", {})
    print(f"=== all benchmarks: {time.perf_counter() - started:.0f} s; crashed: {', '.join(failed) or 'none'} ===")
    for name, targets in summary.items():
        for target, value in targets.items():
            if isinstance(value, dict) and "met" in value:
                print(f"  {name}.{target}: {'met' if value['met'] else 'MISSED'} ({value['value']:.3g} vs "
                      f"{value['target']:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

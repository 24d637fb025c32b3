"""Capacity search overhead: wall time of a search ÷ the sum of its steps (target ≤ 1.1).

Run: ``python bench/capacity.py [--runs 3] [--step-seconds 10] [--ingest-rate 20000]``.

Each run is one ``loadkit capacity`` search against the embedded reference server with an
ingest cap (one target and one load generator for every step). For each it prints:

- **search wall ÷ Σ step durations**: the search's own wall time (first step's start → the
  answer) over the sum of the steps' durations, each step counted from the moment its rate
  is set to the moment the next may start (its load, the wait for its last answers, and the
  drain of what is still in flight when it failed). 1.0 means nothing but steps ran;
- **search wall ÷ Σ step load windows**: the same over the seconds of load alone
  (``--step-seconds`` per step, less for a step that failed early), i.e. what the decisions
  and drains add;
- **process wall ÷ search wall**: everything the command did (start the server, spawn the
  users, write Parquet, stop) over the search.

The median and spread over ``--runs`` runs are printed last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def one(args: argparse.Namespace, results: str) -> tuple[float, float, float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "loadkit", "capacity", "--json", "--results-dir", results,
         "--start", str(args.start), "--step-seconds", str(args.step_seconds),
         "--items", str(args.items), "--payload-bytes", "256",
         "--server-ingest-rate", str(args.ingest_rate)],
        capture_output=True, text=True, check=False, timeout=args.step_seconds * 40 + 120)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"loadkit capacity failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = answer["steps"]
    by_duration = answer["wall_s"] / sum(s["duration_s"] for s in steps)
    by_load = answer["wall_s"] / sum(s["window_s"] for s in steps)
    return by_duration, by_load, wall / answer["wall_s"], answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--ingest-rate", type=float, default=20000)
    parser.add_argument("--start", type=float, default=2000)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()
    ratios: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory() as results:
        for k in range(args.runs):
            by_duration, by_load, overall, answer = one(args, results)
            ratios.append((by_duration, by_load, overall))
            print(f"run {k + 1}: {len(answer['steps'])} steps of {args.step_seconds:g} s, knee "
                  f"{answer['knee_items_per_s']:,.0f} items/s ({answer['limited_by']}), search "
                  f"{answer['wall_s']:,.1f} s; wall ÷ Σ step durations {by_duration:.3f}, "
                  f"÷ Σ load windows {by_load:.3f}; process ÷ search {overall:.2f}")
    for i, name in enumerate(("search wall ÷ Σ step durations (target ≤ 1.1)",
                              "search wall ÷ Σ step load windows",
                              "process wall ÷ search wall")):
        values = [r[i] for r in ratios]
        print(f"ratio {name}: median {statistics.median(values):.3f} "
              f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} runs)")


if __name__ == "__main__":
    main()

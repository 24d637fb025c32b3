"""Capacity search overhead: wall time of a search ÷ the sum of its steps (target ≤ 1.1).

Run: ``python bench/capacity.py [--rounds 1] [--step-seconds 10] [--ingest-rate 20000]
[--json PATH]``.

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

Rounds (``bench/_rounds.py``): ``--rounds`` searches (``--runs`` is the same option; default
1), one after the other; there is no baseline to alternate with and no warm-up round (each
search starts its own processes). Each figure is the median over the searches, printed last
with min and max and, on the line under it, its spread. Cost at the default settings on a
2-core machine: ~110 s per search (measured with ``--step-seconds 1 --ingest-rate 4000``:
8 steps, 10.3 s of search, 13.6 s in all; by default ~10 steps: up ×2 from 2,000 to 32,000
items/s, then ~5 of bisection, each ~10.3 s, plus ~3.5 s for the command's start and stop).
So one search fits the ~2 minutes a bench may take (the target's figure was 1.000 in that
tiny search); ``--rounds 3`` shows its spread, in ~6 minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import _rounds


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
    _rounds.add_arguments(parser, default=1, aliases=("--runs",), per_round="~110 s",
                          warmup=False)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--ingest-rate", type=float, default=20000)
    parser.add_argument("--start", type=float, default=2000)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()

    def progress(k: int, got: dict[str, tuple[float, float, float, dict]]) -> None:
        by_duration, by_load, overall, answer = got["search"]
        print(f"run {k + 1}: {len(answer['steps'])} steps of {args.step_seconds:g} s, knee "
              f"{answer['knee_items_per_s']:,.0f} items/s ({answer['limited_by']}), search "
              f"{answer['wall_s']:,.1f} s; wall ÷ Σ step durations {by_duration:.3f}, "
              f"÷ Σ load windows {by_load:.3f}; process ÷ search {overall:.2f}", flush=True)

    with tempfile.TemporaryDirectory() as results:
        got = _rounds.interleave({"search": lambda: one(args, results)}, args.rounds,
                                 warmup=False, after_round=progress)
    print(got.timing_line())
    report = _rounds.Report("capacity")
    targets = (_rounds.at_most(1.1, "≤ 1.1"), None, None)
    for i, name in enumerate(("search wall ÷ Σ step durations (target ≤ 1.1)",
                              "search wall ÷ Σ step load windows",
                              "process wall ÷ search wall")):
        fig = report.add(name.removesuffix(" (target ≤ 1.1)"), [r[i] for r in got["search"]],
                         target=targets[i], fmt=".3f")
        s = fig.stats
        print(f"ratio {name}: median {s.median:.3f} "
              f"(min {s.lo:.3f}, max {s.hi:.3f}, {s.n} runs)")
        print(fig.spread_line())
    report.write(args.json)


if __name__ == "__main__":
    main()

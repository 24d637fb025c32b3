"""Regression gate noise end to end: how often two runs with the same settings are flagged.

Runs ``--pairs`` pairs of runs with the same settings against the embedded reference server,
one after the other as CI would, and gates the second of each pair against the first
(``loadkit.regression.gate``, default tolerances); then ``--delayed`` runs with
``--server-create-delay 0.03`` gated against the first baseline. Prints each verdict line and
the counts: ``same settings not flagged: N of PAIRS`` and ``create delay flagged: N of K``.

    python bench/regression.py                 # 10 pairs + 3 delayed runs of 10 s, 2 users
    python bench/regression.py --pairs 2 --delayed 1 --run-time 4s
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import loadkit
from loadkit.regression import gate


def one_run(results: str, run_time: str, users: int, **extra: str) -> loadkit.Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = loadkit.run(users=users, run_time=run_time, progress=False, results_dir=results,
                          **extra)
    if run.exit_code != 0:
        raise SystemExit(f"run failed (exit code {run.exit_code}); see {run.log}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--delayed", type=int, default=3)
    parser.add_argument("--run-time", default="10s")
    parser.add_argument("--users", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as results:
        passed, first = 0, None
        for i in range(args.pairs):
            base = one_run(results, args.run_time, args.users)
            cand = one_run(results, args.run_time, args.users)
            first = first or base
            result = gate(cand, base)
            passed += result.passed
            print(f"pair {i + 1:2d} (load {os.getloadavg()[0]:.1f}): "
                  f"{result.table.splitlines()[0]}", flush=True)
        flagged = 0
        for i in range(args.delayed):
            if first is None:
                first = one_run(results, args.run_time, args.users)
            cand = one_run(results, args.run_time, args.users, server_create_delay="0.03")
            result = gate(cand, first)
            flagged += not result.passed
            print(f"delayed {i + 1} (load {os.getloadavg()[0]:.1f}): "
                  f"{result.table.splitlines()[0][:160]}", flush=True)
    print(f"same settings not flagged: {passed} of {args.pairs} pairs "
          f"({args.run_time} runs, {args.users} users, {os.cpu_count()} cores)")
    print(f"create delay 0.03 s flagged: {flagged} of {args.delayed}")


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"bench time: {time.monotonic() - t0:,.0f} s")

"""Regression gate noise end to end: how often two runs with the same settings are flagged.

Runs ``--pairs`` pairs of runs with the same settings against the embedded reference server,
one after the other as CI would, and gates the second of each pair against the first
(``loadkit.regression.gate``, default tolerances); then ``--delayed`` runs with
``--server-create-delay 0.03`` gated against the first baseline. Prints each verdict line and
the counts: ``same settings not flagged: N of PAIRS`` and ``create delay flagged: N of K``.

Rounds (``bench/_rounds.py``): each pair is a round (``--rounds`` is the same option as
``--pairs``; no warm-up round, nothing to alternate: both runs of a pair have the same
settings). Under the counts, the noise between two runs with the same settings: the
median and spread over the pairs of the change in items/s and in p95 total latency (the
gate's point estimates, candidate ÷ baseline − 1). This is a long single experiment: ~24 s
per pair, ~4.5 min by default (23 runs of 10 s, ~12 s each with their start and stop;
measured: 3 runs of 2 s in 12 s), left out of ``bench/run_all.py``'s default set; it has no
target (``--json PATH`` still writes the figures).

    python bench/regression.py                 # 10 pairs + 3 delayed runs of 10 s, 2 users
    python bench/regression.py --pairs 2 --delayed 1 --run-time 4s
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import _rounds

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
    _rounds.add_arguments(parser, default=10, aliases=("--pairs",), per_round="~24 s",
                          warmup=False)
    parser.add_argument("--delayed", type=int, default=3)
    parser.add_argument("--run-time", default="10s")
    parser.add_argument("--users", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as results:
        first: list[loadkit.Run] = []

        def pair() -> dict:
            """Two runs with the same settings, the second gated against the first."""
            base = one_run(results, args.run_time, args.users)
            cand = one_run(results, args.run_time, args.users)
            first[:] = first or [base]
            result = gate(cand, base)
            change = result.frame["change"]  # candidate ÷ baseline − 1
            return {"passed": result.passed, "verdict": result.table.splitlines()[0],
                    "items/s": change["items_per_s"], "p95 total": change["p95(total_ms)"]}

        def progress(i: int, got: dict[str, dict]) -> None:
            print(f"pair {i + 1:2d} (load {os.getloadavg()[0]:.1f}): "
                  f"{got['pair']['verdict']}", flush=True)

        pairs = _rounds.interleave({"pair": pair}, args.rounds, warmup=False,
                                   after_round=progress)["pair"]
        passed = sum(p["passed"] for p in pairs)
        flagged = 0
        for i in range(args.delayed):
            if not first:
                first.append(one_run(results, args.run_time, args.users))
            cand = one_run(results, args.run_time, args.users, server_create_delay="0.03")
            result = gate(cand, first[0])
            flagged += not result.passed
            print(f"delayed {i + 1} (load {os.getloadavg()[0]:.1f}): "
                  f"{result.table.splitlines()[0][:160]}", flush=True)
    print(f"same settings not flagged: {passed} of {args.rounds} pairs "
          f"({args.run_time} runs, {args.users} users, {os.cpu_count()} cores)")
    report = _rounds.Report("regression")
    report.info.update(pairs=args.rounds, not_flagged=passed, delayed=args.delayed,
                       delayed_flagged=flagged, run_time=args.run_time, users=args.users)
    for key in ("items/s", "p95 total"):
        fig = report.add(f"{key} change, same settings (%)",
                         [p[key] * 100 for p in pairs], unit=" %", fmt="+.1f")
        print(f"  {key} change between the runs of a pair: median {fig.median:+.1f} %")
        print(f"  {fig.spread_line()}")
    print(f"create delay 0.03 s flagged: {flagged} of {args.delayed}")
    report.write(args.json)


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"bench time: {time.monotonic() - t0:,.0f} s")

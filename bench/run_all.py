"""Run every bench that has a target, one after the other; a table of every target.

Run: ``python bench/run_all.py [--only NAME ...] [--quick] [--rounds N] [--out PATH]``.

Each bench runs in a process of its own (``python bench/NAME.py … --json FILE``), one at a
time, never in parallel (on a 2-core machine, benches running side by side would measure
each other), at its default sizes and its default ``--rounds`` (``--rounds N`` here is
passed to every bench). Its output passes through as it runs; its figures are read from
the JSON it writes (``bench/_rounds.py``: median, min, max, quartiles, target, met), not
parsed from its text. At the end: one row per target (bench, figure, median, spread as
min–max and IQR, target, met: yes/no) and ``bench/results.json`` (``--out``; not
committed) with every figure of every bench, each bench's command, exit code and time,
and the machine.

The default set, ~11 minutes in all on a 2-core machine (each bench's docstring gives its
cost per round): generators (~20 s), analysis (~1 min), server (~45 s), client (~75 s),
client_vs_curl (~1 min), locust_user (~2 min), sdk (~25 s; needs Node and npm, else its
row says "not measured"), capacity (~2 min), master (~2 min).

Left out of the default set:

- ``regression``: a long single experiment (~4.5 min of real runs) without a target; it
  counts how often the gate flags runs with the same settings. ``--only regression`` runs
  it here (its figures: the items/s and p95 changes between such runs);
- ``truth.py`` and ``campaign.py`` are not run from here at all: long single experiments
  (~70 s and ~60 s of locust runs) whose results are not speed figures but checks, which
  ``tests/truth`` and ``tests/campaign`` assert (measured vs configured figures; every
  injected fault accounted for).

``--quick`` runs tiny sizes (seconds per bench; the figures mean nothing): for
``tests/test_bench_scripts.py``. Exit code 0 when every bench ran, whether its targets are
met or not (the table says), 1 when a bench failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    script: str
    quick: tuple[str, ...]
    """Arguments for --quick: tiny sizes."""
    default: bool = True
    """In the default set."""


BENCHES: dict[str, Bench] = {
    "generators": Bench("generators.py", ("--batches", "3", "--items", "100", "--rounds", "3")),
    "analysis": Bench("analysis.py", ("--records", "2000", "--rounds", "2")),
    "server": Bench("server.py", ("--items", "2000", "--rounds", "2", "--big-mb", "4",
                                  "--big-seconds", "5")),
    "client": Bench("client.py", ("--items", "2000", "--payload-bytes", "100",
                                  "--rounds", "1")),
    "client_vs_curl": Bench("client_vs_curl.py", ("--items", "2000", "--rounds", "2")),
    "locust_user": Bench("locust_user.py", ("--seconds", "2", "--rounds", "1")),
    "sdk": Bench("sdk.py", ("--items", "50", "--rounds", "3")),
    "capacity": Bench("capacity.py", ("--rounds", "1", "--step-seconds", "1",
                                      "--ingest-rate", "4000", "--start", "2000")),
    "master": Bench("master.py", ("--workers", "1", "--start", "2000", "--max-steps", "2",
                                  "--step-seconds", "2", "--rounds", "1")),
    "regression": Bench("regression.py", ("--pairs", "1", "--delayed", "1", "--run-time", "2s"),
                        default=False),
}
"""Every bench run_all knows, in the order it runs them."""

TIMEOUT_S = 1800
"""A bench still running after this long is stopped and counts as failed."""


def run_bench(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run one bench in its own process; what it wrote with --json, its exit code, time."""
    bench = BENCHES[name]
    json_path = tmp / f"{name}.json"
    argv = [sys.executable, str(BENCH / bench.script)]
    if args.quick:
        argv += bench.quick
    if args.rounds is not None:
        argv += ["--rounds", str(args.rounds)]  # the last one given wins
    argv += ["--json", str(json_path)]
    shown = ["python", f"bench/{bench.script}", *argv[2:-2]]
    print(f"\n=== {name}: {' '.join(shown)}", flush=True)
    t0 = time.monotonic()
    try:
        code = subprocess.run(argv, check=False, timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        code = None
    seconds = time.monotonic() - t0
    out: dict[str, Any] = {"name": name, "command": shown, "exit_code": code,
                           "seconds": round(seconds, 1), "figures": [], "info": {}}
    if code == 0 and json_path.exists():
        written = json.loads(json_path.read_text())
        out["figures"] = written["figures"]
        out["info"] = written.get("info", {})
    elif code == 0:
        out["exit_code"] = "no --json output"
    print(f"=== {name}: exit code {out['exit_code']}, {seconds:,.0f} s", flush=True)
    return out


def _num(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{fmt}}"


def rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per target (and one per bench that failed)."""
    out = []
    for bench in results:
        if bench["exit_code"] != 0:
            out.append({"bench": bench["name"], "figure": "(the bench failed: exit code "
                        f"{bench['exit_code']})", "median": "", "spread": "", "target": "",
                        "met": "no"})
            continue
        for fig in bench["figures"]:
            if fig["target"] is None:
                continue
            fmt, unit = fig.get("fmt") or ".2f", fig.get("unit") or ""
            if fig["median"] is None:
                median, spread = "n/a", fig.get("note") or "not measured"
                met = "n/a"
            else:
                median = _num(fig["median"], fmt) + unit
                dash = " to " if fig["min"] < 0 else "–"  # an en dash after a minus misleads
                spread = (f"{_num(fig['min'], fmt)}{dash}{_num(fig['max'], fmt)}, IQR "
                          f"{_num(fig['q1'], fmt)}{dash}{_num(fig['q3'], fmt)} "
                          f"({fig['rounds']} round{'' if fig['rounds'] == 1 else 's'})")
                met = "yes" if fig["met"] else "no"
            out.append({"bench": bench["name"], "figure": fig["name"], "median": median,
                        "spread": spread[:120], "target": fig["target"], "met": met})
    return out


def table(found: list[dict[str, str]]) -> str:
    heads = {"bench": "bench", "figure": "figure", "median": "median",
             "spread": "spread (min–max, IQR)", "target": "target", "met": "met"}
    widths = {k: max([len(h), *(len(r[k]) for r in found)]) for k, h in heads.items()}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(f"{cells[k]:<{widths[k]}}" for k in heads).rstrip()

    return "\n".join([line(heads), line({k: "-" * w for k, w in widths.items()}),
                      *(line(r) for r in found)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(BENCHES),
                        help="run only these benches (any of: " + ", ".join(BENCHES) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (seconds per bench; for the tests, figures mean "
                             "nothing)")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="passed to every bench (default: each bench's own)")
    parser.add_argument("--out", default=str(BENCH / "results.json"), metavar="PATH",
                        help="where the results go (default bench/results.json)")
    args = parser.parse_args(argv)
    names = [n for n in BENCHES if n in args.only] if args.only else \
        [n for n, b in BENCHES.items() if b.default]
    started = datetime.now(UTC)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="loadkit-run-all-") as tmp:
        results = [run_bench(name, args, Path(tmp)) for name in names]
    machine["load_after"] = os.getloadavg()
    found = rows(results)
    print(f"\ntargets ({len(names)} benches, {sum(r['seconds'] for r in results):,.0f} s"
          f"{', --quick: tiny sizes, the figures mean nothing' if args.quick else ''}):")
    print(table(found))
    out = {"started_at": started.isoformat(timespec="seconds"),
           "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "quick": args.quick, "rounds": args.rounds, "machine": machine,
           "targets": found, "benches": results}
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

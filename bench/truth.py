"""Measurement truth: run every scenario of ``tests/truth`` and print configured | measured |
error for each figure (the table of issue 7's closing note).

Run: ``.venv/bin/python bench/truth.py [--only throughput,latency] [--json truth.json]``.

Each scenario is a real locust run against the embedded reference server on loopback
(about 70 s in all); the scenarios, their settings and the derivation of each expected
figure live in ``tests/truth/scenarios.py``, the same code the tests assert on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.truth import scenarios as sc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(sc.SCENARIOS),
                        help="comma-separated scenarios: " + ", ".join(sc.SCENARIOS))
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in sc.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(sc.SCENARIOS)}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="loadkit-truth-") as tmp:
        for name in names:
            print(f"running {name} …", file=sys.stderr, flush=True)
            got, _data = sc.SCENARIOS[name](Path(tmp) / name)
            rows.extend(got)
    print(sc.format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

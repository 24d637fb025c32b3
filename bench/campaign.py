"""Fault campaign: a locust run through dropped connections, 503s and the real rate limit.

Run: ``python bench/campaign.py [--seconds 60] [--users 4] [--keep DIR]`` (prints the
figures, exits 1 when any check fails). ``tests/campaign/`` runs the same campaign for 12 s.

The embedded reference server is told to drop 5 % of stream connections part-way, answer
5 % of streams 503 (``x-should-retry: true``) and limit creates with the real server's batch
token bucket (1200 tokens, 100 more every 10 s; each create costs its runCount). Every
sealed batch is retrieved by the client (``--verify true``: ``GET /api/v2/batches/{id}``
must list exactly runCount distinct runs). Then the records are held against the server's
own counters (``run.json`` → ``server_stats``, read after the last user stopped):

- batches created on the server = records with a batch id (nothing lost at stop, no batch
  created twice), batches sealed = sealed records, items enqueued = Σ run_count of sealed
  records; every batch id appears once;
- every record ends sealed, verified, without contract violations;
- every injected fault is attributed to its cause in the records: retried stream attempts
  ``503`` = the server's injected errors, ``dropped`` = its injected drops, 429 answers
  (``rate_limited``; ``create:429`` in ``retry_reasons``) = the server's rate-limited creates.

Retry settings (chosen so that every batch seals under these faults): stream attempts 10,
base delay 0.1 s doubling to at most 2 s with the SDK's jitter (a batch fails only if 10
attempts in a row meet a fault: 0.1^10); create attempts 20, each 429 waited out until the
bucket's ``x-ratelimit-reset`` (one refill every 10 s; 20 attempts cover 3 minutes of
refused creates while only a few seconds' worth of users compete for each refill).
Small batches (2–6 items of 64 bytes) so that the bucket, not the machine, sets the pace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "locustfiles" / "stream.py"

FAULTS = (
    "--server-drop-rate", "0.05", "--server-error-rate", "0.05",
    "--server-error-status", "503", "--server-rate-limit", "1200:100/10s",
)
RETRIES = (
    "--retry-attempts", "10", "--retry-base-delay", "0.1", "--retry-max-delay", "2",
    "--retry-create-attempts", "20",
)
BATCHES = ("--items", "uniform:2:6", "--payload-bytes", "64", "--verify", "true")


def locust_args(seconds: float, users: int, seed: int = 7) -> list[str]:
    """The campaign's locust flags (embedded server, faults, retries, verify)."""
    return ["--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s",
            *BATCHES, *FAULTS, *RETRIES, "--server-seed", str(seed)]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's TRIGGER_* / LOCUST_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_campaign(cwd: Path, seconds: float, users: int = 4, *, timeout: float | None = None,
                 extra: tuple[str, ...] = ()) -> tuple[int, Path, str]:
    """Run locust in ``cwd``; return (exit code, run directory, output)."""
    argv = [str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE),
            *locust_args(seconds, users), *extra]
    proc = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout or seconds + 90, check=False)
    output = proc.stdout + proc.stderr
    dirs = sorted(p for p in (cwd / "results").iterdir() if p.is_dir()) \
        if (cwd / "results").exists() else []
    if len(dirs) != 1:
        raise RuntimeError(f"expected one run directory, found {dirs}:\n{output[-3000:]}")
    return proc.returncode, dirs[0], output


def figures(run_dir: Path) -> dict[str, Any]:
    """The campaign's figures: records vs the server's counters, faults, retries by cause."""
    from loadkit.records import read_records, read_run_meta  # noqa: PLC0415

    rows = read_records(run_dir).to_pylist()
    meta = read_run_meta(run_dir)
    st = meta["server_stats"]
    ids = [r["batch_id"] for r in rows if r["batch_id"] is not None]
    sealed = [r for r in rows if r["sealed"]]
    reasons = Counter(x for r in rows for x in (r["retry_reasons"] or "").split(",") if x)
    final_errors = Counter(
        r["status"] if r["error_kind"] == "status" else r["error_kind"]
        for r in rows if r["error_kind"])
    span = (max(r["ended_at"] for r in rows) - min(r["started_at"] for r in rows)) \
        if rows else 0.0
    return {
        "duration_s": round(span, 1),
        "records": len(rows),
        "outcomes": dict(Counter(r["outcome"] for r in rows)),
        "final_errors": dict(final_errors),
        "items_sealed": sum(r["run_count"] for r in sealed),
        "records_with_batch_id": len(ids),
        "distinct_batch_ids": len(set(ids)),
        "sealed_records": len(sealed),
        "verified_records": sum(r["verified"] is True for r in rows),
        "violations": sum(r["violations"] for r in rows),
        "retries_by_cause": dict(sorted(reasons.items())),
        "rate_limited_in_records": sum(r["rate_limited"] for r in rows),
        "server": {k: st[k] for k in (
            "create_requests", "batches_created", "batches_sealed", "items_enqueued",
            "stream_requests", "injected_errors", "injected_drops", "rate_limited",
            "streams_to_sealed", "client_disconnects")}
        | {"responses_by_status": st["responses_by_status"]},
        "stop_timeout": meta["locust"].get("stop_timeout"),
        "exit_code": meta.get("exit_code"),
    }


def problems(fig: dict[str, Any], error_status: str = "503") -> list[str]:
    """Every check of the campaign that does not hold (empty: all hold)."""
    srv = fig["server"]
    out = []

    def want(name: str, got: Any, expected: Any) -> None:
        if got != expected:
            out.append(f"{name}: {got} != {expected}")

    want("every record sealed", fig["outcomes"], {"sealed": fig["records"]})
    want("batches created (server) = records with a batch id", srv["batches_created"],
         fig["records_with_batch_id"])
    want("every batch id once", fig["distinct_batch_ids"], fig["records_with_batch_id"])
    want("batches sealed (server) = sealed records", srv["batches_sealed"],
         fig["sealed_records"])
    want("items enqueued (server) = items of sealed records", srv["items_enqueued"],
         fig["items_sealed"])
    want("sealed batches retrieved with runCount distinct runs", fig["verified_records"],
         fig["sealed_records"])
    want("contract violations", fig["violations"], 0)
    causes = fig["retries_by_cause"]
    want(f"injected {error_status}s attributed", causes.get(error_status, 0)
         + fig["final_errors"].get(int(error_status), 0), srv["injected_errors"])
    want("injected drops attributed", causes.get("dropped", 0)
         + fig["final_errors"].get("connect", 0), srv["injected_drops"])
    want("429s attributed", fig["rate_limited_in_records"], srv["rate_limited"])
    want("create 429s in retry_reasons", causes.get("create:429", 0)
         + fig["final_errors"].get("rate_limited", 0), srv["rate_limited"])
    for name in ("injected_errors", "injected_drops", "rate_limited"):
        if not srv[name]:
            out.append(f"the campaign injected no {name}: too short to prove anything")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--keep", default=None, help="run in this folder and keep the results")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="loadkit-campaign-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.monotonic()
        code, run_dir, output = run_campaign(work, args.seconds, args.users)
        wall = time.monotonic() - t0
        fig = figures(run_dir)
        fig["wall_s"] = round(wall, 1)
        fig["locust_exit_code"] = code
        print(json.dumps(fig, indent=2))
        bad = problems(fig)
        if code != 0:
            bad.append(f"locust exit code {code}:\n{output[-2000:]}")
        for line in bad:
            print("FAIL:", line)
        print("campaign:", "all checks hold" if not bad else f"{len(bad)} check(s) failed")
        if args.keep:
            print("run directory:", run_dir)
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Internal: ``loadkit cleanup RUN_DIR``: cancel the runs a load test made on a real target.

The run directory names the batches (``records.jsonl``'s ``batch_id``) and the target
(``run.json``'s ``target``, or ``--host``). For each batch the runs are read with retrieve
(``GET /api/v2/batches/{id}``, a replica-lag 404 asked again), then each run is canceled with
``POST /api/v2/runs/{runId}/cancel`` (:meth:`loadkit.client.BatchClient.cancel_run`: 429
answers wait as their headers say, other retryable failures back off). Progress is printed
per batch, and kept in ``cleanup.json`` in the run directory after each batch: a rerun skips
the batches already done, so an interrupted cleanup resumes. A batch whose engine was still
making runs is not marked done, so a later rerun cancels the runs made since.
``--dry-run`` only retrieves and counts.

A run against the embedded reference server has nothing to clean (the server is gone); the
secret key comes from ``TRIGGER_SECRET_KEY`` only and is never written anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from loadkit.errors import ConfigError, RecordsError, TargetError
from loadkit.records import RECORDS_JSONL, atomic_write, read_jsonl, read_run_meta
from loadkit.vocabulary import ExitCode

__all__ = ["CLEANUP_STATE", "add_parser", "cleanup"]

CLEANUP_STATE = "cleanup.json"
"""The progress file a cleanup keeps in the run directory (batches done, runs canceled)."""
_RETRIEVE_LAG_S = 30.0
"""How long a batch's replica-lag 404 is asked again before the batch is reported missing."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``loadkit cleanup``."""
    p = subparsers.add_parser(
        "cleanup", help="cancel the runs a load test made on a real target",
        description="Cancel the runs a load test created: each batch of RUN_DIR is retrieved "
        "and its runs canceled (POST /api/v2/runs/{runId}/cancel). Needs TRIGGER_SECRET_KEY "
        "of the environment the test ran in. Resumable: progress is kept in RUN_DIR/"
        f"{CLEANUP_STATE}.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the load test's results/<run id>")
    p.add_argument("--host", metavar="URL", default=None,
                   help="the target's API URL (default: run.json's target)")
    p.add_argument("--dry-run", action="store_true",
                   help="only retrieve the batches and count their runs; cancel nothing")
    p.set_defaults(func=_cmd_cleanup)


def _cmd_cleanup(args: argparse.Namespace) -> int:
    return cleanup(args.run_dir, host=args.host, dry_run=args.dry_run)


def _batch_ids(run_dir: Path) -> list[str]:
    path = run_dir / RECORDS_JSONL
    if not path.exists():
        raise RecordsError(f"{path} not found: is {run_dir} a loadkit run directory?")
    seen = dict.fromkeys(str(r["batch_id"]) for r in read_jsonl(path) if r.get("batch_id"))
    return list(seen)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"done": [], "canceled": 0, "not_found": 0}
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RecordsError(f"cannot read {path}: {exc}; remove it to start over") from None
    return state if isinstance(state, dict) else {"done": [], "canceled": 0, "not_found": 0}


def cleanup(run_dir: str | os.PathLike[str], *, host: str | None = None,
            dry_run: bool = False, out: Any = None) -> int:
    """Cancel the runs of the load test in ``run_dir``; the exit code."""
    from loadkit.client import BatchClient  # noqa: PLC0415
    from loadkit.client.judge import FINAL_STATUSES  # noqa: PLC0415

    out = out or sys.stderr
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    run_id = meta.get("run_id") or run_dir.name
    if meta.get("embedded_server") is not None and host is None:
        print(f"loadkit cleanup: run {run_id} ran against the embedded reference server, "
              "which stopped with the run: nothing to clean", file=out)
        return ExitCode.OK
    target = host or meta.get("target") or os.environ.get("TRIGGER_API_URL")
    if not target:
        raise ConfigError("host", None, "the target's URL (--host): run.json names none")
    key = os.environ.get("TRIGGER_SECRET_KEY", "").strip()
    if not key:
        raise ConfigError("TRIGGER_SECRET_KEY", "<unset>", "the secret key of the environment "
                          "the load test ran in, exported as TRIGGER_SECRET_KEY")
    batches = _batch_ids(run_dir)
    state_path = run_dir / CLEANUP_STATE
    state = _load_state(state_path)
    done = set(state.get("done", []))
    todo = [b for b in batches if b not in done]
    verb = "would cancel" if dry_run else "canceled"
    print(f"loadkit cleanup: run {run_id} on {target}: {len(batches)} batches, "
          f"{len(batches) - len(todo)} done before, {len(todo)} to go", file=out)
    counted = missing = 0
    with BatchClient(target, key) as client:
        for number, batch_id in enumerate(todo, 1):
            try:
                seen = client.retrieve_batch(batch_id, time.perf_counter() + _RETRIEVE_LAG_S)
            except TargetError as exc:
                missing += 1
                print(f"  [{number}/{len(todo)}] {batch_id}: not retrieved ({exc})", file=out)
                continue
            canceled = gone = 0
            for run in seen.runs:
                if dry_run or client.cancel_run(run):
                    canceled += 1
                else:
                    gone += 1
            counted += canceled
            final = seen.status in FINAL_STATUSES or (
                seen.run_count is not None and len(seen.runs) >= seen.run_count)
            print(f"  [{number}/{len(todo)}] {batch_id}: {verb} {canceled} runs"
                  + (f", {gone} not found" if gone else "")
                  + ("" if final else f" (batch {seen.status}: rerun later for the rest)"),
                  file=out)
            if not dry_run:
                state["canceled"] = int(state.get("canceled", 0)) + canceled
                state["not_found"] = int(state.get("not_found", 0)) + gone
                if final:
                    done.add(batch_id)
                    state["done"] = sorted(done)
                atomic_write(state_path, orjson.dumps(state, option=orjson.OPT_INDENT_2))
    print(f"loadkit cleanup: {verb} {counted} runs of {len(todo) - missing} batches"
          + (f"; {missing} batches could not be retrieved" if missing else ""), file=out)
    return ExitCode.FAILED if missing else ExitCode.OK

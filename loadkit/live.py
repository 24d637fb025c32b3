"""Internal: a run's figures while it goes on, for locust's web UI (the loadkit tab and
``GET /loadkit/stats``).

:class:`LiveRun` takes the run's records as they come (the process that owns the run hands
them over) and, when asked, computes the same figures the end-of-run summary shows
(:func:`loadkit.summary.figures`, over :func:`loadkit.metrics.run_metrics`): exact
percentiles from every record so far, not a sketch. Records are kept as Arrow columns of
their numeric fields (about 0.3 kB a batch); a snapshot is computed at most once per
:data:`MIN_REFRESH_S` and costs a pass over the records. Nothing here imports locust.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from loadkit import humanize as hz
from loadkit.records import ARROW_SCHEMA
from loadkit.summary import ThresholdLine, threshold_value

__all__ = ["MIN_REFRESH_S", "NOW_WINDOW_S", "LiveRun", "tab_rows"]

MIN_REFRESH_S = 1.0
"""A snapshot is computed again only after this many seconds, and after ten times as long as
the last one took (on a big run a snapshot then costs the process at most a tenth of its
time)."""
ARROW_EVERY = 5_000
"""Records handed in are turned into Arrow columns every this many (bounded memory)."""
NOW_WINDOW_S = 5.0
""""Now" rates are over the records that ended in the last this many seconds."""

_KEEP = frozenset({"outcome", "retry_reasons"})
"""The string fields the figures need; other strings (error texts, ids) are not kept."""
LIVE_SCHEMA: pa.Schema = pa.schema(
    [f.with_nullable(True) for f in ARROW_SCHEMA
     if f.name in _KEEP or pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
     or pa.types.is_boolean(f.type)])
"""The record fields a live run keeps: every numeric one, the outcome and retry reasons."""


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class LiveRun:
    """The records of one run so far, and its figures on demand (thread-safe)."""

    def __init__(self, run_id: str, run_dir: Path | str, *,
                 thresholds: Sequence[Any] = (), started_at: float | None = None) -> None:
        self.run_id = run_id
        self.run_dir = str(run_dir)
        self.thresholds = tuple(thresholds)
        self.started_at = time.time() if started_at is None else started_at
        self.ended_at: float | None = None
        self.report_url: str | None = None
        """Where the web UI serves this run's report, once the run has ended."""
        self._pending: list[Mapping[str, Any]] = []
        self._tables: list[pa.Table] = []
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_at = -math.inf
        self._refresh_s = MIN_REFRESH_S
        self._final: dict[str, Any] | None = None
        """The figures at the end, kept once the records are let go."""
        self._changed = True

    # -- records in -------------------------------------------------------------------

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Records of the run (dicts in the record schema; fields not kept are ignored)."""
        with self._lock:
            self._pending.extend(rows)
            self._changed = True
            if len(self._pending) >= ARROW_EVERY:
                self._to_arrow()

    def end(self, report_url: str | None = None, table: pa.Table | None = None) -> None:
        """The run has ended; its report is at ``report_url``. With ``table`` (the run's
        records as written to its folder) the final figures are those of the run's own
        files, whatever reached this view on the way.

        Its figures are computed once more, kept, and its records let go."""
        with self._lock:
            self.ended_at = time.time()
            self.report_url = report_url
            self._changed = True
            if table is not None:
                self._pending = []
                self._tables = [table.select(LIVE_SCHEMA.names).cast(LIVE_SCHEMA)]
        final = self.snapshot(force=True)
        with self._lock:
            self._final = final
            self._tables.clear()

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def _to_arrow(self) -> None:
        rows, self._pending = self._pending, []
        names = LIVE_SCHEMA.names
        self._tables.append(pa.Table.from_pylist(
            [{k: r.get(k) for k in names} for r in rows], schema=LIVE_SCHEMA))

    def _table(self) -> pa.Table:
        if self._pending:
            self._to_arrow()
        if not self._tables:
            return LIVE_SCHEMA.empty_table()
        if len(self._tables) > 64:  # keep the chunk count (and per-chunk overhead) small
            self._tables = [pa.concat_tables(self._tables).combine_chunks()]
        return pa.concat_tables(self._tables)

    # -- figures out ------------------------------------------------------------------

    def snapshot(self, now: float | None = None, *, force: bool = False) -> dict[str, Any]:
        """The run's figures as a JSON-ready dict (the keys of ``GET /loadkit/stats``)."""
        now = time.time() if now is None else now
        with self._lock:
            if self._final is not None:
                return self._final
            # a running run's "now" figures age even when no record comes (a stalled target)
            recent = now - self._snapshot_at < self._refresh_s
            fresh = recent or (not self._changed and self.ended_at is not None)
            if self._snapshot is not None and fresh and not force:
                return self._snapshot
            table = self._table()
            self._changed = False
            ended_at, report_url = self.ended_at, self.report_url
        began = time.perf_counter()
        snap = self._compute(table, now, ended_at, report_url)
        took = time.perf_counter() - began
        with self._lock:
            self._snapshot, self._snapshot_at = snap, now
            self._refresh_s = max(MIN_REFRESH_S, 10.0 * took)
        return snap

    def _compute(self, table: pa.Table, now: float, ended_at: float | None,
                 report_url: str | None) -> dict[str, Any]:
        from loadkit.metrics import RecordColumns  # noqa: PLC0415
        from loadkit.summary import figures  # noqa: PLC0415
        from loadkit.thresholds import evaluate  # noqa: PLC0415

        cols = RecordColumns(table)
        f = figures(cols)
        m = f.metrics
        batches = int(m["batches"])
        clock = ended_at if ended_at is not None else now
        ended = cols.numeric("ended_at")
        recent = (ended > clock - NOW_WINDOW_S) & cols.kept
        window = min(NOW_WINDOW_S, max(clock - self.started_at, 1e-9))
        items_now = float(cols.numeric("items_accepted")[recent].sum()) / window \
            if ended_at is None else math.nan
        mb_now = float(cols.numeric("bytes_sent")[recent].sum()) / 1e6 / window \
            if ended_at is None else math.nan
        total = f.latency.get("total", {})
        verdicts: list[dict[str, Any]] = []
        if self.thresholds and cols.n:
            verdicts = [{"threshold": str(r.threshold), "value": _nan_to_none(r.value),
                         "passed": r.passed} for r in evaluate(self.thresholds, table)]
        elif self.thresholds:  # no batch has ended yet: set, not judged
            verdicts = [{"threshold": str(t), "value": None, "passed": None}
                        for t in self.thresholds]
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "state": "running" if ended_at is None else "ended",
            "elapsed_s": clock - self.started_at,
            "batches": batches,
            "sealed": int(m["sealed"]),
            "seal_rate": m["seal_rate"],
            "first_try": f.first_try,
            "retried": f.after_retry,
            "never": f.never,
            "items": int(m["items"]),
            "items_per_s": m["items_per_s"],
            "items_per_s_now": items_now,
            "mb_per_s": m["mb_per_s"],
            "mb_per_s_now": mb_now,
            "stall_share": f.stall_share,
            "write_share": f.write_share,
            "p50_total_ms": total.get("p50", math.nan),
            "p95_total_ms": total.get("p95", math.nan),
            "p99_total_ms": total.get("p99", math.nan),
            "retries": int(m["retries"]),
            "rate_limited": int(m["rate_limited"]),
            "violations": int(m["violations"]),
            "dropped": int(m["dropped"]),
            "failed": int(m["failed"]),
            "thresholds": verdicts,
            "report_url": report_url,
        }
        return {k: _nan_to_none(v) for k, v in out.items()}


def tab_rows(snap: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The loadkit tab's table: one row per figure, as a person reads it (units, thousands
    separators, shares in %), verdict and headline first."""
    if not snap:
        return [{"figure": "run", "value": "no test started yet: press Start"}]

    def v(key: str) -> Any:
        value = snap.get(key)
        return math.nan if value is None else value

    batches = int(snap.get("batches") or 0)
    verdicts = snap.get("thresholds") or []
    failed = [t for t in verdicts if t["passed"] is False]
    if verdicts and all(t["passed"] is None for t in verdicts):
        n = len(verdicts)
        verdict = f"{n} threshold{'s' if n != 1 else ''} set, no batch has ended yet"
    elif verdicts:
        verdict = (f"{len(verdicts) - len(failed)} of {len(verdicts)} thresholds pass"
                   + (": " + "; ".join(t["threshold"] for t in failed) + " fail"
                      if failed else ""))
    else:
        verdict = "no thresholds set (--threshold 'p95(total_ms) < 2000')"
    running = snap.get("state") == "running"
    rows = [
        ("run", f"{snap.get('run_id')} ({'running' if running else 'ended'}, "
                f"{hz.duration(v('elapsed_s'))})"),
        ("verdict", verdict),
        ("items/s", (f"{hz.rate(v('items_per_s_now'), 'items/s')} now · " if running else "")
         + f"{hz.rate(v('items_per_s'), 'items/s')} mean"),
        ("MB/s", (f"{hz.mb_per_s(v('mb_per_s_now'))} now · " if running else "")
         + f"{hz.mb_per_s(v('mb_per_s'))} mean"),
        ("batches", f"{hz.count(batches)} · sealed {hz.count(v('sealed'))} "
                    f"({hz.share(v('seal_rate'))}) · first try {hz.count(v('first_try'))} · "
                    f"after retry {hz.count(v('retried'))} · never {hz.count(v('never'))}"),
        ("total latency", f"p50 {hz.ms(v('p50_total_ms'))} · p95 {hz.ms(v('p95_total_ms'))} · "
                          f"p99 {hz.ms(v('p99_total_ms'))}"),
        ("writes", f"stall {hz.share(v('stall_share'))} of stream time · writing "
                   f"{hz.share(v('write_share'))} (the client's own cost)"),
        ("problems", f"429s {hz.count(v('rate_limited'))} · violations "
                     f"{hz.count(v('violations'))} · dropped {hz.count(v('dropped'))} · "
                     f"failed {hz.count(v('failed'))} · retries {hz.count(v('retries'))}"),
    ]
    for t in verdicts:
        line = ThresholdLine(t["threshold"], math.nan if t["value"] is None else t["value"],
                             bool(t["passed"]))
        mark = "…" if t["passed"] is None else "✓" if t["passed"] else "✗"
        rows.append((f"{mark} {t['threshold']}", threshold_value(line)))
    rows.append(("records", snap.get("run_dir") or "–"))
    rows.append(("report", snap.get("report_url") or "when the test stops"))
    return [{"figure": k, "value": val} for k, val in rows]

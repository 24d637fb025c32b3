"""The web UI's live figures (loadkit.live): exact, the summary's definitions, readable."""

from __future__ import annotations

import re

import numpy as np
import pytest

from loadkit.live import LiveRun, tab_rows
from loadkit.records import records_table
from loadkit.summary import figures


def _records(n: int, t0: float = 1_000.0) -> list[dict]:
    rng = np.random.default_rng(7)
    rows = []
    for k in range(n):
        total = float(rng.lognormal(2.0, 0.6))
        rows.append({"run_id": "r", "worker_id": "local", "user_id": 0, "seq": k,
                     "outcome": "sealed" if k % 50 else "failed", "sealed": k % 50 != 0,
                     "attempts": 1 + (k % 7 == 0), "sealed_attempt": 1 + (k % 7 == 0),
                     "started_at": t0 + k * 0.01, "ended_at": t0 + k * 0.01 + total / 1000,
                     "total_ms": total, "stream_ms": total / 2, "stall_ms": total / 10,
                     "write_ms": total / 20, "items_accepted": 100, "run_count": 100,
                     "bytes_sent": 30_000, "lines_sent": 100, "rate_limited": int(k % 97 == 0),
                     "violations": 0, "error": "a long text the live view does not keep"})
    return rows


def test_percentiles_are_exact_over_every_record():
    """p50/p95/p99 of total latency equal numpy's over all records, fed in pieces."""
    rows = _records(5_000)
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    for k in range(0, len(rows), 700):
        live.add(rows[k:k + 700])
        live.snapshot(force=True)
    snap = live.snapshot(force=True)
    totals = np.array([r["total_ms"] for r in rows])
    for p in (50, 95, 99):
        assert snap[f"p{p}_total_ms"] == pytest.approx(np.percentile(totals, p))
    assert snap["batches"] == 5_000
    assert snap["sealed"] == sum(r["outcome"] == "sealed" for r in rows)
    assert snap["rate_limited"] == sum(r["rate_limited"] for r in rows)


def test_figures_are_the_summary_s_own():
    """Seal counts, retries and shares are those of the end-of-run summary's figures."""
    rows = _records(800)
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    live.add(rows)
    snap = live.snapshot()
    f = figures(rows)
    assert (snap["first_try"], snap["retried"], snap["never"]) == \
        (f.first_try, f.after_retry, f.never)
    assert snap["stall_share"] == pytest.approx(f.stall_share)
    assert snap["write_share"] == pytest.approx(f.write_share)
    assert snap["items_per_s"] == pytest.approx(f.metrics["items_per_s"])


def test_thresholds_so_far_are_judged():
    """Thresholds are evaluated over the records so far: one passes, one fails."""
    live = LiveRun("r", "/tmp/r", thresholds=["seal_rate >= 0.9", "p95(total_ms) < 1"],
                   started_at=1_000.0)
    live.add(_records(300))
    verdicts = live.snapshot()["thresholds"]
    assert [v["passed"] for v in verdicts] == [True, False]


def test_now_rates_cover_the_last_seconds_only():
    """items/s now counts what ended in the last 5 s; an ended run has no "now"."""
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    rows = _records(1_000)  # 10 s of records, 100 per second, 100 items each
    live.add(rows)
    snap = live.snapshot(now=rows[-1]["ended_at"] + 0.001)
    assert snap["items_per_s_now"] == pytest.approx(10_000, rel=0.02)
    live.end(report_url="/loadkit/runs/r/report")
    ended = live.snapshot(now=rows[-1]["ended_at"] + 60)
    assert ended["items_per_s_now"] is None
    assert ended["state"] == "ended"
    assert ended["report_url"] == "/loadkit/runs/r/report"


def test_tab_rows_read_as_a_person_reads_them():
    """Verdict first, units and thousands separators, never scientific notation, no empty
    cell."""
    live = LiveRun("r", "/tmp/r", thresholds=["seal_rate >= 0.999"], started_at=1_000.0)
    live.add(_records(12_345))
    rows = tab_rows(live.snapshot())
    assert [r["figure"] for r in rows[:2]] == ["run", "verdict"]
    values = {r["figure"]: r["value"] for r in rows}
    assert "12,345" in values["batches"]
    assert re.search(r"items/s mean$", values["items/s"])
    assert re.search(r"p95 [\d.]+ ms", values["total latency"])
    for row in rows:
        assert row["value"].strip(), row
        assert not re.search(r"\d[eE][+-]?\d", row["value"]), row
    assert tab_rows(None)[0]["value"].startswith("no test started yet")


def test_a_stalled_target_shows_its_now_rate_falling():
    """With no record for a while, items/s now falls to zero (it does not freeze)."""
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    rows = _records(1_000)
    live.add(rows)
    last = rows[-1]["ended_at"]
    assert live.snapshot(now=last)["items_per_s_now"] > 0
    later = live.snapshot(now=last + 30)
    assert later["items_per_s_now"] == 0
    assert later["elapsed_s"] == pytest.approx(last + 30 - 1_000)


def test_thresholds_set_before_any_batch_are_pending_not_absent():
    """Thresholds with no batch yet read as set and not yet judged."""
    live = LiveRun("r", "/tmp/r", thresholds=["seal_rate >= 0.999"], started_at=1_000.0)
    snap = live.snapshot()
    assert snap["thresholds"] == [{"threshold": "seal_rate >= 0.999", "value": None,
                                   "passed": None}]
    values = {r["figure"]: r["value"] for r in tab_rows(snap)}
    assert values["verdict"] == "1 threshold set, no batch has ended yet"
    assert values["… seal_rate >= 0.999"] == "no data"


def test_an_ended_run_keeps_its_figures_and_lets_its_records_go():
    """After end() the final figures stay, forced or not, and the records are released."""
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    live.add(_records(2_000))
    live.end(report_url="/loadkit/runs/r/report")
    assert live.snapshot(force=True)["batches"] == 2_000
    assert live._tables == []


def test_an_ended_run_s_figures_are_those_of_its_files():
    """Given the run's records as written, the final figures are theirs, not the view's."""
    rows = _records(500)
    live = LiveRun("r", "/tmp/r", started_at=1_000.0)
    live.add(rows[:499])  # one record never reached the live view
    live.end(table=records_table(rows))
    assert live.snapshot()["batches"] == 500

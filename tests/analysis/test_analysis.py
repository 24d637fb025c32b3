"""Every analysis answer checked against values computed by hand from the fixed record set."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from loadkit import analysis, thresholds
from loadkit.analysis import by_task, load_run
from loadkit.errors import RecordsError
from loadkit.records import ARROW_SCHEMA, records_table


def approx(x):
    """pytest.approx loose enough for epoch-second rounding (1e-6 relative)."""
    return pytest.approx(x, rel=1e-6, abs=1e-9)


def approx_nan(x):
    """approx() where nan equals nan (a metric without data)."""
    return pytest.approx(x, rel=1e-6, abs=1e-9, nan_ok=True)


def test_load_run_types_and_meta(run_a):
    """Records load with nullable ints/booleans, categories, UTC datetimes and run.json."""
    df = run_a.batches
    assert len(df) == 8
    assert run_a.run_id == "run-a"
    assert run_a.meta["server_stats"]["items_enqueued"] == 639
    assert run_a.source in ("records.jsonl", "records.parquet")
    assert run_a.notes == []
    assert df["seq"].dtype == np.int64
    assert df["sealed"].dtype == bool
    assert df["sealed_attempt"].dtype == "Int64"
    assert df["status"].dtype == "Int64"
    assert df["verified"].dtype == "boolean"
    assert isinstance(df["outcome"].dtype, pd.CategoricalDtype)
    assert list(df["outcome"].cat.categories) == ["sealed", "cached", "not_sealed", "failed",
                                                  "dropped"]
    assert isinstance(df["worker_id"].dtype, pd.CategoricalDtype)
    assert str(df["started_time"].dtype) == "datetime64[us, UTC]"
    assert df["started_time"].iloc[1] == pd.Timestamp("2023-11-14 22:13:20.5", tz="UTC")
    assert df["intended_time"].isna().all()
    assert str(df["intended_time"].dtype) == "datetime64[us, UTC]"
    assert df["sealed_attempt"].isna().sum() == 4


def test_load_run_accepts_a_file_inside_the_run(run_a_dir):
    """Passing run.json or a records file loads its folder."""
    assert len(load_run(run_a_dir / "run.json").batches) == 8


def test_summary(run_a):
    """Counts, sums, duration and rates over non-dropped batches."""
    s = run_a.summary()
    assert s.name == "run-a"
    expected = {
        "batches": 7, "dropped": 1, "cached": 1, "sealed": 5, "failed": 2, "violations": 1,
        "batches_with_violations": 1, "verify_failures": 1, "rate_limited": 3, "retries": 5,
        "items": 639, "items_requested": 800, "items_deduplicated": 3, "lines": 645,
        "bytes": 64_500,
    }
    for key, value in expected.items():
        assert s[key] == value, key
    assert s["drop_rate"] == approx(1 / 8)
    assert s["seal_rate"] == approx(5 / 7)
    assert s["error_rate"] == approx(2 / 7)
    assert s["duration_s"] == approx(3.2)
    assert s["items_per_s"] == approx(639 / 3.2)
    assert s["batches_per_s"] == approx(7 / 3.2)
    assert s["bytes_per_s"] == approx(64_500 / 3.2)
    assert s["mb_per_s"] == approx(0.0645 / 3.2)


def by_hand(records) -> dict[str, float]:
    """The run metrics as the metrics module's table defines them, computed with pandas on
    the plain record dicts (not with loadkit.metrics, which summary and thresholds share)."""
    df = pd.DataFrame([r.as_dict() for r in records], columns=list(ARROW_SCHEMA.names))
    sent = df[df["outcome"] != "dropped"]
    n, dropped = len(sent), len(df) - len(sent)

    def ratio(part, whole):
        return part / whole if whole > 0 else math.nan

    duration = sent["ended_at"].max() - sent["started_at"].min() if n else math.nan
    sealed = int(sent["outcome"].isin(["sealed", "cached"]).sum())
    failed = int(sent["outcome"].isin(["failed", "not_sealed"]).sum())
    items, nbytes = sent["items_accepted"].sum(), sent["bytes_sent"].sum()
    return {
        "batches": n, "dropped": dropped, "drop_rate": ratio(dropped, len(df)),
        "cached": int((sent["outcome"] == "cached").sum()), "sealed": sealed,
        "seal_rate": ratio(sealed, n), "failed": failed, "error_rate": ratio(failed, n),
        "violations": sent["violations"].sum(),
        "batches_with_violations": int((sent["violations"] > 0).sum()),
        "verify_failures": int(sent["verified"].map(lambda v: v is False).sum()),
        "rate_limited": sent["rate_limited"].sum(),
        "retries": (sent["attempts"] - 1).clip(lower=0).sum(),
        "items": items, "items_requested": sent["run_count"].sum(),
        "items_deduplicated": sent["items_deduplicated"].sum(),
        "lines": sent["lines_sent"].sum(), "bytes": nbytes, "duration_s": duration,
        "batches_per_s": ratio(n, duration), "items_per_s": ratio(items, duration),
        "bytes_per_s": ratio(nbytes, duration), "mb_per_s": ratio(nbytes / 1e6, duration),
    }


def test_summary_and_thresholds_agree_with_pandas_on_the_records(run_a):
    """Every run metric of summary() and of the thresholds equals a pandas computation."""
    from .conftest import _records_a  # noqa: PLC0415

    want = by_hand(_records_a())
    assert set(want) == set(thresholds.RUN_METRICS)
    s = run_a.summary()
    results = thresholds.evaluate([f"{m} >= 0" for m in thresholds.RUN_METRICS], run_a.batches)
    for metric, result in zip(thresholds.RUN_METRICS, results, strict=True):
        assert float(s[metric]) == approx(float(want[metric])), metric
        assert result.value == approx(float(want[metric])), metric
    create = pd.DataFrame([r.as_dict() for r in _records_a()])["create_ms"].dropna()
    (p95,) = thresholds.evaluate(["p95(create_ms) >= 0"], run_a.batches)
    assert p95.value == approx(np.percentile(create.to_numpy(), 95))


def test_latency_percentiles(run_a, run_b):
    """Exact, linearly interpolated percentiles of create/stream/total, actual and intended."""
    lat = run_a.latency()
    assert list(lat.columns) == ["count", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]
    create = lat.loc["create"]
    assert create["count"] == 7
    assert (create["p50"], create["p90"], create["p95"]) == approx((40, 64, 67))
    assert (create["p99"], create["p99.9"], create["max"]) == approx((69.4, 69.94, 70))
    stream = lat.loc["stream"]
    assert stream["count"] == 6
    assert (stream["mean"], stream["p50"], stream["p90"], stream["p95"]) == approx(
        (850, 800, 1300, 1350))
    total = lat.loc["total"]
    assert (total["count"], total["p50"], total["p90"], total["max"]) == approx(
        (7, 800, 1500, 1500))
    assert total["mean"] == approx(6000 / 7)
    assert lat.loc["total_from_intended", "count"] == 0
    assert math.isnan(lat.loc["total_from_intended", "p50"])

    lb = run_b.latency()
    assert (lb.loc["total", "p50"], lb.loc["total", "p90"]) == approx((350, 470))
    intended = lb.loc["total_from_intended"]
    assert (intended["count"], intended["p50"], intended["max"]) == approx((4, 600, 800))
    assert analysis.percentile([1, 2, 3, 4, np.nan], 50) == 2.5
    assert math.isnan(analysis.percentile([], 50))


def test_throughput_one_second(run_a):
    """Per-second buckets by batch end, empty buckets kept, dropped and errors counted."""
    tp = run_a.throughput("1s")
    assert list(tp.index) == [0.0, 1.0, 2.0, 3.0]
    assert tp.index.name == "elapsed_s"
    assert list(tp["batches"]) == [2, 1, 2, 2]
    assert list(tp["items"]) == [300, 100, 50, 189]
    assert list(tp["bytes"]) == [30_300, 10_200, 5_000, 19_000]
    assert list(tp["errors"]) == [0, 0, 1, 1]
    assert list(tp["dropped"]) == [0, 0, 0, 1]
    assert tp["time"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")
    assert tp["items"].sum() == run_a.summary()["items"]


def test_throughput_resolution(run_a):
    """A 2 s resolution halves the per-second rates of the merged buckets."""
    tp = run_a.throughput(2)
    assert list(tp["batches"]) == [3, 4]
    assert list(tp["items_per_s"]) == approx([200.0, 119.5])
    assert list(tp["errors_per_s"]) == approx([0.0, 1.0])
    assert list(run_a.throughput("500ms").index[:3]) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="not a duration"):
        run_a.throughput("soon")
    with pytest.raises(ValueError, match="positive"):
        run_a.throughput(0)


def test_latency_over_time(run_a):
    """Per-bucket percentiles of total latency by batch end."""
    lot = run_a.latency_over_time("1s")
    assert list(lot["count"]) == [2, 1, 2, 2]
    assert list(lot["p50"]) == approx([550, 1000, 800, 1150])
    assert list(lot["p95"]) == approx([595, 1000, 1430, 1465])
    assert list(lot["max"]) == approx([600, 1000, 1500, 1500])
    assert run_a.latency_over_time(metric="create")["max"].iloc[0] == 30
    with pytest.raises(ValueError, match="not a latency"):
        run_a.latency_over_time(metric="items_accepted")


def test_backpressure(run_a):
    """Stall totals and the distribution of per-batch stall fraction over streamed batches."""
    bp = run_a.backpressure()
    assert bp["batches"] == 6
    assert (bp["stall_ms"], bp["stream_ms"]) == approx((2270, 5100))
    assert bp["stalled_share"] == approx(2270 / 5100)
    assert bp["stall_fraction_mean"] == approx(0.35)
    assert (bp["stall_fraction_p50"], bp["stall_fraction_p90"]) == approx((0.375, 0.625))
    assert bp["stall_fraction_max"] == approx(0.75)
    assert bp["max_stall_ms"] == 400
    assert bp["batches_stalled_over_half"] == 1
    dist = run_a.stall_distribution(bins=4)
    assert list(dist["batches"]) == [2, 1, 2, 1]
    assert list(dist["share"]) == approx([2 / 6, 1 / 6, 2 / 6, 1 / 6])


def test_stall_by_size(run_a):
    """Quantile bins of payload size with mean and p90 stall fraction per bin."""
    by = run_a.stall_by_size("payload_bytes", bins=3)
    assert list(by["batches"]) == [4, 2]
    assert list(by["mean_payload_bytes"]) == approx([9000, 19_000])
    assert list(by["stall_fraction_mean"]) == approx([0.4, 0.25])
    assert list(by["stall_fraction_p90"]) == approx([0.675, 0.45])
    assert list(by["send_items_per_s_mean"]) == approx([122.5, 255])
    with pytest.raises(ValueError, match="use run_count"):
        run_a.stall_by_size("colour")


def test_chunk_timeline_hook(run_a):
    """Without per-chunk timing files the hook says so plainly."""
    with pytest.raises(RecordsError, match="kept no per-chunk timings"):
        run_a.chunk_timeline()


def test_dedupe(run_a):
    """Expected vs reported per fault kind on first-try batches, mismatches counted."""
    d = run_a.dedupe()
    assert list(d.index) == ["none", "duplicate", "gap", "shuffle", "malformed", "schema",
                             "out_of_range", "oversized", "all"]
    assert d.loc["none", ["batches", "first_try", "retried"]].tolist() == [3, 1, 2]
    dup = d.loc["duplicate"]
    assert dup[["batches", "injected", "expected_deduplicated", "reported_deduplicated",
                "deduplicated_diff", "mismatched"]].tolist() == [1, 3, 3, 3, 0, 0]
    assert d.loc["gap", ["batches", "injected", "first_try", "retried"]].tolist() == [1, 2, 0, 1]
    over = d.loc["oversized"]
    assert over[["expected_accepted", "reported_accepted", "accepted_diff",
                 "mismatched"]].tolist() == [100, 99, -1, 1]
    everything = d.loc["all"]
    assert everything[["batches", "first_try", "retried", "mismatched"]].tolist() == [6, 3, 3, 1]
    assert d.loc["shuffle"].sum() == 0


def test_seal_outcomes_and_causes(run_a):
    """First try, after retry, never, cached, dropped; causes from retry reasons and errors."""
    so = run_a.seal_outcomes()
    assert so["batches"].to_dict() == {"first_try": 3, "after_retry": 1, "never": 2,
                                       "cached": 1, "dropped": 1}
    assert so["share"].sum() == approx(1.0)
    causes = run_a.seal_causes()["batches"].to_dict()
    assert causes == {("after_retry", "not_sealed"): 1, ("never", "connect"): 1,
                      ("never", "not_sealed"): 1}


def test_rate_limiting(run_a):
    """429s, waits and the form of the reset header."""
    rl = run_a.rate_limiting()
    assert rl["responses_429"] == 3
    assert rl["batches_limited"] == 2
    assert rl["batches_failed_rate_limited"] == 0
    assert rl["wait_s_total"] == approx(1.1)
    assert (rl["wait_ms_p50"], rl["wait_ms_p95"], rl["wait_ms_max"]) == approx((550, 775, 800))
    assert (rl["reset_unit_s"], rl["reset_unit_ms"]) == (1, 1)


def test_by_worker_and_task(run_a):
    """Per-worker and per-task-count figures, dropped batches left out."""
    w = run_a.by_worker()
    assert list(w.index) == ["w1", "w2"]
    w1, w2 = w.loc["w1"], w.loc["w2"]
    assert w1[["batches", "items", "bytes", "failed", "sealed", "violations"]].tolist() == [
        3, 290, 29_200, 1, 2, 1]
    assert w2[["batches", "items", "bytes", "failed", "sealed", "violations"]].tolist() == [
        4, 349, 35_300, 1, 3, 0]
    assert (w1["items_per_s"], w2["items_per_s"]) == approx((290 / 3, 349 / 3))
    assert (w1["seal_rate"], w2["seal_rate"], w2["error_rate"]) == approx((2 / 3, 0.75, 0.25))
    assert (w1["total_ms_p50"], w1["total_ms_p95"]) == approx((1000, 1450))
    assert (w2["total_ms_p50"], w2["total_ms_p95"], w2["total_ms_max"]) == approx(
        (700, 1395, 1500))
    t = run_a.by_task()
    assert t["batches"].to_dict() == {1: 6, 2: 1}
    assert run_a.breakdown(["worker_id", "user_id"])["batches"].sum() == 7
    with pytest.raises(ValueError, match="not record columns"):
        run_a.breakdown("colour")


def test_crosscheck_against_server_counters(run_a, run_b):
    """Client figures against the server's truth counters, differences reported."""
    cc = run_a.crosscheck()
    assert cc.loc["items_accepted"].tolist() == [639, 639, 0, 0.0]
    assert cc.loc["batches_created", ["client", "server"]].tolist() == [6, 6]
    assert cc.loc["batches_sealed", ["client", "server"]].tolist() == [4, 4]
    assert cc.loc["stream_requests", ["client", "server", "difference"]].tolist() == [11, 13, -2]
    assert cc.loc["lines", "difference"] == 100
    assert cc.loc["rate_limited", "difference"] == 0
    assert run_b.crosscheck() is None


def test_compare(run_a, run_b):
    """Two runs side by side with difference and relative change."""
    cmp = analysis.compare(run_a, run_b)
    assert list(cmp.columns) == ["run-a", "run-b", "difference", "change", "ci_low",
                                 "ci_high", "verdict"]
    assert cmp.loc["total_ms_p95", "verdict"] in ("worse", "better", "same")
    assert cmp.loc["total_ms_p95", "ci_low"] <= cmp.loc["total_ms_p95", "ci_high"]
    assert pd.isna(cmp.loc["items", "verdict"])
    assert cmp.loc["items"].tolist()[:3] == [639, 400, -239]
    assert cmp.loc["items", "change"] == approx(400 / 639 - 1)
    assert cmp.loc["total_ms_p50", "run-b"] == approx(350)
    assert math.isnan(cmp.loc["total_from_intended_ms_p50", "change"])
    same = run_a.compare(run_a.batches)
    assert list(same.columns[:2]) == ["a: run-a", "b: run-a"]
    assert (same["difference"].fillna(0) == 0).all()


def test_functions_accept_a_dataframe(run_a):
    """Module functions take run.batches as well as the Run."""
    assert analysis.summary(run_a.batches)["items"] == 639
    assert analysis.latency(run_a.batches).equals(run_a.latency())
    with pytest.raises(TypeError, match="Run or a records DataFrame"):
        analysis.summary([1, 2])
    with pytest.raises(RecordsError, match="lacks record columns"):
        analysis.summary(pd.DataFrame({"x": [1]}))


def test_jsonl_and_parquet_load_identically(make_run, records_a):
    """The same records read from JSONL and from Parquet give equal DataFrames."""
    a = load_run(make_run("j", records_a, {"run_id": "run-a"}, "jsonl"))
    b = load_run(make_run("p", records_a, {"run_id": "run-a"}, "parquet"))
    pd.testing.assert_frame_equal(a.batches, b.batches)


def test_repr_html(run_a):
    """A Run shows its verdict and headline figures first in a notebook, not a long table."""
    assert "run-a" in repr(run_a)
    page = run_a._repr_html_()
    assert page.index('id="verdict"') < page.index('id="headline"')
    assert "<table" not in page


def test_by_task_counts_each_task_of_mixed_batches(run_a):
    """Per task: the batches carrying it and its own items in accepted batches."""
    df = run_a.batches.copy()
    mixes = []
    for i, run_count in enumerate(df["run_count"].tolist()):
        email = run_count if i == 1 else run_count * 7 // 10
        mixes.append(f"email:{email}" + (f",resize:{run_count - email}" if i != 1 else ""))
    df["tasks"] = mixes
    sent = df[df["outcome"] != "dropped"]
    accepted = sent[sent["outcome"].isin(["sealed", "cached"])]
    want_email = sum(int(m.split(",")[0].split(":")[1]) for m in accepted["tasks"])
    want_resize = sum(int(m.split(",")[1].split(":")[1]) for m in accepted["tasks"] if "," in m)
    table = by_task(df)
    assert table.loc["email", "batches"] == len(sent)
    assert table.loc["resize", "batches"] == len(sent) - 1
    assert table.loc["email", "items"] == want_email
    assert table.loc["resize", "items"] == want_resize


def _record_sets():
    """Record sets whose summary and threshold metrics must be identical, empty run included."""
    from .conftest import _records_a, _records_b, rec  # noqa: PLC0415

    return {
        "run_a": _records_a(),
        "run_b": _records_b(),
        "empty": [],
        "only_dropped": [rec(0, 1.0, 1.0, outcome="dropped", sealed=False, attempts=0,
                             items_accepted=0, bytes_sent=0)],
        "zero_duration": [rec(0, 2.0, 2.0, verified=True)],
        "verify_mixed": [rec(i, i, i + 0.5, verified=v, violations=int(v is False))
                         for i, v in enumerate([True, False, None, False])],
    }


@pytest.mark.parametrize("name", list(_record_sets()))
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_summary_and_thresholds_equal_pandas_on_each_record_set(name, fmt, make_run):
    """summary() and every threshold run metric equal the pandas computation on each record set."""
    records = _record_sets()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty run warns on load
        run = load_run(make_run(name, records, {"run_id": name}, fmt))
    want = by_hand(records)
    s = run.summary()
    assert tuple(s.index) == thresholds.RUN_METRICS
    for metric in thresholds.RUN_METRICS:
        assert float(s[metric]) == approx_nan(float(want[metric])), metric
    table = records_table(records)
    for source in (run.batches, table, records, [r.as_dict() for r in records]):
        results = thresholds.evaluate([f"{m} >= 0" for m in thresholds.RUN_METRICS], source)
        for metric, result in zip(thresholds.RUN_METRICS, results, strict=True):
            assert result.value == approx_nan(float(want[metric])), metric
    if not records or name == "only_dropped":
        assert math.isnan(s["duration_s"])
        assert s["batches"] == 0
        assert not thresholds.evaluate(["duration_s >= 0"], table)[0].passed

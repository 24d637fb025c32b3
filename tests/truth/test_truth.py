"""Measurement truth: every figure loadkit reports, against a reference server whose truth is
known (real locust runs on loopback; the scenarios and their derivations live in
``scenarios.py``, which ``bench/truth.py`` runs to print the same table)."""

from __future__ import annotations

import pytest

from tests.truth import scenarios as sc

pytestmark = pytest.mark.slow


def test_throughput_is_the_servers_ingest_cap(tmp_path, report):
    """A server capped at 4,000 items/s is reported at 4,000 items/s (±5 %), as it counted."""
    rows, data = sc.throughput(tmp_path)
    report(rows)
    s, cross = data["summary"], data["crosscheck"]
    assert s["failed"] == 0
    assert s["violations"] == 0
    assert s["items_per_s"] == pytest.approx(sc.INGEST_RATE, rel=0.05)
    assert s["items"] == data["stats"]["items_enqueued"]  # finished batches only: exact
    assert (cross["difference"] == 0).all(), cross


def test_stall_share_is_the_derived_share_when_the_server_is_slow(tmp_path, report):
    """A slow enqueue stalls the writer for the share derived from the buffers (±2 points)."""
    rows, data = sc.backpressure(tmp_path)
    report(rows)
    # Derivation (scenarios.expected_stall_share): share = 1 − K/S − G/T, K = the bytes the
    # connection holds (measured with a raw socket), S = 20 MB body, G = the client's chunk
    # generation, T = stream duration. A writer reported as always blocked (100 %) is
    # outside the tolerance.
    slow = data["slow_bp"]
    assert data["slow"].summary()["violations"] == 0
    assert slow["batches"] >= 1
    assert abs(slow["stalled_share"] - data["expected"]) <= sc.STALL_TOLERANCE, (
        slow, data["parts"])
    assert 0.9 < data["expected"] < 1 - sc.STALL_TOLERANCE
    # The chunk timeline holds the same stall, chunk by chunk.
    chunks = data["slow"].chunk_timeline()
    per_batch = chunks.groupby("seq")["stall_ms"].sum()
    stall = data["slow"].batches.set_index("seq")["stall_ms"]
    assert per_batch.to_numpy() == pytest.approx(stall.loc[per_batch.index].to_numpy())
    # No delay (300 kB batches, the system's send buffer): the server keeps up, no write
    # finds the socket full, and the stall is zero. Writing still costs time (the kernel's
    # copy, on loopback the receiving side's TCP work too: ~6 % of stream time idle, ~24 %
    # with a busy core); that is write_share, not stall.
    fast = data["fast_bp"]
    assert data["fast"].summary()["violations"] == 0
    assert fast["batches"] >= 100
    assert fast["stalled_share"] < 0.01, fast
    assert fast["write_share"] > fast["stalled_share"], fast


def test_stall_is_the_wait_for_a_server_that_has_not_begun_to_read(tmp_path, report):
    """A body over the buffers waits D for the server to read (half the stream); one that fits
    never waits."""
    rows, data = sc.stall_wait(tmp_path)
    report(rows)
    over, fit = data["over"].batches, data["fit"].batches
    assert len(over) >= 5
    assert len(fit) >= 5
    assert (over["bytes_sent"] > 2 * data["K_bytes"]).all()
    assert (fit["bytes_sent"] < data["K_bytes"]).all()
    wait_ms = sc.STREAM_DELAY * 1000
    assert over["stall_ms"].median() == pytest.approx(wait_ms, rel=0.05)
    # less only if the client was itself late to write (a pause of its own): 96 ms seen once
    assert (over["stall_ms"].between(0.9 * wait_ms, 1.1 * wait_ms)).mean() >= 0.9, (
        over["stall_ms"].tolist())
    share = data["over"].backpressure()["stalled_share"]
    assert abs(share - data["expected_share"]) <= sc.STALL_TOLERANCE, (share, data)
    assert 0.3 < data["expected_share"] < 0.7
    # The body fits: written at once, then only the answer is awaited (not stall).
    assert (fit["stall_ms"] < 1.0).all(), fit["stall_ms"].tolist()
    assert (fit["stream_ms"] > (sc.STREAM_DELAY + sc.ANSWER_DELAY) * 1000).all()


def test_create_latency_is_delay_plus_baseline(tmp_path, report):
    """With a create delay D, create p50/p90/p95 sit at D + the baseline's (±5 %)."""
    rows, data = sc.create_latency(tmp_path)
    report(rows)
    base, delayed = data["base_latency"], data["delayed_latency"]
    assert base["count"] >= 50
    assert delayed["count"] >= 50
    for p in ("p50", "p90", "p95"):
        want = sc.CREATE_DELAY * 1000 + base[p]
        assert delayed[p] == pytest.approx(want, rel=0.05), (p, base, delayed)


def test_open_model_pause_shows_from_intended_start_only(tmp_path, report):
    """A 2 s server freeze shows in latency from the intended start, not from the actual."""
    rows, data = sc.open_model_pause(tmp_path)
    report(rows)
    run, pause_ms = data["run"], data["pause_s"] * 1000
    b = run.batches
    assert run.summary()["dropped"] == 0
    assert run.summary()["failed"] == 0
    intended = b["total_from_intended_ms"]
    actual = b["total_ms"]
    # From the intended start: the start due when the server froze waited the whole pause.
    assert intended.max() == pytest.approx(pause_ms, rel=0.05)
    # the starts due in the pause's first half, and those the backlog kept past half of it
    # (scenarios.expected_over_half_pause)
    expected = data["expected_over_half"]
    assert expected >= sc.ARRIVAL_RATE * data["pause_s"] / 2
    assert abs((intended > pause_ms / 2).sum() - expected) <= max(2, 0.1 * expected)
    # From the actual start: only the batches in flight (one per user) saw it.
    assert (actual > pause_ms / 2).sum() <= sc.OPEN_USERS
    assert actual.quantile(0.9) < 0.05 * pause_ms
    lat = run.latency()
    assert lat.loc["total_from_intended", "p90"] > pause_ms / 4
    assert lat.loc["total", "p90"] < 0.05 * pause_ms


def test_duplicates_gaps_oversized_reported_exactly(tmp_path, report):
    """Injected duplicates, gaps and oversized items are reported exactly; every batch seals."""
    rows, data = sc.dedupe_and_seal(tmp_path)
    report(rows)
    for r in rows:
        assert r["measured"] == r["configured"], r
    truth, got, s = data["truth"], data["got"], data["summary"]
    assert min(truth["duplicate"], truth["gap"], truth["oversized"]) > 0
    assert got == {k: truth[k] for k in got}
    assert s["seal_rate"] == 1.0
    assert s["failed"] == 0
    run = data["run"]
    dd = run.dedupe()
    assert (dd[["deduplicated_diff", "accepted_diff", "mismatched"]] == 0).all().all(), dd
    cross = run.crosscheck()
    assert (cross["difference"] == 0).all(), cross
    assert data["stats"]["batches_sealed"] == data["stats"]["batches_created"] == s["batches"]

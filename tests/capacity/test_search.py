"""Tests of the capacity search's pure parts: the search itself, step measurement, limits."""

import math

import pytest

from loadkit.capacity_search import Bounds, Limit, Search, SearchSettings, judge_step, measure_step
from loadkit.errors import ConfigError

T0 = 1_700_000_000.0


def _run(settings: SearchSettings, capacity: float) -> Search:
    """Drive a search against a target that holds exactly up to ``capacity``."""
    search = Search(settings)
    for _ in range(100):
        rate = search.next_rate()
        if rate is None:
            return search
        search.record(rate, rate <= capacity)
    raise AssertionError("the search did not end")


@pytest.mark.parametrize("capacity", [1_500, 20_000, 60_000, 123_456])
def test_search_ends_within_resolution_of_the_capacity(capacity):
    """Up by 2 from the start, then bisection: the knee is within 5 % below the capacity."""
    search = _run(SearchSettings(start=1000), capacity)
    assert search.knee is not None
    assert capacity * 0.95 <= search.knee <= capacity
    assert (search.failed - search.held) / search.held <= 0.05


def test_search_stops_at_max_when_every_step_holds():
    """A target that takes everything up to --capacity-max ends the search at max."""
    search = _run(SearchSettings(start=1000, max=5000), math.inf)
    assert search.knee == 5000
    assert search.reached_max
    assert [rate for rate, _ in search.tried] == [1000, 2000, 4000, 5000]


def test_search_steps_down_when_the_first_step_fails():
    """A first step that fails is followed by lower ones until one holds."""
    search = _run(SearchSettings(start=1000), 300)
    assert search.knee is not None
    assert 300 * 0.95 <= search.knee <= 300
    assert search.tried[:3] == [(1000, False), (500, False), (250, True)]


def test_search_without_any_holding_step_has_no_knee():
    """A target that takes nothing ends with knee None after a few lower tries."""
    search = _run(SearchSettings(start=1000), 0)
    assert search.knee is None
    assert len(search.tried) == 4  # the start and three lower tries


@pytest.mark.parametrize(("name", "value"), [
    ("start", 0), ("step_seconds", 0.1), ("resolution", 0.9), ("max_seconds", 1)])
def test_bad_settings_name_the_option(name, value):
    """A setting out of range raises ConfigError naming the option."""
    with pytest.raises(ConfigError):
        SearchSettings(**{name: value})


def test_parse_reads_option_strings():
    """The option strings parse: auto latency bound, 'none' max, ms suffix."""
    s = SearchSettings.parse(start="500", max="none", step_seconds="3", latency_bound="250ms")
    assert (s.start, s.max, s.step_seconds, s.bounds.latency_bound_ms) == (500, None, 3, 250)
    assert SearchSettings.parse(latency_bound="auto").bounds.latency_bound_ms is None
    with pytest.raises(ConfigError, match="latency_bound"):
        SearchSettings.parse(latency_bound="soon")


def test_auto_latency_bound_follows_the_first_step():
    """auto: at least 1,000 ms, and 5 × the first step's p95 when that is larger."""
    bounds = Bounds()
    assert bounds.latency_for(20.0) == 1000.0
    assert bounds.latency_for(400.0) == 2000.0
    assert Bounds(latency_bound_ms=300).latency_for(400.0) == 300


def _rows(n: int, rate: float, *, latency_ms: float = 5.0, items: int = 100, **extra):
    """n batches on a timetable of ``rate`` per second, each answered after ``latency_ms``."""
    rows = []
    for k in range(n):
        intended = T0 + k / rate
        row = {"intended_at": intended, "started_at": intended,
               "ended_at": intended + latency_ms / 1000, "outcome": "sealed",
               "run_count": items, "items_accepted": items, "lines_sent": items,
               "bytes_sent": items * 300, "total_from_intended_ms": latency_ms,
               "stream_ms": latency_ms, "stall_ms": 0.0, "rate_limited": 0, "violations": 0}
        row.update(extra)
        rows.append(row)
    return rows


def test_a_step_that_keeps_up_holds():
    """Every batch answered quickly: achieved = offered, the step holds."""
    rows = _rows(100, 10.0)
    stats = measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 11)
    judge_step(stats, Bounds(), 1000.0)
    assert stats.held, stats.failed_on
    assert stats.achieved_items_per_s == pytest.approx(1000.0)
    assert stats.offered_mb_per_s == pytest.approx(0.3)
    assert stats.p95_ms == pytest.approx(5.0)


def test_a_few_batches_per_step_lose_none_to_the_window_edge():
    """12 batches of 5 items in 3 s, the first answered fastest: achieved = offered, held."""
    rows = _rows(12, 4.0, latency_ms=7.0, items=5)
    rows[0]["ended_at"] = rows[0]["intended_at"] + 0.005
    stats = judge_step(measure_step(1, 20.0, T0, 3.0, rows, now=T0 + 4), Bounds(), 1000.0)
    assert stats.achieved_items_per_s == pytest.approx(20.0, rel=0.01)
    assert stats.held, stats.failed_on


def test_a_target_at_its_own_pace_is_measured_at_that_pace():
    """Completions 0.2 s apart while 0.1 s apart were offered: achieved is half of offered."""
    rows = _rows(100, 10.0)
    for k, row in enumerate(rows):
        row["ended_at"] = T0 + 0.2 * (k + 1)
    stats = measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 30)
    assert stats.achieved_items_per_s == pytest.approx(500.0, rel=0.01)


def test_a_step_that_falls_behind_fails_on_target_ingest():
    """Batches ending after the window: achieved < 95 % and latency rising: target_ingest."""
    rows = _rows(100, 10.0)
    for k, row in enumerate(rows):  # each batch waits longer: a queue that grows
        row["ended_at"] = row["intended_at"] + 0.02 * k * 10
        row["total_from_intended_ms"] = (row["ended_at"] - row["intended_at"]) * 1000
        row["stall_ms"] = row["stream_ms"] = 1.0
    stats = judge_step(measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 30), Bounds(), 1000.0)
    assert not stats.held
    assert stats.limited_by == Limit.TARGET_INGEST
    assert any("achieved" in why for why in stats.failed_on)


def test_429s_make_the_limit_rate_limit():
    """A failed step with 429 answers is limited by rate_limit."""
    rows = _rows(100, 10.0, rate_limited=1)
    for row in rows[50:]:
        row["ended_at"] = T0 + 20
        row["total_from_intended_ms"] = (T0 + 20 - row["intended_at"]) * 1000
    stats = judge_step(measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 30), Bounds(), 1000.0)
    assert stats.limited_by == Limit.RATE_LIMIT


def test_errors_come_before_every_other_limit():
    """Violations or failed batches make the limit errors, even with 429s present."""
    rows = _rows(100, 10.0, rate_limited=1)
    rows[0]["violations"] = 1
    stats = judge_step(measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 11), Bounds(), 1000.0)
    assert (stats.held, stats.limited_by) == (False, Limit.ERRORS)


def test_a_saturated_generator_is_the_limit_client():
    """A failed step while the generator used a full core is limited by client."""
    rows = _rows(100, 10.0)
    for row in rows:
        row["started_at"] = row["intended_at"] + 2.0
        row["ended_at"] = row["started_at"] + 0.005
        row["total_from_intended_ms"] = 2005.0
    stats = measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 13, client_cpu=0.98)
    judge_step(stats, Bounds(), 1000.0)
    assert stats.limited_by == Limit.CLIENT
    assert stats.lag_p95_ms == pytest.approx(2000.0)


def test_running_batches_count_with_their_time_so_far():
    """A batch with no answer at the decision counts with now − intended as its latency."""
    rows = _rows(20, 10.0)
    for row in rows[10:]:
        del row["ended_at"], row["total_from_intended_ms"]
        row["outcome"] = None
    stats = measure_step(1, 1000.0, T0, 2.0, rows, now=T0 + 4.0)
    assert stats.p95_ms >= 2000.0
    judge_step(stats, Bounds(), 1000.0)
    assert not stats.held


def test_busy_users_with_a_slowed_target_are_the_targets_doing():
    """Starts late because every user waits on a target 50 × slower than unloaded: target."""
    rows = _rows(100, 10.0)
    for row in rows:
        row["started_at"] = row["intended_at"] + 0.9
        row["total_ms"] = 700.0
        row["ended_at"] = row["started_at"] + 0.7
        row["total_from_intended_ms"] = 1600.0
    stats = measure_step(1, 1000.0, T0, 10.0, rows, now=T0 + 13, client_cpu=0.4)
    judge_step(stats, Bounds(), 1000.0, unloaded_service_ms=14.0)
    assert stats.limited_by == Limit.TARGET_INGEST
    judge_step(stats, Bounds(), 1000.0, unloaded_service_ms=600.0)  # as fast as unloaded
    assert stats.limited_by == Limit.CLIENT

"""Internal: one step of a capacity search, measured from its records, and what limited it.

:func:`measure_step` turns the records of the batches a step scheduled (those whose intended
start falls in the step's window) into a :class:`StepStats`: offered and achieved items/s
and MB/s, latency from the intended start, stall share, drops, 429s, errors, violations, and
the load generator's own CPU and schedule lag. :func:`judge_step` says whether it held under
the :class:`~loadkit.capacity_search.settings.Bounds`, and :func:`limited_by` what stopped a step
that did not. Pure functions over plain dicts: the locust controller, the notebook and the
tests call the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from loadkit.capacity_search.settings import Bounds
from loadkit.vocabulary import FAILURE_OUTCOMES, SUCCESS_OUTCOMES, Outcome

__all__ = ["Limit", "StepStats", "generator_saturated", "judge_step", "limited_by",
           "measure_step"]


SERVICE_GROWTH = 3.0
"""A target whose own time per batch grew beyond this many times its first step's slowed."""


class Limit(StrEnum):
    """What limited a target's capacity (the search's answer, next to the knee)."""

    TARGET_INGEST = "target_ingest"
    """The target stopped reading fast enough: stall and latency from the intended start rose
    and achieved items/s fell behind offered."""
    RATE_LIMIT = "rate_limit"
    """The target answered 429."""
    ERRORS = "errors"
    """5xx answers, timeouts, dropped connections or contract violations."""
    CLIENT = "client"
    """The load generator itself saturated: the knee is only a lower bound."""
    MAX = "max"
    """The search reached ``--capacity-max`` without failing."""


@dataclass(slots=True)
class StepStats:
    """One step: what it offered, what it achieved, and whether it held."""

    number: int
    offered_items_per_s: float
    window_start: float
    """Epoch seconds: the first intended start of the step."""
    window_s: float
    """Seconds of load the step offered (shorter than the step when it failed early)."""
    batches: int = 0
    """Starts scheduled in the window (dropped ones included)."""
    items_offered: int = 0
    achieved_items_per_s: float = 0.0
    offered_mb_per_s: float = 0.0
    achieved_mb_per_s: float = 0.0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    """Latency from the intended start; a batch still running at the decision counts with
    the time it had taken so far."""
    stall_share: float = 0.0
    drop_rate: float = 0.0
    rate_limited: int = 0
    error_rate: float = 0.0
    violations: int = 0
    unfinished: int = 0
    client_cpu: float = math.nan
    """The load generator's CPU as a share of one core (the busiest process)."""
    lag_p95_ms: float = math.nan
    """Schedule lag: actual start − intended start, p95 over the batches sent."""
    service_p95_ms: float = math.nan
    """The target's own time: actual start → answer (``total_ms``), p95."""
    duration_s: float = 0.0
    """Wall time of the step: its load, its decision and any drain after it."""
    latency_bound_ms: float = math.nan
    held: bool = False
    failed_on: list[str] = field(default_factory=list)
    limited_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}


def _pct(values: np.ndarray, p: float) -> float:
    return float(np.percentile(values, p)) if values.size else math.nan


def measure_step(number: int, offered_items_per_s: float, window_start: float,
                 window_s: float, rows: Iterable[Mapping[str, Any]], *, now: float,
                 client_cpu: float = math.nan) -> StepStats:
    """The stats of the batches a step scheduled in ``[window_start, window_start +
    window_s)`` (``rows``: their records as dicts; other records are ignored) at ``now``
    (epoch seconds; batches with no record yet are taken as still running)."""
    end = window_start + window_s
    stats = StepStats(number, offered_items_per_s, window_start, window_s,
                      client_cpu=client_cpu)
    mine = [r for r in rows if r.get("intended_at") is not None
            and window_start <= r["intended_at"] < end]
    stats.batches = len(mine)
    if not mine:
        return stats
    dropped = [r for r in mine if r.get("outcome") == Outcome.DROPPED]
    sent = [r for r in mine if r.get("outcome") != Outcome.DROPPED]
    stats.drop_rate = len(dropped) / len(mine)
    stats.items_offered = int(sum(r.get("run_count") or 0 for r in mine))
    item_bytes = _mean_item_bytes(sent)
    stats.offered_mb_per_s = offered_items_per_s * item_bytes / 1e6
    stats.achieved_items_per_s, stats.achieved_mb_per_s = _achieved(
        sent, window_start, window_s, now)
    latency = np.array([
        r["total_from_intended_ms"] if r.get("total_from_intended_ms") is not None
        else (r["ended_at"] - r["intended_at"]) * 1000.0 if r.get("ended_at") is not None
        else max(0.0, now - r["intended_at"]) * 1000.0
        for r in mine], dtype=float)
    stats.p50_ms, stats.p95_ms, stats.p99_ms = (_pct(latency, p) for p in (50, 95, 99))
    stream = sum(r.get("stream_ms") or 0.0 for r in sent)
    stats.stall_share = sum(r.get("stall_ms") or 0.0 for r in sent) / stream if stream else 0.0
    stats.rate_limited = int(sum(r.get("rate_limited") or 0 for r in sent))
    stats.unfinished = sum(1 for r in sent if r.get("pending"))
    failed = sum(1 for r in sent if r.get("outcome") in FAILURE_OUTCOMES)
    stats.error_rate = failed / len(sent) if sent else 0.0
    stats.violations = int(sum(r.get("violations") or 0 for r in sent))
    lag = np.array([(r["started_at"] - r["intended_at"]) * 1000.0 for r in sent
                    if r.get("started_at") is not None], dtype=float)
    stats.lag_p95_ms = _pct(lag, 95)
    service = np.array([r["total_ms"] for r in sent if r.get("total_ms") is not None],
                       dtype=float)
    stats.service_p95_ms = _pct(service, 95)
    return stats


def _achieved(sent: list[Mapping[str, Any]], window_start: float, window_s: float,
              now: float) -> tuple[float, float]:
    """(items/s, MB/s) at which the target finished the step's batches.

    The rate is read from the spacing of their completions: the items of all but the first
    finished batch over the time from the first completion to the last (or to ``now`` while
    any is still running). A target that keeps up finishes them as far apart as they were
    offered, one that does not as far apart as its own pace, however long its queue. Unlike
    a count of completions inside a fixed window, it does not lose a whole batch to a
    window's edge, which at a few batches per step is a tenth of the rate. With fewer than
    two completions, the count over a window as long as the step's, shifted by their median
    latency, is all there is.
    """
    finished = sorted((r for r in sent if r.get("ended_at") is not None),
                      key=lambda r: r["ended_at"])
    running = any(r.get("ended_at") is None for r in sent)
    if len(finished) >= 2:
        span = finished[-1]["ended_at"] - finished[0]["ended_at"]
        if running:
            span = max(span, now - finished[0]["ended_at"])
        if span > 0:
            rest = finished[1:]
            items = sum(r.get("items_accepted") or 0 for r in rest)
            nbytes = sum(r.get("bytes_sent") or 0 for r in rest)
            return items / span, nbytes / span / 1e6
    shift = float(np.median([r["ended_at"] - r["intended_at"] for r in finished])) \
        if finished else 0.0
    end = window_start + window_s
    done = [r for r in finished if window_start + shift <= r["ended_at"] < end + shift]
    return (sum(r.get("items_accepted") or 0 for r in done) / window_s,
            sum(r.get("bytes_sent") or 0 for r in done) / window_s / 1e6)


def _mean_item_bytes(rows: list[Mapping[str, Any]]) -> float:
    lines = sum(r.get("lines_sent") or 0 for r in rows if r.get("outcome") in SUCCESS_OUTCOMES)
    nbytes = sum(r.get("bytes_sent") or 0 for r in rows if r.get("outcome") in SUCCESS_OUTCOMES)
    return nbytes / lines if lines else 0.0


def judge_step(stats: StepStats, bounds: Bounds, latency_bound_ms: float,
               unloaded_service_ms: float = math.nan) -> StepStats:
    """Set ``held``, ``failed_on`` and (for a failed step) ``limited_by``; returns ``stats``."""
    failed: list[str] = []
    want = bounds.min_achieved * (stats.items_offered / stats.window_s if stats.window_s
                                  else stats.offered_items_per_s)
    if stats.batches == 0:
        failed.append("no batch was scheduled in the step")
    if stats.achieved_items_per_s < want:
        failed.append(f"achieved {stats.achieved_items_per_s:,.0f} items/s < "
                      f"{bounds.min_achieved:.0%} of offered")
    if not stats.p95_ms <= latency_bound_ms:
        failed.append(f"p95 from intended start {stats.p95_ms:,.0f} ms > "
                      f"{latency_bound_ms:,.0f} ms")
    if stats.drop_rate > bounds.max_drop_rate:
        failed.append(f"dropped {stats.drop_rate:.1%} > {bounds.max_drop_rate:.0%}")
    if stats.error_rate > bounds.max_error_rate:
        failed.append(f"failed batches {stats.error_rate:.1%} > {bounds.max_error_rate:.0%}")
    if stats.violations:
        failed.append(f"{stats.violations:,} contract violations")
    stats.latency_bound_ms = latency_bound_ms
    stats.held = not failed
    stats.failed_on = failed
    stats.limited_by = None if stats.held else limited_by(
        stats, bounds, latency_bound_ms, unloaded_service_ms).value
    return stats


def generator_saturated(stats: StepStats, bounds: Bounds, latency_bound_ms: float,
                        unloaded_service_ms: float = math.nan) -> bool:
    """The load generator, not the target, kept starts late: its CPU near a full core, or a
    schedule lag (actual − intended start) that outgrew the target's own time per batch
    while that time stayed near its unloaded value (``unloaded_service_ms``, the first
    step's): every user busy with a target that answers each batch as fast as at low load,
    so there are too few users to start batches on time. When the target's own time grew
    (more than :data:`SERVICE_GROWTH` times), busy users are the target's doing."""
    if stats.client_cpu >= bounds.max_client_cpu:
        return True
    lag, service = stats.lag_p95_ms, stats.service_p95_ms
    if not (math.isfinite(lag) and lag > 0.1 * latency_bound_ms):
        return False
    if math.isfinite(service) and lag <= service:
        return False
    return not (math.isfinite(service) and math.isfinite(unloaded_service_ms)
                and service > SERVICE_GROWTH * max(unloaded_service_ms, 1.0))


def limited_by(stats: StepStats, bounds: Bounds, latency_bound_ms: float,
               unloaded_service_ms: float = math.nan) -> Limit:
    """What stopped a step that failed: errors first (they make every other figure
    meaningless), then 429s, then a saturated generator, else the target's ingest."""
    if stats.violations or stats.error_rate > bounds.max_error_rate:
        return Limit.ERRORS
    if stats.rate_limited:
        return Limit.RATE_LIMIT
    if generator_saturated(stats, bounds, latency_bound_ms, unloaded_service_ms):
        return Limit.CLIENT
    return Limit.TARGET_INGEST

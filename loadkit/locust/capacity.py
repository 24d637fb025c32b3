"""Internal: the capacity search, run inside the locust process that owns the run.

:class:`CapacityController` is a greenlet of the owner (the local runner or the master). It
asks :class:`~loadkit.capacity_search.Search` for the next offered items/s, sets the open
model's timetable to the matching batches per second from a moment just ahead
(:meth:`RunOwner.set_rate`, which a master passes on to its workers), lets the step run,
pauses the timetable, waits for the step's batches to be answered, measures and judges the
step from their records (:mod:`loadkit.capacity_search.steps`), waits for what is still in
flight to drain, and goes on. The users and the target stay up from the first step to the
last. At the end it writes ``capacity.json`` and stops the run.

A step's batches are the batch numbers its timetable segment scheduled; a batch with no
record yet at the decision counts as still running, with the time it has taken so far.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gevent

from loadkit import records as rec
from loadkit.capacity_search import Search, SearchSettings, judge_step, measure_step
from loadkit.capacity_search.result import CAPACITY_JSON, STEPS_JSONL, answer_text, step_line
from loadkit.capacity_search.steps import Limit, StepStats
from loadkit.errors import RecordsError

if TYPE_CHECKING:
    from .owner import RunOwner

__all__ = ["LEAD_S", "CapacityController", "CpuSamples"]

LEAD_S = 0.05
"""Seconds between setting a step's rate and its first start."""
LEAD_DISTRIBUTED_S = 0.3
"""… with workers, which hear of the new rate by message."""
CHECK_EVERY_S = 0.25
"""Seconds between the controller's looks at a running step."""
USERS_READY_TIMEOUT_S = 60.0
"""Seconds the search waits for locust to spawn its users before starting anyway."""
DRAIN_CAP_S = 30.0
"""At most this long the next step waits for earlier batches still in flight."""
EARLY_FAIL_SHARE = 0.05
"""A step ends early once more than this share of its due starts are already late."""

log = logging.getLogger("loadkit")


class CpuSamples:
    """The load generator's CPU over time: ``(epoch s, CPU seconds)`` samples per process."""

    def __init__(self) -> None:
        self._by_process: dict[str, list[tuple[float, float]]] = {}

    def add(self, process: str, at: float, cpu_seconds: float) -> None:
        samples = self._by_process.setdefault(process, [])
        samples.append((at, cpu_seconds))
        if len(samples) > 10_000:
            del samples[:5_000]

    def share(self, start: float, end: float) -> float:
        """The busiest process's CPU between ``start`` and ``end``, as a share of one core
        (``nan`` without two samples in the span)."""
        best = math.nan
        for samples in self._by_process.values():
            inside = [s for s in samples if start - 0.6 <= s[0] <= end + 0.6]
            if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
                continue
            (t0, c0), (t1, c1) = inside[0], inside[-1]
            share = (c1 - c0) / (t1 - t0)
            best = share if math.isnan(best) else max(best, share)
        return best


class CapacityController:
    """Runs one capacity search in the owner's process."""

    def __init__(self, owner: RunOwner, settings: SearchSettings, items_per_batch: float,
                 distributed: bool) -> None:
        self.owner = owner
        self.settings = settings
        self.items_per_batch = max(items_per_batch, 1e-9)
        self.distributed = distributed
        self.search = Search(settings)
        self.steps: list[StepStats] = []
        self.rows: dict[int, dict[str, Any]] = {}
        """Records of batches of the current step and any still awaited, by batch number."""
        self.awaited: set[int] = set()
        """Batch numbers scheduled and not yet recorded."""
        self.answer: dict[str, Any] | None = None
        self.note: str | None = None
        self._greenlet: Any = None
        self._begin = 0.0
        self._latency_bound: float | None = None
        self._unloaded_service = math.nan
        """The target's own time per batch (p95) at the first, lowest step."""
        self._floor = 1 << 62
        """Batch numbers from here on are kept as they arrive (the current step's first)."""
        self._next_due = 0

    # -- what the owner feeds in ------------------------------------------------------------

    def observe(self, rows: Sequence[dict[str, Any]]) -> None:
        """Records as they arrive (the owner's own users' or its workers')."""
        for row in rows:
            seq = row.get("seq")
            if not isinstance(seq, int):
                continue
            self.awaited.discard(seq)
            if seq >= self._floor:
                self.rows[seq] = row

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """End a search still going (its test was stopped): the answer notes it."""
        if self._greenlet is not None and not self._greenlet.dead:
            self._greenlet.kill(block=True)

    # -- the search -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._wait_for_users()
            self._begin = time.time()
            while self.owner.aborted is None:
                rate = self.search.next_rate()
                if rate is None:
                    break
                spent = time.time() - self._begin
                if spent + self.settings.step_seconds > self.settings.max_seconds:
                    self.note = (f"the search stopped at --capacity-max-seconds "
                                 f"({self.settings.max_seconds:,.0f} s) before bisecting "
                                 "to --resolution")
                    break
                step = self._step(len(self.steps) + 1, rate)
                self.search.record(rate, step.held)
                self.steps.append(step)
                self._append_step(step)
        except gevent.GreenletExit:
            self.note = "the run stopped before the search finished"
            raise
        except Exception:  # a bug must not leave the run hanging without an answer
            log.exception("loadkit: the capacity search failed")
            self.note = "the capacity search failed: see locust's log"
        finally:
            self.owner.set_rate(time.time(), 0.0)
            self.finish()
        self.owner.stop_run()

    def _wait_for_users(self) -> None:
        runner = self.owner.environment.runner
        parsed = self.owner.environment.parsed_options
        want = int(getattr(parsed, "num_users", 0) or 0)
        deadline = time.monotonic() + USERS_READY_TIMEOUT_S
        while time.monotonic() < deadline and runner.user_count < want:
            gevent.sleep(0.1)

    def _bound_ms(self) -> float:
        bounds = self.settings.bounds
        return self._latency_bound if self._latency_bound is not None \
            else bounds.latency_for(None)

    def _step(self, number: int, rate: float) -> StepStats:
        """Run one step at ``rate`` offered items/s and judge it."""
        began = time.time()
        start = began + (LEAD_DISTRIBUTED_S if self.distributed else LEAD_S)
        end = start + self.settings.step_seconds
        first = self.owner.set_rate(start, rate / self.items_per_batch)
        last = self.owner.set_rate(end, 0.0)  # the pause after the step, planned ahead
        self._floor = self._next_due = first
        timetable = self.owner.timetable()
        while time.time() < end:
            gevent.sleep(min(CHECK_EVERY_S, max(0.0, end - time.time())))
            self._await_due(timetable, min(time.time(), end))
            if self._failing_early(timetable, first, start):
                end = time.time()
                last = self.owner.set_rate(end, 0.0)  # the pause brought forward
                break
        self.awaited = {seq for seq in self.awaited if seq < last}  # the pause sends none
        self._await_range(first, last)
        self._decide_wait(first, last, end)
        now = time.time()
        rows = [self.rows.get(seq) or self._running(timetable, seq) for seq in range(first, last)]
        cpu = self.owner.cpu.share(start, end)
        stats = measure_step(number, rate, start, end - start, rows, now=now, client_cpu=cpu)
        if self._latency_bound is None:
            self._latency_bound = self.settings.bounds.latency_for(stats.p95_ms)
            self._unloaded_service = stats.service_p95_ms
        judge_step(stats, self.settings.bounds, self._latency_bound, self._unloaded_service)
        self._floor = 1 << 62
        for seq in range(first, last):
            self.rows.pop(seq, None)
        self._drain()
        stats.duration_s = time.time() - began
        return stats

    def _await_due(self, timetable: Any, now: float) -> None:
        """Batch numbers of this step due by ``now`` are awaited (their records)."""
        while timetable.start_time(self._next_due) <= now:
            if self._next_due not in self.rows:
                self.awaited.add(self._next_due)
            self._next_due += 1

    def _await_range(self, first: int, last: int) -> None:
        for seq in range(first, last):
            if seq not in self.rows:
                self.awaited.add(seq)

    def _running(self, timetable: Any, seq: int) -> dict[str, Any]:
        """A placeholder for a batch with no record yet: still running, or not yet sent."""
        return {"seq": seq, "intended_at": timetable.start_time(seq), "pending": True,
                "run_count": self.items_per_batch}

    def _late(self, timetable: Any, first: int, now: float) -> tuple[int, int]:
        """(due starts of this step so far, those already later than the latency bound)."""
        bound_s = self._bound_ms() / 1000.0
        due = late = 0
        seq = first
        while True:
            at = timetable.start_time(seq)
            if at > now:
                return due, late
            due += 1
            row = self.rows.get(seq)
            if row is None:
                late += now - at > bound_s
            elif row.get("outcome") == "dropped":
                late += 1
            else:
                latency = row.get("total_from_intended_ms")
                late += latency is not None and latency > bound_s * 1000.0
            seq += 1

    def _failing_early(self, timetable: Any, first: int, start: float) -> bool:
        """Whether the step has already failed beyond doubt (stop it to limit the backlog)."""
        now = time.time()
        if now - start < 1.0:
            return False
        due, late = self._late(timetable, first, now)
        return due >= 20 and late > EARLY_FAIL_SHARE * due

    def _decide_wait(self, first: int, last: int, end: float) -> None:
        """Wait for the step's records: all of them, or until a late one is late beyond
        the latency bound anyway (plus the workers' send interval)."""
        limit = end + self._bound_ms() / 1000.0 + (1.5 if self.distributed else 0.0)
        while time.time() < limit and any(seq in self.awaited for seq in range(first, last)):
            gevent.sleep(0.02)

    def _drain(self) -> None:
        """Wait for batches still in flight, so the next step starts on an idle target."""
        deadline = time.time() + DRAIN_CAP_S
        while self.awaited and time.time() < deadline:
            gevent.sleep(0.02)
        if self.awaited:
            log.warning("loadkit: %d batches still in flight after %g s; the next step "
                        "starts anyway", len(self.awaited), DRAIN_CAP_S)
            self.awaited.clear()

    # -- the answer -------------------------------------------------------------------------

    def _append_step(self, step: StepStats) -> None:
        row = step.as_dict()
        line = step_line(row)
        sys.stdout.write(f"loadkit capacity: {line}\n")
        sys.stdout.flush()
        run_dir = self.owner.run_dir
        if run_dir is None:
            return
        try:
            with open(run_dir / STEPS_JSONL, "a", encoding="utf-8") as out:
                import json  # noqa: PLC0415

                out.write(json.dumps(row, separators=(",", ":")) + "\n")
        except OSError as exc:
            log.error("loadkit: cannot write %s: %s", STEPS_JSONL, exc)

    def finish(self) -> dict[str, Any]:
        """Write ``capacity.json`` (once) and print the answer."""
        if self.answer is not None:
            return self.answer
        self.answer = answer = self._answer()
        run_dir = self.owner.run_dir
        if run_dir is not None:
            import json  # noqa: PLC0415

            try:
                rec.atomic_write(run_dir / CAPACITY_JSON, json.dumps(answer, indent=2) + "\n")
            except RecordsError as exc:
                log.error("loadkit: %s", exc)
        sys.stdout.write(f"loadkit capacity: {answer_text(answer)}\n")
        sys.stdout.flush()
        return answer

    def _answer(self) -> dict[str, Any]:
        search, steps = self.search, self.steps
        knee = search.knee
        failed = [s for s in steps if not s.held]
        above = [s for s in failed if knee is None or s.offered_items_per_s > knee]
        limit_step = min(above, key=lambda s: s.offered_items_per_s) if above else None
        note = self.note
        if limit_step is not None and limit_step.limited_by is not None:
            limited = limit_step.limited_by
        elif search.reached_max or (knee is not None and self.settings.max is not None
                                    and knee >= self.settings.max):
            limited = Limit.MAX.value
        else:
            limited = "none"
            note = note or "no step failed within the time the search had"
        lower_bound = limited == Limit.CLIENT.value
        if lower_bound and limit_step is not None:
            cpu_bound = limit_step.client_cpu >= self.settings.bounds.max_client_cpu
            why = ("its CPU near a full core: run more load generators with --processes N "
                   "(or --master and --worker on more machines)" if cpu_bound else
                   "every user was busy, so starts fell behind the timetable: raise the "
                   "number of users (-u, or --users for loadkit capacity)")
            note = ((note + ". ") if note else "") + (
                f"the load generator saturated ({why}); the knee is only a lower bound")
        held = [s for s in steps if s.held and s.offered_items_per_s == knee]
        mb = held[-1].achieved_mb_per_s if held else None
        return {
            "knee_items_per_s": knee,
            "knee_mb_per_s": mb,
            "limited_by": limited,
            "lower_bound": lower_bound,
            "note": note,
            "lowest_tried_items_per_s": min((s.offered_items_per_s for s in steps),
                                            default=None),
            "run_id": self.owner.run_id,
            "run_dir": str(self.owner.run_dir) if self.owner.run_dir else None,
            "items_per_batch": self.items_per_batch,
            "bounds": self.settings.bounds.as_dict(self._latency_bound),
            "settings": self.settings.as_dict(),
            "wall_s": (time.time() - self._begin) if self._begin else 0.0,
            "steps_s": sum(s.duration_s for s in steps),
            "steps": [s.as_dict() for s in steps],
        }

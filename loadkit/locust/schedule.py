"""Internal: which batch numbers a process sends and, in the open model, when each one starts.

The master (or the local runner) hands each process a :class:`Plan`: process ``index`` of
``count`` takes batch numbers ``index``, ``index + count``, ``index + 2·count`` …, so numbers
never collide between workers and the same seed makes the same batches. The closed model just
counts through them (:meth:`Schedule.next_seq`). The open model gives each number a start
time on one timetable shared by the whole run (:class:`Timetable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gevent.event

__all__ = ["Plan", "Schedule", "Timetable"]


@dataclass(frozen=True, slots=True)
class Plan:
    """This process's share of the run: its place among ``count`` processes, and the
    timetable's origin ``t0`` (epoch seconds)."""

    run_id: str | None
    index: int
    count: int
    t0: float

    def batch_number(self, k: int) -> int:
        """The number of this process's ``k``-th batch (k = 0, 1, …)."""
        return k * self.count + self.index

    def as_message(self) -> dict[str, Any]:
        """The data of a ``loadkit_plan`` message."""
        return {"run_id": self.run_id, "index": self.index, "count": self.count, "t0": self.t0}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Plan:
        return cls(run_id=data["run_id"], index=data["index"], count=data["count"],
                   t0=data["t0"])


class Timetable:
    """Open model: this process's share of the run's timetable of starts.

    The timetable is a list of segments, each a rate (starts per second, whole run) from a
    start time and a first batch number on: batch ``seq`` of a segment begun at ``t`` with
    number ``s`` is due at ``t + (seq − s) / rate``. A fixed ``--arrival-rate`` is one
    segment from the plan's origin; a capacity search adds one per step
    (:meth:`set_rate`, rate 0 pauses), and every process, told the same changes, numbers
    the same starts. :attr:`changed` wakes the users waiting for a start when the timetable
    changes, so a start claimed under the old rate is timed by the new one.
    """

    def __init__(self, plan: Plan, rate: float) -> None:
        self.plan = plan
        self.segments: list[tuple[float, int, float]] = [(plan.t0, 0, rate)]
        """``(start time, first batch number, rate)``, in order."""
        self.changed = gevent.event.Event()
        self._taken = 0

    def set_rate(self, at: float, rate: float) -> int:
        """From epoch time ``at`` on, ``rate`` starts per second; returns the segment's first
        batch number (the first due at ``at`` or later under the rate before it). Segments
        that would begin after ``at`` are replaced (a step's planned pause brought forward)."""
        while len(self.segments) > 1 and self.segments[-1][0] > at:
            self.segments.pop()
        t, s, r = self.segments[-1]
        first = s if r <= 0 else s + max(0, math.ceil((at - t) * r - 1e-9))
        self.segments.append((at, first, rate))
        self.wake()
        return first

    def wake(self) -> None:
        """Wake every user waiting for a start (the timetable changed, or the run stops)."""
        changed, self.changed = self.changed, gevent.event.Event()
        changed.set()

    def start_time(self, seq: int) -> float:
        """When batch ``seq`` of the run is due (epoch seconds; ``inf`` while paused)."""
        for t, s, r in reversed(self.segments):
            if seq >= s:
                return t + (seq - s) / r if r > 0 else math.inf
        return math.inf

    def next_start(self) -> tuple[int, float]:
        """The next start of this process's share: its batch number and due time."""
        seq = self.plan.batch_number(self._taken)
        self._taken += 1
        return seq, self.start_time(seq)


class Schedule:
    """One process's plan, its closed-model count and its open-model timetable.

    :attr:`ready` is set once the process has a plan (the master's, or its own). A new plan
    starts a new timetable; the closed-model count goes on across plans.
    """

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.ready = gevent.event.Event()
        self._sent = 0
        self._timetable: Timetable | None = None

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self._timetable = None
        self.ready.set()

    def next_seq(self) -> int:
        """Closed model: this process's next batch number, disjoint from other workers'."""
        plan = self.plan or Plan(run_id=None, index=0, count=1, t0=0.0)
        seq = plan.batch_number(self._sent)
        self._sent += 1
        return seq

    def timetable(self, rate: float) -> Timetable:
        """The open model's timetable of the current plan.

        ``rate`` (starts per second, whole run) is read when the plan's timetable is first
        used: a worker's options arrive with locust's spawn message, after its plan.
        """
        if self._timetable is None:
            assert self.plan is not None
            self._timetable = Timetable(self.plan, rate)
        return self._timetable

    def next_start(self, rate: float) -> tuple[int, float]:
        """Open model: the next start of this process's share of the timetable."""
        return self.timetable(rate).next_start()

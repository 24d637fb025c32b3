"""Internal: which batch numbers a process sends and, in the open model, when each one starts.

The master (or the local runner) hands each process a :class:`Plan`: process ``index`` of
``count`` takes batch numbers ``index``, ``index + count``, ``index + 2·count`` …, so numbers
never collide between workers and the same seed makes the same batches. The closed model just
counts through them (:meth:`Schedule.next_seq`). The open model gives each number a start
time on one timetable shared by the whole run (:class:`Timetable`).
"""

from __future__ import annotations

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
    """Open model: this process's share of a timetable of starts at ``rate`` per second.

    Batch ``seq`` of the whole run starts at ``t0 + seq / rate``. Only
    :meth:`start_time` knows the rate: a timetable whose rate changes during the run
    would replace that one method.
    """

    def __init__(self, plan: Plan, rate: float) -> None:
        self.plan = plan
        self.rate = rate
        self._taken = 0

    def start_time(self, seq: int) -> float:
        """When batch ``seq`` of the run is due (epoch seconds)."""
        return self.plan.t0 + seq / self.rate

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

    def next_start(self, rate: float) -> tuple[int, float]:
        """Open model: the next start of this process's share of the timetable.

        ``rate`` (starts per second, whole run) is read when the plan's timetable is first
        used: a worker's options arrive with locust's spawn message, after its plan.
        """
        if self._timetable is None:
            assert self.plan is not None
            self._timetable = Timetable(self.plan, rate)
        return self._timetable.next_start()

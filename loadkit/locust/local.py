"""Internal: the local runner's role: one process runs the users and owns the run.

Records go straight to the run directory. Each test (Start … Stop) restarts the open model's
timetable at its own start; the closed model's numbering goes on. In the web UI each test is
a run of its own (:meth:`~loadkit.locust.owner.RunOwner.open_test_run`).
"""

from __future__ import annotations

import time

import gevent

from .messages import CPU_EVERY_S
from .owner import RunOwner
from .schedule import Plan

__all__ = ["LocalRole"]


class LocalRole(RunOwner):
    """Runs the users and writes their records itself."""

    name = "local"

    def on_test_start(self) -> None:
        if not self.open_test_run():
            return
        self.schedule.set_plan(Plan(run_id=self.run_id, index=0, count=1, t0=time.time()))
        if self.capacity is not None:
            gevent.spawn(self._sample_cpu)
            self.capacity.start()

    def _sample_cpu(self) -> None:
        """The capacity search's view of this process's CPU (its users are the generator)."""
        while self.recording is not None and not self.recording.finished:
            self.cpu.add(self.name, time.time(), time.process_time())
            gevent.sleep(CPU_EVERY_S)

    def on_test_stop(self) -> None:
        if self.per_test:
            self.end_test_run()
        elif self.recording is not None:
            self.recording.flush()

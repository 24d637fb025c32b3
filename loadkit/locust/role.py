"""Internal: what every locust process of a loadkit run does, whatever its role.

One :class:`Role` object per process holds what that process knows about the run: its
options, the target, its batch numbering (:class:`~loadkit.locust.schedule.Schedule`), the
watch for a rejected key and whether the run was stopped early. Its subclasses are the three
roles locust's runners play (compare locust's ``LocalRunner`` / ``MasterRunner`` /
``WorkerRunner``):

- :class:`~loadkit.locust.local.LocalRole`: one process runs the users and owns the run;
- :class:`~loadkit.locust.master.MasterRole`: owns the run, collects the workers' records;
- :class:`~loadkit.locust.worker.WorkerRole`: runs users and ships its records to the master.

The listeners (:mod:`loadkit.locust.listeners`) create the role once, when locust fires
``init``, and call its hooks; the user (:class:`~loadkit.locust.user.BatchUser`) asks it for
batch numbers and hands it records.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from loadkit.options import RunOptions
from loadkit.vocabulary import ExitCode, Outcome

from .schedule import Schedule, Timetable

__all__ = ["AUTH_STREAK", "Role", "exit_at_start_up"]

_STOPPING = frozenset({STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP})
_RECHECK_S = 1.0
"""A user waiting for a start looks at the timetable again at least this often."""
AUTH_STREAK = 3
"""Consecutive 401 batches (with none accepted before) after which the run stops itself."""


def exit_at_start_up(message: str, code: int = ExitCode.CONFIG) -> NoReturn:
    """Stop locust at start-up with one clear line (no traceback)."""
    sys.stderr.write(f"loadkit: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(int(code))


class Role:
    """One locust process's part in the run (one instance per process)."""

    name: ClassVar[str]
    """``local``, ``master`` or ``worker`` (run.json's ``role``)."""

    def __init__(self, environment: Any, options: RunOptions, secret_key: str | None) -> None:
        self.environment = environment
        self.options = options
        self.secret_key = secret_key
        """From ``TRIGGER_SECRET_KEY``; the embedded server's key when the owner starts one."""
        self.target: str | None = None
        """The URL the owner resolved (``environment.host`` carries it to the users)."""
        self.run_id: str | None = None
        self.worker_id = "local"
        """What this process's records name as their worker."""
        self.schedule = Schedule()
        self.aborted: str | None = None
        """Why the run was stopped early, once it was."""
        self.clock_offset = 0.0
        """Seconds to add to this host's clock to read the master's (a worker measures it;
        0 where the process owns the run): timetables and records are in the master's time."""
        self._user_ids = itertools.count()
        self._auth_streak = 0
        self._accepted_any = False

    # -- locust's lifecycle (the listeners call these) -------------------------------------

    def start(self, runner: Any) -> None:
        """At ``init``, once the process has a runner: messages, timers, the run's set-up."""

    def on_test_start(self) -> None:
        """``test_start``: a test (Start … Stop) begins."""

    def on_test_stop(self) -> None:
        """``test_stop``: the users were stopped."""

    def on_quitting(self) -> None:
        """``quitting``: the process is about to exit."""

    # -- what the users hand in ----------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        """One batch record of this process's users."""
        raise NotImplementedError

    def add_chunks(self, rows: Sequence[dict[str, Any]]) -> None:
        """Per-chunk timing rows of one batch (``--keep-chunk-timings true``)."""
        raise NotImplementedError

    def now(self) -> float:
        """The run's time: the master's clock (epoch seconds), as well as this host knows it."""
        return time.time() + self.clock_offset

    def next_user_id(self) -> int:
        return next(self._user_ids)

    def next_seq(self) -> int:
        """Closed model: the number of this process's next batch."""
        return self.schedule.next_seq()

    def timetable(self) -> Timetable:
        """Open model: the current plan's timetable (a capacity search's starts paused)."""
        return self.schedule.timetable(self.options.run.arrival_rate)

    def next_start(self) -> tuple[int, float]:
        """Open model: the number and due time (epoch s) of this process's next start."""
        return self.timetable().next_start()

    def wait_for_start(self, seq: int) -> float | None:
        """Open model: sleep until batch ``seq`` is due, timed again whenever the timetable
        changes (a capacity search's next step); returns its due time, or None when the run
        stops first (a start the timetable paused is never sent)."""
        while True:
            timetable = self.timetable()
            due = timetable.start_time(seq)
            now = self.now()
            if due <= now:
                return due
            if self.stopping:
                return None
            timetable.changed.wait(timeout=min(due - now, _RECHECK_S))

    @property
    def stopping(self) -> bool:
        """The run is stopping: users waiting for a start give up."""
        runner = getattr(self.environment, "runner", None)
        return runner is not None and runner.state in _STOPPING

    # -- stopping early -------------------------------------------------------------------

    def watch_auth(self, error_kind: str | None, outcome: str | None) -> None:
        """Stop the run once the target rejected the key on the first few batches."""
        if error_kind == "auth":
            self._auth_streak += 1
            if not self._accepted_any and self._auth_streak >= AUTH_STREAK:
                self.abort(
                    f"the target rejected the secret key (HTTP 401) on every batch "
                    f"({self._auth_streak} so far): set TRIGGER_SECRET_KEY to a secret key of "
                    f"the target's environment"
                )
        elif outcome != Outcome.DROPPED:
            self._auth_streak = 0
            self._accepted_any = True

    def abort(self, reason: str) -> None:
        """Stop the run early (once) with a plain message."""
        if self.aborted:
            return
        self.aborted = reason
        sys.stderr.write(f"loadkit: {reason}\nloadkit: stopping the run early.\n")
        sys.stderr.flush()
        self._stop_early(reason)

    def _stop_early(self, reason: str) -> None:
        """How this role stops the run (the owner stops locust, a worker asks the master)."""
        raise NotImplementedError

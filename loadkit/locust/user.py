"""Internal: the locust user: sends generated batches one at a time and hands their records on.

Closed model (default): each user sends batches back to back, waiting ``--wait`` between
them. Open model (``--arrival-rate R``): a free user takes the next start of its process's
share of the timetable, waits for its time and sends; a start more than ``--drop-after``
seconds late is recorded as ``dropped`` instead of being sent late.
"""

from __future__ import annotations

import logging
import random
import time

import gevent
from locust import User, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from loadkit import wire

from . import stats
from .listeners import current_role
from .placeholders import dropped_record, interrupted_record
from .role import Role
from .schedule import Plan

__all__ = ["PLAN_TIMEOUT", "BatchUser"]

PLAN_TIMEOUT = 10.0
"""Seconds a user waits for the master's plan before numbering batches on its own."""

log = logging.getLogger("loadkit")


def _wait_time(user: User) -> float:
    """Closed model: ``--wait`` (a number or a uniform range); open model: none."""
    try:
        opts = current_role().options
    except RuntimeError:
        return 0.0
    if opts.run.open_model:
        return 0.0
    lo, hi = opts.run.wait
    return lo if hi <= lo else random.uniform(lo, hi)


class BatchUser(User):
    """Sends generated batches through :class:`loadkit.client.BatchClient`, one at a time."""

    wait_time = _wait_time

    def on_start(self) -> None:
        self.role: Role = current_role()
        schedule = self.role.schedule
        if not schedule.ready.wait(timeout=PLAN_TIMEOUT):
            index = max(getattr(self.environment.runner, "worker_index", 0), 0)
            log.warning("loadkit: no run plan from the master; numbering batches on my own")
            # a range of its own, far from any planned numbering: batches stay distinct
            schedule.set_plan(Plan(run_id=self.role.run_id or "unknown",
                                   index=(index + 1) << 32, count=1, t0=time.time()))
        opts = self.role.options
        self.user_id = self.role.next_user_id()
        host = self.environment.host or self.role.target
        # a worker without TRIGGER_SECRET_KEY uses the key the master's embedded server takes
        key = self.role.secret_key or wire.DEFAULT_LOCAL_SECRET_KEY
        self.batch_client = opts.client.make_client(host, key, opts.spec.chunk_bytes)
        # the embedded server's runs need no finding: it has the local key, nothing else has
        embedded = getattr(self.role, "server", None) is not None or \
            key == wire.DEFAULT_LOCAL_SECRET_KEY
        plan_run = schedule.plan.run_id if schedule.plan is not None else None
        self.spec = opts.spec_for(self.role.run_id or plan_run or "unknown", embedded)

    def stop(self, force: bool = False) -> bool:
        """Stop gracefully even between two batches, when the run has a stop timeout.

        locust kills a user that waits between tasks at once, but gevent delivers the kill
        on the hub's next turn; by then the user may have woken and begun its next batch,
        which is then cut mid-send with its fate at the target unknown (seen at about one
        stop in three in the web UI, with ``--wait``). A waiting user is asked to stop
        instead, as a running one is: it does at the end of its wait (locust checks there).
        """
        if not force and self._state == LOCUST_STATE_WAITING and \
                self.environment.stop_timeout:
            self._state = LOCUST_STATE_STOPPING
            return False
        return bool(super().stop(force))

    def on_stop(self) -> None:
        client = getattr(self, "batch_client", None)
        if client is not None and hasattr(client, "close"):
            client.close()

    @task
    def send_batch(self) -> None:
        role = self.role
        if role.aborted:
            gevent.sleep(1.0)
            return
        opts = role.options
        intended_at = None
        if opts.run.open_model:
            seq, intended_at = self._next_start()
        else:
            seq = role.next_seq()
        batch = self.spec.batch(seq)
        if intended_at is not None:  # the timetable's start, on this host's clock
            intended_at -= role.clock_offset
        started_at, t0 = time.time(), time.perf_counter()
        try:
            result = self.batch_client.send(batch)
        except gevent.GreenletExit:
            row = interrupted_record(
                run_id=role.run_id, worker_id=role.worker_id, user_id=self.user_id, seq=seq,
                run_count=batch.run_count, task_count=len(batch.task_identifiers),
                intended_at=intended_at, started_at=started_at, t0=t0,
                stop_timeout=getattr(self.environment, "stop_timeout", 0) or 0)
            stats.fire(self.environment, "batch", row["total_ms"], 0, "interrupted at stop")
            role.add(row)
            raise
        stats.report_batch(self.environment, result, intended_at)
        role.add(result.to_record(run_id=role.run_id or "", worker_id=role.worker_id,
                                  user_id=self.user_id, intended_at=intended_at).as_dict())
        role.watch_auth(result.error_kind, result.outcome)
        if opts.client.keep_chunk_timings:
            role.add_chunks(result.chunk_rows(run_id=role.run_id or "",
                                              worker_id=role.worker_id, user_id=self.user_id))

    def _next_start(self) -> tuple[int, float]:
        """Open model: wait for this user's next start; record starts too late to serve."""
        role = self.role
        drop_after = role.options.run.drop_after
        while True:
            seq, intended_at = role.next_start()
            now = role.now()
            if now - intended_at > drop_after:
                stats.fire(self.environment, "dropped", 0.0, 0,
                           "dropped: no user free within --drop-after")
                off = role.clock_offset  # records are made on this host's clock
                role.add(dropped_record(run_id=role.run_id, worker_id=role.worker_id,
                                        user_id=self.user_id, seq=seq,
                                        intended_at=intended_at - off, now=now - off,
                                        drop_after=drop_after))
                continue
            if intended_at > now:
                due = role.wait_for_start(seq)
                if due is None:  # the run stops: this start is not sent
                    raise StopUser
                intended_at = due
            return seq, intended_at

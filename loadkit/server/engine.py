"""Internal: the simulated run engine: enqueued items become runs, batches move to a final status.

PENDING (created) → PROCESSING (first run made) → COMPLETED, or ABORTED (an unsealed batch
reaped after ``seal_timeout``). An oversized item's pre-failed run counts as a success, as on
the real server, so a sealed batch always completes. Runs are made at ``run_rate`` per
environment per second, or, with ``run_rate`` 0, on the next tick after their enqueue, with
one C-speed pass over the batch's marks (no per-item Python work), so the engine never
competes with ingest for CPU.
"""

from __future__ import annotations

import asyncio
import time

from loadkit.server.config import ServerConfig
from loadkit.server.state import Batch, Marks, Stats, Store
from loadkit.wire import BatchStatus

__all__ = ["Engine"]

_TO_RUNS = bytes.maketrans(
    bytes([Marks.ENQUEUED, Marks.ENQUEUED_FAILED]), bytes([Marks.RUN, Marks.RUN_FAILED])
)
_ENQ = bytes([Marks.ENQUEUED])
_ENQ_FAILED = bytes([Marks.ENQUEUED_FAILED])


class Engine:
    def __init__(self, config: ServerConfig, store: Store, stats: Stats) -> None:
        self.config = config
        self.store = store
        self.stats = stats
        self._budget: dict[int, float] = {}
        self._last = time.monotonic()
        self._last_reap = self._last

    async def run(self) -> None:
        """Step forever (cancelled on shutdown)."""
        while True:
            await asyncio.sleep(self.config.engine_tick)
            self.step()

    def step(self, now: float | None = None) -> None:
        mono = time.monotonic()
        dt, self._last = mono - self._last, mono
        wall = now if now is not None else time.time()
        rate = self.config.run_rate
        if rate > 0:
            cap = max(1.0, rate)  # never bank more than a second of runs
            for env in {b.env for b in self.store.active.values()}:
                self._budget[env] = min(cap, self._budget.get(env, 0.0) + rate * dt)
        for batch in list(self.store.active.values()):
            if batch.enqueued > batch.processed:
                if rate > 0:
                    self._budget[batch.env] -= self._make_runs(batch, int(self._budget[batch.env]))
                else:
                    self._make_all_runs(batch)
                batch.updated_at = wall
                if batch.status is BatchStatus.PENDING and batch.processed:
                    batch.status = BatchStatus.PROCESSING
            if batch.sealed and batch.processed == batch.run_count:
                self._finish(batch, wall)
        if mono - self._last_reap >= 1.0:
            self._last_reap = mono
            self._reap(mono, wall)

    def _make_all_runs(self, batch: Batch) -> None:
        batch.marks[:] = batch.marks.translate(_TO_RUNS)  # in place: ingest may hold it
        self.stats.runs_created += batch.enqueued - batch.processed
        batch.processed = batch.enqueued

    def _make_runs(self, batch: Batch, budget: int) -> int:
        """Turn up to ``budget`` enqueued items of ``batch`` into runs; returns how many."""
        made = 0
        marks = batch.marks
        wrapped = False
        while made < budget and batch.processed < batch.enqueued:
            a, b = marks.find(_ENQ, batch.cursor), marks.find(_ENQ_FAILED, batch.cursor)
            if a < 0 and b < 0:
                if wrapped:
                    break
                batch.cursor, wrapped = 0, True
                continue
            i = b if a < 0 else a if b < 0 else min(a, b)
            marks[i] = Marks.RUN if i == a else Marks.RUN_FAILED
            batch.cursor = i + 1
            batch.processed += 1
            made += 1
        self.stats.runs_created += made
        return made

    def _finish(self, batch: Batch, wall: float) -> None:
        batch.status = BatchStatus.COMPLETED
        self.stats.batches_completed += 1
        batch.completed_at = batch.updated_at = wall
        self.store.active.pop(batch.id, None)

    def _reap(self, mono: float, wall: float) -> None:
        """Abort the unsealed batches older than ``seal_timeout`` (age on the monotonic clock)."""
        limit = self.config.seal_timeout
        for batch in list(self.store.active.values()):
            if not batch.sealed and mono - batch.created_mono >= limit:
                batch.status = BatchStatus.ABORTED
                batch.aborted = True
                batch.updated_at = wall
                self.stats.batches_aborted += 1
                self.store.active.pop(batch.id, None)

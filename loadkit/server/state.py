"""Internal: in-memory state of the reference server: environments, batches, dedupe, counters.

A batch keeps one byte per index (``marks``), never the items themselves: what the retrieve
answer needs (which indices became runs, which failed and why) is derived from the marks and a
small map of pre-failed items. Run ids are derived from the batch id and the index.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from loadkit.wire import API_LIMIT_BATCH_GRANT, BatchStatus

__all__ = ["Batch", "Marks", "Stats", "Store"]


class Marks:
    """Per-index states in a batch's ``marks`` bytearray (the claimed states are the highest)."""

    EMPTY = 0
    ENQUEUED = 1  # enqueued, waiting for the run engine
    ENQUEUED_FAILED = 2  # an oversized placeholder, waiting to become a pre-failed run
    RUN = 3  # the engine made a run of it
    RUN_FAILED = 4  # the engine made a pre-failed run of it
    CLAIMED = 5  # read and deduplicated, enqueue still in progress (slow enqueue only)
    CLAIMED_FAILED = 6


_FINAL = (BatchStatus.COMPLETED, BatchStatus.PARTIAL_FAILED, BatchStatus.ABORTED)


@dataclass(eq=False)
class Batch:
    id: str
    env: int
    run_count: int
    task_identifiers: tuple[str, ...]
    idempotency_key: str | None
    created_at: float = field(default_factory=time.time)
    created_mono: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` at creation: the batch's age for the seal timeout."""
    updated_at: float = 0.0
    completed_at: float | None = None
    status: BatchStatus = BatchStatus.PENDING
    sealed: bool = False
    aborted: bool = False
    enqueued: int = 0
    """Distinct indices whose enqueue finished (pre-failed placeholders included)."""
    processed: int = 0
    """Indices the engine turned into runs."""
    marks: bytearray = field(default_factory=bytearray)
    prefailed: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    """index → (task, message) of oversized items, which become pre-failed runs: as on the
    real server, each is a run in ``runs`` that the batch counts as a success (its error is on
    the run, not in the batch's errors)."""
    cursor: int = 0
    canceled: set[str] = field(default_factory=set)
    """Run ids canceled with ``POST /api/v2/runs/{runId}/cancel``."""
    grant: int = API_LIMIT_BATCH_GRANT
    """Item requests left that bypass the general API limiter (within its TTL of creation)."""
    _claim_event: asyncio.Event | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.marks:
            self.marks = bytearray(self.run_count)
        self.updated_at = self.created_at

    @property
    def final(self) -> bool:
        return self.status in _FINAL

    def claims_changed(self) -> None:
        """A stream committed or released claimed indices: wake the streams waiting on them."""
        event, self._claim_event = self._claim_event, None
        if event is not None:
            event.set()

    async def wait_for_claims(self) -> None:
        """Wait until some stream commits or releases claimed indices of this batch."""
        if self._claim_event is None:
            self._claim_event = asyncio.Event()
        await self._claim_event.wait()

    def run_id(self, index: int) -> str:
        return f"run_{self.id[6:]}_{index}"

    def run_ids(self) -> list[str]:
        """The runs made so far, in index order (pre-failed runs of oversized items too)."""
        marks = self.marks
        runs: list[str] = []
        if self.processed:
            run, failed = Marks.RUN, Marks.RUN_FAILED
            pos = 0
            find = marks.find
            while True:
                a, b = find(run, pos), find(failed, pos)
                if a < 0 and b < 0:
                    break
                i = b if a < 0 else a if b < 0 else min(a, b)
                runs.append(self.run_id(i))
                pos = i + 1
        return runs

    def has_run(self, run_id: str) -> bool:
        """``run_id`` is one of this batch's runs made so far."""
        prefix = f"run_{self.id[6:]}_"
        if not run_id.startswith(prefix) or not run_id[len(prefix):].isdigit():
            return False
        index = int(run_id[len(prefix):])
        return index < self.run_count and self.marks[index] in (Marks.RUN, Marks.RUN_FAILED)

    def retrieve(self, iso: Callable[[float], str]) -> dict[str, Any]:
        """The ``GET /api/v2/batches/{id}`` answer. The batch's ``errors`` stay empty: the
        real server lists there only items whose run could not be made at all, and makes a
        pre-failed run of an oversized item (docs/batch-api.md)."""
        processing: dict[str, Any] = {"errors": []}
        if self.completed_at is not None:
            processing["completedAt"] = iso(self.completed_at)
        body = self._retrieved(iso)
        body["processing"] = processing
        if self.completed_at is not None:
            body["processingCompletedAt"] = processing["completedAt"]
        if self.idempotency_key is not None:
            body["idempotencyKey"] = self.idempotency_key
        return body

    def _retrieved(self, iso: Callable[[float], str]) -> dict[str, Any]:
        """What both retrieve answers (v1 and v2) start with."""
        return {"id": self.id, "status": str(self.status), "createdAt": iso(self.created_at),
                "updatedAt": iso(self.updated_at), "runCount": self.run_count,
                "runs": self.run_ids()}

    def retrieve_v1(self, iso: Callable[[float], str]) -> dict[str, Any]:
        """The ``GET /api/v1/batches/{id}`` answer (older SDKs): run counts once the batch is
        final, top-level ``errors`` only when there are some (never here), no ``processing``."""
        body = self._retrieved(iso)
        if self.idempotency_key is not None:
            body["idempotencyKey"] = self.idempotency_key
        if self.completed_at is not None:
            body["successfulRunCount"] = self.processed
            body["failedRunCount"] = 0
        return body


@dataclass(eq=False)
class _Counters:
    """The plain counters of :class:`Stats`, in the order ``/stats`` lists them."""

    create_requests: int = 0
    batches_created: int = 0
    batches_cached: int = 0
    batches_sealed: int = 0
    batches_completed: int = 0
    batches_partial_failed: int = 0
    batches_aborted: int = 0
    stream_requests: int = 0
    streams_to_sealed: int = 0
    lines_read: int = 0
    items_enqueued: int = 0
    items_deduplicated: int = 0
    items_oversized: int = 0
    bytes_read: int = 0
    runs_created: int = 0
    rate_limited: int = 0
    api_rate_limited: int = 0
    runs_canceled: int = 0
    injected_errors: int = 0
    injected_drops: int = 0
    timeouts: int = 0
    client_disconnects: int = 0


class Stats(_Counters):
    """The truth counters behind ``GET /api/loadkit/stats``."""

    COUNTERS: ClassVar[tuple[str, ...]] = tuple(f.name for f in fields(_Counters))
    SERIES_SECONDS = 120

    rejected: collections.Counter[str]
    status_counts: collections.Counter[int]
    started_at: float
    _series: collections.OrderedDict[int, int]
    _started_mono: float

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        _Counters.__init__(self)  # every counter back to 0
        self.rejected = collections.Counter()
        self.status_counts = collections.Counter()
        self._series = collections.OrderedDict()
        self.started_at = time.time()
        self._started_mono = time.monotonic()

    def add_ingest(self, items: int, now: float | None = None) -> None:
        """Count ``items`` newly enqueued in this second (called once per body chunk)."""
        self.items_enqueued += items
        sec = int(now if now is not None else time.time())
        series = self._series
        series[sec] = series.get(sec, 0) + items
        if len(series) > self.SERIES_SECONDS:
            series.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        sec = int(now)
        series = [[s, n] for s, n in self._series.items() if s > sec - self.SERIES_SECONDS]
        recent = [n for s, n in series if sec - 5 <= s < sec]
        out: dict[str, Any] = {name: getattr(self, name) for name in self.COUNTERS}
        out["items_rejected"] = sum(self.rejected.values())
        out["rejected_by_reason"] = dict(self.rejected)
        out["responses_by_status"] = {str(k): v for k, v in sorted(self.status_counts.items())}
        out["ingest_items_per_s"] = sum(recent) / 5.0
        out["ingest_series"] = series
        out["now"] = now
        out["uptime_s"] = time.monotonic() - self._started_mono
        return out


class Store:
    """Every batch, by id, plus idempotency maps per environment."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self.idempotency: dict[tuple[int, str, tuple[str, ...]], str] = {}
        self.active: dict[str, Batch] = {}
        """Batches the run engine still has to look at (not final)."""

    def new_id(self) -> str:
        return "batch_" + secrets.token_hex(10)

    def add(self, batch: Batch) -> None:
        self.batches[batch.id] = batch
        self.active[batch.id] = batch
        if batch.idempotency_key is not None:
            key = (batch.env, batch.idempotency_key, batch.task_identifiers)
            self.idempotency[key] = batch.id

    def cached(self, env: int, key: str | None, tasks: tuple[str, ...]) -> Batch | None:
        if key is None:
            return None
        batch_id = self.idempotency.get((env, key, tasks))
        return self.batches.get(batch_id) if batch_id else None

    def get(self, env: int, batch_id: str) -> Batch | None:
        """The batch if it exists in this environment (others' batches are invisible)."""
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.env == env else None

"""The batch record: one row per batch, the one schema every writer and reader uses.

A run directory (``results/<run_id>/``) holds:

- ``run.json`` — run id, start/end, versions, every option (secret key redacted), target,
  reference-server settings when embedded, ``schema_version``;
- ``records.jsonl`` — one JSON object per batch (the fields of :class:`BatchRecord`),
  appended and flushed at least every second while the run goes on: a killed run leaves a
  readable file that loses at most the last second (a torn last line is skipped on read);
- ``records.parquet`` — the same rows, written once at the end with :data:`ARROW_SCHEMA`.

Times: ``*_at`` fields are wall-clock epoch seconds (``time.time()``); ``*_ms`` fields are
durations in milliseconds measured with ``time.perf_counter()``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = [
    "ARROW_SCHEMA",
    "FIELD_NAMES",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "BatchRecord",
]

SCHEMA_VERSION = 1

OUTCOMES = ("sealed", "cached", "not_sealed", "failed", "dropped")
"""``sealed``: the batch sealed (first try or after retries); ``cached``: the create was an
idempotent replay, nothing streamed; ``not_sealed``: streams ended without sealing (retries
exhausted); ``failed``: an error stopped the batch (``error_kind`` says which); ``dropped``:
open model only, a scheduled start that could not be served in time (nothing was sent)."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch, flat. Optional fields are None when they do not apply."""

    # identity
    run_id: str
    worker_id: str
    user_id: int
    seq: int
    batch_id: str | None
    # timing (epoch seconds, then milliseconds)
    intended_at: float | None
    """Open model: when the batch was scheduled to start; None in the closed model."""
    started_at: float
    ended_at: float
    create_ms: float | None
    stream_ms: float | None
    """Sum of all stream attempts' durations."""
    total_ms: float
    """From the actual start to the end of the last attempt."""
    total_from_intended_ms: float | None
    """From the intended start (coordinated-omission-aware); None in the closed model."""
    # outcome
    outcome: str
    sealed: bool
    sealed_attempt: int | None
    """Which stream attempt sealed the batch (1 = the first)."""
    attempts: int
    """Stream attempts made."""
    create_attempts: int
    status: int | None
    """HTTP status of the last stream attempt (of the create when no stream was made)."""
    error_kind: str | None
    """Why the batch failed: auth, connect, timeout, protocol, status, rate_limited …"""
    error: str | None
    retry_reasons: str
    """Comma-separated reason each retried attempt ended, e.g. ``not_sealed,connect,429``."""
    # sizes and server answers
    run_count: int
    task_count: int
    payload_bytes: int
    """Sum of the batch's drawn payload sizes (first stream's items)."""
    lines_sent: int
    bytes_sent: int
    items_accepted: int
    """Sum of itemsAccepted over all stream answers."""
    items_deduplicated: int
    enqueued_count: int | None
    """From the last ``sealed: false`` answer."""
    expected_count: int | None
    # what the generator expected of the first stream
    expected_status: int
    expected_accepted: int
    expected_deduplicated: int
    expected_sealed: bool
    fault_duplicate: int
    fault_gap: int
    fault_shuffle: int
    fault_malformed: int
    fault_schema: int
    fault_out_of_range: int
    fault_oversized: int
    # truth checks
    violations: int
    violation_text: str | None
    """``; ``-separated named contract violations (answers that differ from the expected)."""
    verified: bool | None
    """Retrieve-after-seal check: True passed, False failed, None not done."""
    # backpressure and rates
    stall_ms: float
    """Time the body writer was blocked handing chunks to the transport, all attempts."""
    stall_fraction: float
    """stall_ms ÷ stream_ms."""
    max_stall_ms: float
    send_bytes_per_s: float | None
    send_items_per_s: float | None
    response_tail_ms: float | None
    """From the last byte written to the response (the server's ingest tail and seal)."""
    rate_limit_wait_ms: float
    rate_limited: int
    """429 answers received (create and stream)."""
    ratelimit_reset_unit: str | None
    """How the server sent ``x-ratelimit-reset``: ``s`` (epoch seconds) or ``ms``."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_NAMES}


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BatchRecord))

_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _arrow_field(name: str, annotation: Any) -> pa.Field:
    args = typing.get_args(annotation)
    nullable = isinstance(annotation, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if nullable else annotation
    return pa.field(name, _ARROW_TYPES[base], nullable=nullable)


_HINTS = typing.get_type_hints(BatchRecord)
ARROW_SCHEMA: pa.Schema = pa.schema(
    [_arrow_field(name, _HINTS[name]) for name in FIELD_NAMES],
    metadata={b"loadkit_schema_version": str(SCHEMA_VERSION).encode()},
)

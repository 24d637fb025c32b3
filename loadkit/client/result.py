"""Internal: what the client measured of one batch: :class:`BatchResult`, attempts, violations.

A :class:`BatchResult` holds every measurement of one ``BatchClient.send``: the create, each
stream attempt (:class:`Attempt`: why it ended, status, duration, bytes, lines, stall, the
server's answer), the named contract violations (:class:`Violation`), a typed error when the
batch failed, and optionally per-chunk write timings (:class:`ChunkTimings`).
``to_record(run_id=…, worker_id=…, user_id=…, intended_at=None)`` flattens it into the one
record schema, :class:`loadkit.records.BatchRecord`.

Definitions (all measured with ``time.perf_counter()``):

- **stream duration** of an attempt: from just before the request is started to the end of
  reading the answer (or the failure);
- **write** of a chunk: from handing the chunk to the transport (the body iterator yields it)
  to the transport asking for the next one (framing, the kernel's copy, any wait);
- **stall** of a chunk: the part of its write spent waiting because the socket's send buffer
  was full, i.e. the target was not reading as fast as the client wrote: backpressure
  (:mod:`loadkit.client.transport`; with a caller's own transport it is the whole write);
- **response tail**: from the last body byte accepted by the transport to the response
  headers (the server's ingest tail and seal);
- **send rate**: bytes (lines) sent ÷ the summed stream durations of all attempts.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from loadkit import wire
from loadkit.errors import TargetError
from loadkit.generators import ExpectedOutcome
from loadkit.records import BatchRecord
from loadkit.vocabulary import FAULT_KINDS, Outcome

__all__ = ["Attempt", "BatchResult", "ChunkTimings", "End", "Violation"]


class End(StrEnum):
    """Why one request of a batch (a stream attempt, or a create attempt) ended."""

    SEALED = "sealed"
    """A 200 answer with ``sealed: true``."""
    NOT_SEALED = "not_sealed"
    """A 200 answer with ``sealed: false`` (retried)."""
    EXPECTED_ERROR = "expected_error"
    """An injected fault's 400/422, as predicted (retried with clean lines)."""
    CONNECT = "connect"
    """Nothing reached the target: the connection could not be made."""
    DROPPED = "dropped"
    """The connection broke after the request began."""
    TIMEOUT = "timeout"
    """No progress within the client's timeout."""
    PROTOCOL = "protocol"
    """The answer is not the batch API's."""
    AUTH = "auth"
    """No secret key: nothing was sent."""
    STATUS = "status"
    """Any other HTTP status (``Attempt.status`` holds it)."""

    @property
    def unanswered(self) -> bool:
        """What the target did with the request cannot be known from an answer."""
        return self in (End.DROPPED, End.TIMEOUT)


def reason_text(end: End | None, status: int | None) -> str:
    """The short cause recorded in ``retry_reasons``: the HTTP status for :attr:`End.STATUS`
    (``503``, ``429``), else the end's name (``dropped``, ``not_sealed``)."""
    if end is None:
        return ""
    return str(status) if end is End.STATUS and status is not None else end.value


@dataclass(frozen=True, slots=True)
class Violation:
    """A named contract violation: the server's answer differs from the known truth."""

    name: str
    """Stable short name: ``accepted_mismatch``, ``dedup_mismatch``, ``sealed_mismatch`` …"""
    attempt: int | None
    """Which stream attempt showed it (None for create, verify and totals)."""
    expected: Any
    actual: Any
    detail: str = ""

    def __str__(self) -> str:
        where = f" (attempt {self.attempt})" if self.attempt is not None else ""
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.name}{where}: expected {self.expected!r}, got {self.actual!r}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "attempt": self.attempt, "expected": self.expected,
                "actual": self.actual, "detail": self.detail}


class ChunkTimings:
    """Per-chunk write timings of one attempt, in compact arrays (8 bytes a number).

    ``at_ms[i]``: when chunk ``i`` was handed over, ms since the attempt started;
    ``write_ms[i]``: how long its write took to be accepted;
    ``stall_ms[i]``: how much of that it waited on the target (its stall);
    ``size[i]``: its bytes.
    """

    __slots__ = ("at_ms", "size", "stall_ms", "write_ms")

    def __init__(self) -> None:
        self.at_ms = array("d")
        self.write_ms = array("d")
        self.stall_ms = array("d")
        self.size = array("q")

    def __len__(self) -> int:
        return len(self.size)

    def as_dict(self) -> dict[str, list[float] | list[int]]:
        return {"at_ms": self.at_ms.tolist(), "write_ms": self.write_ms.tolist(),
                "stall_ms": self.stall_ms.tolist(), "size": self.size.tolist()}


@dataclass(slots=True)
class Attempt:
    """One stream request of a batch."""

    number: int
    """1 = the first stream (with the batch's injected faults); later ones are retries."""
    sent: str
    """What the body held: ``first`` (the faulty first stream), ``full`` (every clean line),
    ``missing`` (only the indices the server lacked) or ``unknown_full`` (every clean line
    because what the server enqueued could not be known, e.g. after a dropped connection)."""
    started_at: float
    """Epoch seconds."""
    delay_ms: float = 0.0
    """Backoff (and rate-limit) wait before this attempt started."""
    duration_ms: float = 0.0
    bytes: int = 0
    lines: int = 0
    chunks: int = 0
    stall_ms: float = 0.0
    """Time the body's writes waited on the target (the chunks' stalls, summed)."""
    max_stall_ms: float = 0.0
    write_ms: float = 0.0
    """Time the body's writes took in all (stall included)."""
    body_done: bool = False
    """The whole body was handed to the transport."""
    response_tail_ms: float | None = None
    status: int | None = None
    answer: dict[str, Any] | None = None
    """The JSON answer as the target sent it, secret key removed (200 body, or error body
    ``{error, message}``); for display only: judge from :attr:`stream_answer`."""
    stream_answer: wire.StreamAnswer | None = None
    """The 200 answer read by :func:`loadkit.wire.parse_stream_response` (None for any other
    answer, or a 200 that is not the batch API's)."""
    end: End | None = None
    """Why it ended (None while it runs)."""
    error: TargetError | None = None
    rate_limit_wait_ms: float = 0.0
    rate_limiter: str | None = None
    """A 429's limiter: ``batch`` or ``api`` (:func:`loadkit.wire.rate_limiter_of`)."""
    reset_resent: bool = False
    """The request met a connection reset right after an early error answer (the expected
    aftermath of the server closing that connection) and was re-sent once."""
    retry_headers: dict[str, str] | None = None
    """The answer's retry-related headers (x-should-retry, x-ratelimit-*, retry-after)."""
    timings: ChunkTimings | None = None

    @property
    def reason(self) -> str:
        """Why it ended, as ``retry_reasons`` writes it: ``sealed``, ``not_sealed``,
        ``expected_error``, ``connect``, ``dropped``, ``timeout``, ``protocol``, ``auth`` or
        the HTTP status (``408``, ``429``, ``500`` …)."""
        return reason_text(self.end, self.status)

    @property
    def stall_fraction(self) -> float:
        return self.stall_ms / self.duration_ms if self.duration_ms > 0 else 0.0

    def as_dict(self, chunk_timings: bool = False) -> dict[str, Any]:
        out = {
            "number": self.number, "sent": self.sent, "started_at": self.started_at,
            "delay_ms": self.delay_ms, "duration_ms": self.duration_ms, "bytes": self.bytes,
            "lines": self.lines, "chunks": self.chunks, "stall_ms": self.stall_ms,
            "stall_fraction": self.stall_fraction, "max_stall_ms": self.max_stall_ms,
            "write_ms": self.write_ms, "body_done": self.body_done,
            "response_tail_ms": self.response_tail_ms,
            "status": self.status, "answer": self.answer, "reason": self.reason,
            "error": None if self.error is None else str(self.error),
            "error_kind": None if self.error is None else self.error.kind,
            "rate_limit_wait_ms": self.rate_limit_wait_ms,
            "rate_limiter": self.rate_limiter, "reset_resent": self.reset_resent,
            "retry_headers": self.retry_headers,
        }
        if chunk_timings and self.timings is not None:
            out["timings"] = self.timings.as_dict()
        return out


@dataclass(slots=True)
class BatchResult:
    """Everything measured while sending one batch; never raised, always returned."""

    seq: int
    run_count: int
    task_count: int
    payload_bytes: int
    expected: ExpectedOutcome
    resend: str
    """The retry policy's resend mode."""
    started_at: float
    client_mode: str = "loadkit"
    """How the client streamed: ``loadkit`` or ``sdk``
    (:data:`~loadkit.client.config.CLIENT_MODES`)."""
    tasks: str = ""
    """Items per task identifier, ``name:count,…`` (the record's ``tasks``)."""
    ended_at: float = 0.0
    total_ms: float = 0.0
    batch_id: str | None = None
    create_ms: float | None = None
    """Create latency of the successful create request (None when no create succeeded)."""
    create_attempts: int = 0
    create_status: int | None = None
    create_retry_reasons: list[str] = field(default_factory=list)
    """Why each retried create attempt ended (``connect``, ``dropped``, ``timeout``, ``429`` …)."""
    cached: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    sealed: bool = False
    sealed_attempt: int | None = None
    violations: list[Violation] = field(default_factory=list)
    error: TargetError | None = None
    error_kind: str | None = None
    """``error.kind`` (auth, connect, timeout, protocol, status), or ``rate_limited`` when
    the batch failed because 429 answers used up its attempts."""
    verified: bool | None = None
    """``verify=True``: True when the retrieved batch holds exactly the expected runs, False
    on a violation, None when not checked (no verify, not sealed, or the target's engine was
    still making runs when ``verify_timeout`` ran out: see :attr:`verify_note`)."""
    verify_note: str | None = None
    """Why ``verified`` is None although verify ran (not a violation)."""
    rate_limit_wait_ms: float = 0.0
    rate_limited: int = 0
    ratelimit_reset_unit: str | None = None
    rate_limiters: list[str] = field(default_factory=list)
    """Which limiter answered each 429 (``batch`` or ``api``), create first, in order."""
    notes: list[str] = field(default_factory=list)
    """Remarks that are no violation (a differing error detail, a reset met after an early
    error answer); the record's ``notes`` also holds :attr:`verify_note`."""
    unknown_resends: int = 0
    """Retries that re-sent every clean line because the server's state could not be known."""

    # -- aggregates -----------------------------------------------------------------------

    @property
    def stream_ms(self) -> float | None:
        return sum(a.duration_ms for a in self.attempts) if self.attempts else None

    @property
    def bytes_sent(self) -> int:
        return sum(a.bytes for a in self.attempts)

    @property
    def lines_sent(self) -> int:
        return sum(a.lines for a in self.attempts)

    @property
    def stall_ms(self) -> float:
        return sum(a.stall_ms for a in self.attempts)

    @property
    def stall_fraction(self) -> float:
        stream = self.stream_ms
        return self.stall_ms / stream if stream else 0.0

    @property
    def max_stall_ms(self) -> float:
        return max((a.max_stall_ms for a in self.attempts), default=0.0)

    @property
    def write_ms(self) -> float:
        return sum(a.write_ms for a in self.attempts)

    @property
    def send_bytes_per_s(self) -> float | None:
        stream = self.stream_ms
        return self.bytes_sent / (stream / 1000.0) if stream else None

    @property
    def send_items_per_s(self) -> float | None:
        stream = self.stream_ms
        return self.lines_sent / (stream / 1000.0) if stream else None

    @property
    def response_tail_ms(self) -> float | None:
        """Of the last attempt that got an answer after writing its whole body."""
        for a in reversed(self.attempts):
            if a.response_tail_ms is not None:
                return a.response_tail_ms
        return None

    @property
    def items_accepted(self) -> int:
        return sum(s.items_accepted for s in self._answered())

    @property
    def items_deduplicated(self) -> int:
        return sum(s.items_deduplicated for s in self._answered())

    def _answered(self) -> list[wire.StreamAnswer]:
        return [a.stream_answer for a in self.attempts if a.stream_answer is not None]

    @property
    def last_unsealed_answer(self) -> wire.StreamAnswer | None:
        for s in reversed(self._answered()):
            if not s.sealed:
                return s
        return None

    @property
    def status(self) -> int | None:
        """HTTP status of the last stream attempt (None when it got no answer: dropped,
        timeout); of the create when no stream was made."""
        return self.attempts[-1].status if self.attempts else self.create_status

    @property
    def outcome(self) -> Outcome:
        if self.cached:
            return Outcome.CACHED
        if self.sealed:
            return Outcome.SEALED
        if self.error is not None:
            return Outcome.FAILED
        return Outcome.NOT_SEALED

    @property
    def retry_reasons(self) -> str:
        """Why each attempt that was followed by another one ended: retried creates first,
        prefixed ``create:`` (``create:429``, ``create:connect``), then stream attempts."""
        return ",".join([*(f"create:{r}" for r in self.create_retry_reasons),
                         *(a.reason for a in self.attempts[:-1])])

    @property
    def ok(self) -> bool:
        """Sealed (or cached) with no violation and no error."""
        return (self.sealed or self.cached) and not self.violations and self.error is None

    # -- output ---------------------------------------------------------------------------

    def chunk_rows(self, *, run_id: str, worker_id: str, user_id: int) -> list[dict[str, Any]]:
        """One row per body chunk written, all attempts (fields of
        :data:`loadkit.records.CHUNK_FIELDS`); empty unless chunk timings were kept."""
        rows: list[dict[str, Any]] = []
        for a in self.attempts:
            t = a.timings
            if t is None:
                continue
            offset = 0
            for k, (at_ms, write_ms, stall_ms, size) in enumerate(
                    zip(t.at_ms, t.write_ms, t.stall_ms, t.size, strict=True)):
                rows.append({
                    "run_id": run_id, "worker_id": worker_id, "user_id": user_id,
                    "seq": self.seq, "batch_id": self.batch_id, "attempt": a.number,
                    "chunk": k, "at": a.started_at + at_ms / 1000.0, "offset_ms": at_ms,
                    "offset_bytes": offset, "bytes": size, "write_ms": write_ms,
                    "stall_ms": stall_ms,
                })
                offset += size
        return rows

    def to_record(
        self, *, run_id: str, worker_id: str, user_id: int, intended_at: float | None = None
    ) -> BatchRecord:
        """The flat record of this batch (the one schema runs store)."""
        exp = self.expected
        faults = exp.fault_counts
        unsealed = self.last_unsealed_answer
        stream_ms = self.stream_ms
        return BatchRecord(
            run_id=run_id,
            worker_id=worker_id,
            user_id=user_id,
            seq=self.seq,
            batch_id=self.batch_id,
            intended_at=intended_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            create_ms=self.create_ms,
            stream_ms=stream_ms,
            total_ms=self.total_ms,
            total_from_intended_ms=(
                None if intended_at is None else (self.ended_at - intended_at) * 1000.0
            ),
            outcome=self.outcome.value,
            sealed=self.sealed,
            sealed_attempt=self.sealed_attempt,
            attempts=len(self.attempts),
            create_attempts=self.create_attempts,
            status=self.status,
            error_kind=self.error_kind,
            error=None if self.error is None else str(self.error),
            retry_reasons=self.retry_reasons,
            run_count=self.run_count,
            task_count=self.task_count,
            payload_bytes=self.payload_bytes,
            lines_sent=self.lines_sent,
            bytes_sent=self.bytes_sent,
            items_accepted=self.items_accepted,
            items_deduplicated=self.items_deduplicated,
            enqueued_count=None if unsealed is None else unsealed.enqueued_count,
            expected_count=None if unsealed is None else unsealed.expected_count,
            expected_status=exp.status,
            expected_accepted=exp.items_accepted,
            expected_deduplicated=exp.items_deduplicated,
            expected_sealed=exp.sealed,
            **{f"fault_{kind}": int(faults.get(kind, 0)) for kind in FAULT_KINDS},
            violations=len(self.violations),
            violation_text="; ".join(str(v) for v in self.violations) or None,
            verified=self.verified,
            stall_ms=self.stall_ms,
            stall_fraction=self.stall_fraction,
            max_stall_ms=self.max_stall_ms,
            send_bytes_per_s=_finite(self.send_bytes_per_s),
            send_items_per_s=_finite(self.send_items_per_s),
            response_tail_ms=self.response_tail_ms,
            rate_limit_wait_ms=self.rate_limit_wait_ms,
            rate_limited=self.rate_limited,
            ratelimit_reset_unit=self.ratelimit_reset_unit,
            tasks=self.tasks or None,
            write_ms=self.write_ms,
            notes="; ".join([*self.notes, *filter(None, [self.verify_note])]) or None,
            rate_limiter=self.rate_limiter,
            client_mode=self.client_mode,
        )

    @property
    def rate_limiter(self) -> str | None:
        """The record's ``rate_limiter``: the limiters that answered 429, ``batch`` first."""
        seen = set(self.rate_limiters)
        return ",".join(name for name in ("batch", "api") if name in seen) or None

    def as_dict(self, chunk_timings: bool = False) -> dict[str, Any]:
        """Everything as plain JSON-able values (what ``loadkit send`` prints)."""
        return {
            "seq": self.seq, "batch_id": self.batch_id, "outcome": self.outcome.value,
            "sealed": self.sealed, "sealed_attempt": self.sealed_attempt,
            "cached": self.cached, "ok": self.ok,
            "run_count": self.run_count, "task_count": self.task_count, "tasks": self.tasks,
            "payload_bytes": self.payload_bytes, "resend": self.resend,
            "client_mode": self.client_mode,
            "started_at": self.started_at, "ended_at": self.ended_at, "total_ms": self.total_ms,
            "create_ms": self.create_ms, "create_attempts": self.create_attempts,
            "create_status": self.create_status, "stream_ms": self.stream_ms,
            "bytes_sent": self.bytes_sent, "lines_sent": self.lines_sent,
            "items_accepted": self.items_accepted,
            "items_deduplicated": self.items_deduplicated,
            "stall_ms": self.stall_ms, "stall_fraction": self.stall_fraction,
            "max_stall_ms": self.max_stall_ms, "write_ms": self.write_ms,
            "send_bytes_per_s": self.send_bytes_per_s,
            "send_items_per_s": self.send_items_per_s,
            "response_tail_ms": self.response_tail_ms,
            "rate_limit_wait_ms": self.rate_limit_wait_ms, "rate_limited": self.rate_limited,
            "ratelimit_reset_unit": self.ratelimit_reset_unit,
            "rate_limiter": self.rate_limiter, "notes": list(self.notes),
            "unknown_resends": self.unknown_resends,
            "verified": self.verified, "verify_note": self.verify_note,
            "error_kind": self.error_kind,
            "error": None if self.error is None else str(self.error),
            "retry_reasons": self.retry_reasons,
            "violations": [v.as_dict() for v in self.violations],
            "attempts": [a.as_dict(chunk_timings) for a in self.attempts],
            "expected": {
                "status": self.expected.status, "items_accepted": self.expected.items_accepted,
                "items_deduplicated": self.expected.items_deduplicated,
                "sealed": self.expected.sealed, "missing": len(self.expected.missing),
                "too_large": list(self.expected.too_large),
                "faults": dict(self.expected.fault_counts),
            },
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None

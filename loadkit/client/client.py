"""Internal: ``BatchClient``, the 2-phase protocol with backpressure timing, retries, truth checks.

One client, used by the locust user, the notebook runner and ``loadkit send``::

    from loadkit import BatchClient, BatchSpec, ClientConfig, RetryPolicy

    config = ClientConfig(retry=RetryPolicy(resend="missing"))
    with BatchClient("http://127.0.0.1:8030", "tr_dev_…", config=config) as c:
        result = c.send(BatchSpec.parse(items="1000").batch(0))
        print(result.outcome, result.stall_fraction, result.violations)
        record = result.to_record(run_id="r1", worker_id="w0", user_id=0)

It is a **sync** ``httpx.Client`` on purpose: it cooperates with gevent under locust (never use
``httpx.AsyncClient`` there).

**Errors.** Calls that return a measurement never raise for target problems (no key, wrong
URL, server down, HTML or truncated answers, timeouts): ``send`` (a :class:`BatchResult`) and
``stream_items`` (an :class:`Attempt`) record them as a typed
:class:`~loadkit.errors.TargetError`. Calls that return the target's data, ``create_batch``
(a :class:`CreatedBatch`), ``retrieve_batch`` (a :class:`~loadkit.wire.RetrieveAnswer`) and
``retrieve`` (its raw JSON), raise it, since there is nothing else to return. httpx's
exceptions become loadkit's through one table, :data:`loadkit.client.answers.TRANSPORT_ERRORS`.

The layers, each a short method: ``send`` → ``_send_batch`` (create, then streams, then
totals) → ``_create`` / ``_stream_with_retries`` → ``_stream_once`` (one request, its timed
body) → ``_read_stream_answer``; every answer is judged by :mod:`loadkit.client.judge`.

**Protocol**, as the official SDK: ``POST /api/v3/batches`` with ``runCount``, the sorted task
identifiers and the batch's idempotency key (a request idempotency key uuid per create, kept
across its retries); streaming is skipped when the answer is ``isCached``; then
``POST /api/v3/batches/{id}/items`` with ``Content-Type: application/x-ndjson`` and a chunked
body produced by a generator over the batch's **coalesced** chunks (~64 KiB, never one line
per chunk). Headers: ``Authorization: Bearer``, ``trigger-version``, ``x-trigger-api-version``,
``x-trigger-source: loadkit``, ``x-trigger-realtime-streams-version: v2``.

**Backpressure**: the body generator notes when it hands a chunk to the transport and when
the transport asks for the next one: the chunk's *write*. The client's sockets write
non-blocking (:mod:`loadkit.client.transport`), so the part of each write spent waiting for a full
send buffer to drain, i.e. for the target to read, is measured apart from the cost of the
write itself (framing, the kernel's copy: ~6 % of stream time on loopback): that wait is
the chunk's *stall*. Summed, as a fraction of the stream duration, and the largest single
one are recorded per attempt, next to the total write time (optionally every chunk,
``keep_chunk_timings=True``). A target that keeps up shows a stall of zero.
``send_buffer_bytes`` sets ``SO_SNDBUF`` on the client socket. Why: the kernel's send buffer
(autotuned up to MiBs) and the server's receive buffer absorb a whole small batch, so the
writer never blocks and a slow server shows up only as a long response tail, not as stall.
Measured on Linux loopback against a server enqueueing 2,000 items/s: a 1 MB batch stalls
~0.2 % of its stream with default buffers; an 8 MB batch with a 64 KiB send buffer stalls
~97 %. The server's receive buffer (~1 MB on loopback) still absorbs part of any batch; the
client cannot shrink that. Do not go below 64 KiB: smaller buffers meet delayed ACKs (~40 ms
per write on loopback) and throttle even a fast server.

**Retries** (policy: :class:`~loadkit.client.retry.RetryPolicy`): on ``sealed: false``, connection
errors (a connection dropped mid-stream included), timeouts, 408, 409, 429 and 5xx, with
``x-should-retry`` overriding; 429 waits for ``x-ratelimit-reset`` (epoch s or ms, recorded)
then ``retry-after``. Retries regenerate lines from the batch (``clean_chunks``); nothing sent
is buffered. What a retry sends (resend mode):

- ``full``: every clean line (the SDK's behaviour; server dedupe drops what it has);
- ``missing``: only the indices the server lacks, when they can be known: after a normal
  ``sealed: false`` answer to the first stream that matches the batch's expected outcome
  (``expected.missing``, cross-checked with ``enqueuedCount``), after the expected 400/422
  of an injected input fault (``expected.missing``: the generator knows what was enqueued
  before the bad line), after a retry answered as predicted, or when nothing reached the
  server (connect failure). After a dropped connection, a timeout, a 5xx/408/409/429 or an
  answer that contradicts the prediction, what was enqueued cannot be known: the retry then
  sends **every clean line** (sound because the server deduplicates by index), marked
  ``unknown_full`` and counted in ``BatchResult.unknown_resends``.

**Truth checks** (named :class:`~loadkit.client.result.Violation` on the result, never absorbed; the
pure functions of :mod:`loadkit.client.judge`):
the first stream's answer against ``batch.expected`` (status, error message, itemsAccepted,
itemsDeduplicated, sealed, enqueuedCount, expectedCount); each retry's answer against what the
client knows it sent; totals (accepted never above runCount, exactly runCount when every
attempt's answer was seen); ``verify=True`` retrieves the sealed batch and checks ``runs``
holds runCount distinct ids and the PAYLOAD_TOO_LARGE errors are ``expected.too_large``;
a retrieve answer that is not a Batch is the violation ``retrieve_malformed``. When
``verify_timeout`` runs out while the target's engine is still making runs, the batch is
*not checked in time* (``verified=None`` and ``verify_note``), not a violation, unless what was
seen already proves a mismatch (duplicate run ids, more runs than runCount, an unexpected
PAYLOAD_TOO_LARGE).
An injected fault's 400/422 that matches the expected status and message is not a violation
(the client goes on with a clean retry so that the batch seals); an unexpected 400/422 is a
violation and the batch fails (not retried).

**Malformed answers**: every answer is read by the parsers of :mod:`loadkit.wire`
(``parse_create_response``, ``parse_stream_response``, ``parse_retrieve_response``), which
check each field's type; a create or stream answer that is not the batch API's is a
:class:`~loadkit.errors.ProtocolError` on the result, never an exception out of ``send``.

**The secret key** never appears in results, errors, records or logs: everything the target
sends that the client keeps (bodies, parsed answers, the retry headers, transport error texts)
passes through one :class:`~loadkit.client.answers.Redactor` as it is read. It replaces the
client's own key and any ``Bearer <token>`` with ``<redacted>``, so a target that echoes the
``Authorization`` header cannot make the client store it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import numpy as np
import orjson

from loadkit import __version__, wire
from loadkit.client import answers, judge
from loadkit.client.answers import Redactor
from loadkit.client.body import TimedBody, lines_in_prefix
from loadkit.client.config import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY_TIMEOUT,
    SDK_VERSION,
    ClientConfig,
)
from loadkit.client.result import Attempt, BatchResult, ChunkTimings, End, Violation
from loadkit.client.retry import RetryPolicy
from loadkit.client.transport import MeteredTransport, WriteMeter
from loadkit.errors import (
    AuthError,
    ConfigError,
    MalformedAnswer,
    ProtocolError,
    TargetError,
    TargetTimeout,
)
from loadkit.generators import GeneratedBatch

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "SDK_VERSION",
    "BatchClient",
    "BatchResult",
    "CreatedBatch",
    "RetryPolicy",
]

logging.getLogger("httpx").setLevel(logging.WARNING)  # no INFO line per request in load runs

_NO_KEY = "no secret key: pass secret_key=… or set TRIGGER_SECRET_KEY (nothing was sent)"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~/-]*")
"""A path httpx neither escapes nor normalises (no ``%``, no dot segments)."""


@dataclass(frozen=True, slots=True)
class CreatedBatch:
    """The answer to a create (phase 1) and how it went."""

    id: str
    run_count: int
    is_cached: bool
    status: int
    create_ms: float
    """Latency of the successful request."""
    attempts: int
    rate_limited: int
    rate_limit_wait_ms: float
    ratelimit_reset_unit: str | None
    answer: dict[str, Any]


class _CreateTrack:
    """Counters a create keeps while retrying (copied to the result even when it fails)."""

    __slots__ = ("attempts", "create_ms", "limiters", "notes", "rate_limit_wait_ms",
                 "rate_limited", "reasons", "reset_unit", "status")

    def __init__(self) -> None:
        self.attempts = 0
        self.reasons: list[str] = []
        """Why each create attempt that was retried ended: ``connect``, ``dropped``,
        ``timeout`` or the HTTP status."""
        self.status: int | None = None
        self.create_ms: float | None = None
        self.rate_limited = 0
        self.rate_limit_wait_ms = 0.0
        self.reset_unit: str | None = None
        self.limiters: list[str] = []
        """Which limiter answered each 429 (``batch`` or ``api``)."""
        self.notes: list[str] = []

    def copy_to(self, result: BatchResult) -> None:
        result.create_attempts = self.attempts
        result.create_retry_reasons = self.reasons
        result.create_status = self.status
        result.create_ms = self.create_ms
        result.rate_limited = self.rate_limited
        result.rate_limit_wait_ms = self.rate_limit_wait_ms
        result.ratelimit_reset_unit = self.reset_unit
        result.rate_limiters = list(self.limiters)
        result.notes = list(self.notes)


def _failure_kind(error: TargetError, status: int | None) -> str:
    """The record's ``error_kind`` of a batch that failed with ``error``: ``rate_limited``
    when 429 answers used up its attempts, else the error's kind."""
    return "rate_limited" if status == 429 else error.kind


_RESET_NOTE = ("connection reset after an early error answer (the server closed that "
               "connection): request re-sent")


def _end_of(error: TargetError, exc: Exception, sent: int) -> End:
    """Why a request that raised ``exc`` (mapped to ``error``) ended."""
    if isinstance(error, TargetTimeout):
        return End.TIMEOUT
    if isinstance(error, ProtocolError):
        return End.PROTOCOL
    if isinstance(exc, httpx.ConnectError) and not sent:
        return End.CONNECT
    return End.DROPPED


class BatchClient:
    """A client of one target (base URL + secret key). Not thread-safe: one per user/thread.

    ``base_url``: the API root (``https://api.trigger.dev``, ``http://127.0.0.1:8030``), else
    ``$TRIGGER_API_URL``; there is deliberately no default, so that a load test never hits
    production by accident. ``secret_key``: else ``$TRIGGER_SECRET_KEY``; when there is none,
    ``send`` returns an ``auth`` error without sending anything.
    ``config``: a :class:`~loadkit.client.ClientConfig` (timeout, retry policy, chunk size,
    send buffer, chunk timings, verify …); or give its settings as keywords
    (``BatchClient(url, key, timeout=5, retry=RetryPolicy.none())``), checked the same way.
    ``transport``: an httpx transport (tests, ASGI apps); excludes ``send_buffer_bytes``.
    ``sleep``: the function used to wait (``time.sleep``; gevent patches it under locust).
    """

    def __init__(self, base_url: str | None = None, secret_key: str | None = None, *,
                 config: ClientConfig | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, **settings: Any) -> None:
        if config is None:
            config = ClientConfig(**{k: v for k, v in settings.items() if v is not None})
        elif settings:
            config = config.replace(**settings)
        self.config = config
        self.base_url = self._url(base_url)
        key = secret_key if secret_key is not None else os.environ.get("TRIGGER_SECRET_KEY")
        self._key = key.strip() if key and key.strip() else None
        self._clean = Redactor(self._key)
        if config.send_buffer_bytes is not None and transport is not None:
            raise ConfigError("send_buffer_bytes", config.send_buffer_bytes,
                              "None when a transport is given (set socket options on it)")
        self._rng = random.Random(config.seed)
        self._sleep = sleep
        self._reset_expected = False
        """The last answer was a stream's error: the real server may have closed that
        connection (its body unread), so the next request may meet a reset."""
        self.timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        self._meter: WriteMeter | None = None
        if transport is None:
            options = None
            if config.send_buffer_bytes is not None:
                options = [(socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes)]
            self._meter = WriteMeter()
            transport = MeteredTransport(self._meter, socket_options=options)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers(), timeout=self.timeout,
            transport=transport, follow_redirects=False, trust_env=config.trust_env,
        )
        self._create_url = self._merged(wire.create_path())

    @staticmethod
    def _url(base_url: str | None) -> str:
        url = base_url if base_url is not None else os.environ.get("TRIGGER_API_URL")
        if not url or not str(url).strip():
            raise ConfigError("base_url", base_url, "the API's URL, e.g. https://api.trigger.dev "
                              "or http://127.0.0.1:8030 (or set TRIGGER_API_URL)")
        url = str(url).strip().rstrip("/")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError("base_url", url, "an http:// or https:// URL with a host, e.g. "
                              "https://api.trigger.dev")
        return url

    def _merged(self, path: str) -> httpx.URL:
        """``path`` under the base URL exactly as httpx merges a relative URL, made ahead:
        given a relative one, httpx parses it and then the merged URL on every request
        (~70 µs); the create's is made once per client, a stream's parsed once."""
        raw = path.encode() if _PLAIN_PATH.fullmatch(path) else httpx.URL(path).raw_path
        base = self._http.base_url
        return base.copy_with(raw_path=base.raw_path + raw.lstrip(b"/"))

    def _headers(self) -> dict[str, str]:
        headers = {
            wire.Header.TRIGGER_VERSION: self.config.trigger_version,
            wire.Header.API_VERSION: wire.API_VERSION,
            wire.Header.SOURCE: wire.SOURCE,
            wire.Header.REALTIME_STREAMS_VERSION: "v2",
            "user-agent": f"loadkit/{__version__}",
        }
        if self._key is not None:
            headers[wire.Header.AUTHORIZATION] = f"Bearer {self._key}"
        return headers

    # -- settings, as attributes (read-only views of the config) --------------------------

    @property
    def retry(self) -> RetryPolicy:
        return self.config.retry

    @property
    def chunk_bytes(self) -> int | None:
        return self.config.chunk_bytes

    @property
    def send_buffer_bytes(self) -> int | None:
        return self.config.send_buffer_bytes

    @property
    def keep_chunk_timings(self) -> bool:
        return self.config.keep_chunk_timings

    @property
    def verify(self) -> bool:
        return self.config.verify

    @property
    def verify_timeout(self) -> float:
        return self.config.verify_timeout

    @property
    def has_key(self) -> bool:
        return self._key is not None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        key = "set" if self._key else "missing"
        return f"BatchClient({self.base_url!r}, key={key}, retry={self.retry.resend})"

    def _where(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _transport_error(self, exc: Exception, path: str, sent: int) -> TargetError:
        return answers.transport_error(exc, self._where(path), sent, self.timeout, self._clean)

    def _rate_limit_wait(self, status: int | None, headers: dict[str, str] | None
                         ) -> tuple[float, str | None] | None:
        """A 429's wait (seconds, and the unit of ``x-ratelimit-reset``), None when the
        answer is no 429 or names no usable wait: the one reading of rate-limit headers."""
        if status != 429 or not headers:
            return None
        wait = self.retry.rate_limit_wait(headers)
        return None if wait is None else (wait.seconds, wait.unit)

    # -- the whole batch ------------------------------------------------------------------

    def send(self, batch: GeneratedBatch) -> BatchResult:
        """Create, stream, retry and check one batch; never raises for target problems."""
        result = BatchResult(
            seq=batch.seq, run_count=batch.run_count, task_count=len(batch.task_identifiers),
            tasks=",".join(f"{name}:{count}" for name, count in batch.task_counts.items()),
            payload_bytes=batch.payload_bytes, expected=batch.expected,
            resend=self.retry.resend, started_at=time.time(), client_mode=self.config.mode,
        )
        t0 = time.perf_counter()
        try:
            self._send_batch(batch, result)
        except TargetError as exc:  # a target problem in a path not handled below
            result.error = exc
            result.error_kind = exc.kind
        finally:
            result.total_ms = (time.perf_counter() - t0) * 1000.0
            result.ended_at = result.started_at + result.total_ms / 1000.0
        if self.verify and result.sealed and result.batch_id is not None:
            self._verify(batch, result.batch_id, result)  # not part of the batch's timings
        return result

    def _send_batch(self, batch: GeneratedBatch, result: BatchResult) -> None:
        track = _CreateTrack()
        try:
            created = self._create(batch.run_count, batch.task_identifiers,
                                   batch.idempotency_key, track)
        except TargetError as exc:
            created = None
            result.error = exc
            result.error_kind = _failure_kind(exc, track.status)
        track.copy_to(result)
        if created is None:
            return
        result.batch_id = created.id
        if created.run_count != batch.run_count:
            result.violations.append(Violation(
                "create_run_count_mismatch", None, batch.run_count, created.run_count))
        if created.is_cached:
            result.cached = True
            if batch.idempotency_key is None:
                result.violations.append(Violation(
                    "cached_mismatch", None, False, True, "isCached without an idempotency key"))
            return
        self._stream_with_retries(batch, created.id, result)
        if result.sealed:
            found = judge.check_totals(result.run_count, result.items_accepted,
                                       result.attempts, result.expected)
            if found is not None:
                result.violations.append(found)

    # -- phase 1: create ------------------------------------------------------------------

    def create_batch(
        self,
        batch: GeneratedBatch | int,
        task_identifiers: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedBatch:
        """Create a batch (with the policy's create retries); raises :class:`TargetError`.

        Give a :class:`GeneratedBatch`, or ``run_count, task_identifiers, idempotency_key``.
        """
        if isinstance(batch, GeneratedBatch):
            run_count, tasks, key = batch.run_count, batch.task_identifiers, batch.idempotency_key
        else:
            run_count, tasks, key = int(batch), tuple(task_identifiers or ()), idempotency_key
        return self._create(run_count, tasks, key, _CreateTrack())

    def _create(self, run_count: int, tasks: Sequence[str], key: str | None,
                track: _CreateTrack) -> CreatedBatch:
        """The create with its retries: one request per attempt (:meth:`_create_once`)."""
        if self._key is None:
            raise AuthError(_NO_KEY)
        body: dict[str, Any] = {"runCount": run_count}
        if tasks:
            body["taskIdentifiers"] = sorted(set(tasks))
        if key is not None:
            body["idempotencyKey"] = key
        content = orjson.dumps(body)
        headers = {wire.Header.CONTENT_TYPE: wire.JSON_CONTENT_TYPE,
                   wire.Header.REQUEST_IDEMPOTENCY_KEY: str(uuid.uuid4())}
        policy = self.retry
        for number in range(1, policy.create_attempts + 1):
            track.attempts = number
            outcome = self._create_once(run_count, content, headers, track)
            if isinstance(outcome, CreatedBatch):
                return outcome
            error, reason, retryable, wait = outcome
            if not retryable or number == policy.create_attempts:
                raise error
            track.reasons.append(reason)
            if wait is not None:
                track.rate_limit_wait_ms += wait * 1000.0
            else:
                wait = policy.create_delay(number, self._rng)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_once(self, run_count: int, content: bytes, headers: dict[str, str],
                     track: _CreateTrack
                     ) -> CreatedBatch | tuple[TargetError, str, bool, float | None]:
        """One create request: the created batch, or (error, reason, retryable, 429 wait)."""
        path = wire.create_path()
        t0 = time.perf_counter()
        expecting, self._reset_expected = self._reset_expected, False
        try:
            resp = self._http.post(self._create_url, content=content, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = self._transport_error(exc, path, sent=0)
            if expecting and _end_of(error, exc, sent=0) is End.DROPPED:
                track.notes.append(f"create {track.attempts}: {_RESET_NOTE}")
                return self._create_once(run_count, content, headers, track)
            end = _end_of(error, exc, sent=0)
            return error, end.value, end is not End.PROTOCOL, None
        latency = (time.perf_counter() - t0) * 1000.0
        status = track.status = resp.status_code
        raw, value = self._clean.read(resp.content)
        where = self._where(path)
        if status in (200, 201, 202):
            created = answers.parsed(wire.parse_create_response, raw, value,
                                     f"{where} answered {status}")
            track.create_ms = latency
            return CreatedBatch(
                id=created.id,
                run_count=run_count if created.run_count is None else created.run_count,
                is_cached=created.is_cached, status=status, create_ms=latency,
                attempts=track.attempts, rate_limited=track.rate_limited,
                rate_limit_wait_ms=track.rate_limit_wait_ms,
                ratelimit_reset_unit=track.reset_unit, answer=value,
            )
        kept = self._clean.retry_headers(resp.headers)
        retryable = status != 401 and self.retry.status_retryable(status, kept)
        wait = self._rate_limit_wait(status, kept)
        if status == 429:
            track.rate_limited += 1
            track.limiters.append(wire.rate_limiter_of(
                resp.headers.get(wire.Header.CONTENT_TYPE), value))
            if wait is not None and wait[1] is not None:
                track.reset_unit = wait[1]
        error = answers.status_error(status, raw, value, where)
        return error, str(status), retryable, None if wait is None else wait[0]

    # -- phase 2: streams -----------------------------------------------------------------

    def stream_items(self, batch_id: str, chunks: Iterable[bytes], *,
                     lines: int | None = None) -> Attempt:
        """Stream ``chunks`` as one request (no retry); never raises for target problems.

        ``lines``: the number of NDJSON lines in ``chunks`` if known (else counted).
        """
        attempt = Attempt(number=1, sent="first", started_at=time.time())
        if self._key is None:
            attempt.end = End.AUTH
            attempt.error = AuthError(_NO_KEY)
            return attempt
        self._stream_once(batch_id, chunks, attempt, lines, None)
        return attempt

    def _stream_with_retries(self, batch: GeneratedBatch, batch_id: str,
                             result: BatchResult) -> None:
        """Stream attempts until the batch seals, fails, or the policy's attempts run out."""
        policy = self.retry
        missing: np.ndarray | None = np.arange(batch.run_count)
        slack = 0
        delay = 0.0
        for number in range(1, policy.attempts + 1):
            if delay > 0:
                self._sleep(delay)
            attempt, factory, lines = self._next_attempt(batch, number, missing, result)
            attempt.delay_ms = delay * 1000.0
            result.attempts.append(attempt)
            self._stream_once(batch_id, factory(), attempt, lines, factory)
            if attempt.reset_resent:
                result.notes.append(f"attempt {number}: {_RESET_NOTE}")
            verdict = judge.judge_stream(batch.expected, batch_id, attempt, missing, slack)
            missing, slack = self._apply(verdict, attempt, result), verdict.slack
            if result.sealed or result.error is not None:
                return
            if attempt.status == 429:
                result.rate_limited += 1
                result.rate_limiters.append(attempt.rate_limiter or "batch")
            if not self._retryable(attempt) or number == policy.attempts:
                if attempt.error is not None:
                    result.error = attempt.error
                    result.error_kind = _failure_kind(attempt.error, attempt.status)
                return
            delay = policy.stream_delay(number, self._rng)
            wait = self._rate_limit_wait(attempt.status, attempt.retry_headers)
            if wait is not None:
                delay = wait[0]
                attempt.rate_limit_wait_ms = delay * 1000.0
                result.rate_limit_wait_ms += delay * 1000.0
                if wait[1] is not None:
                    result.ratelimit_reset_unit = wait[1]

    def _next_attempt(self, batch: GeneratedBatch, number: int, missing: np.ndarray | None,
                      result: BatchResult
                      ) -> tuple[Attempt, Callable[[], Iterable[bytes]], int]:
        """Attempt ``number``: what it sends (the faulty first stream, every clean line, or
        only the missing ones), a factory of its chunks, and its line count. In ``sdk`` mode
        every chunk is one line, pulled item by item, and a retry sends every clean line."""
        cb = self.chunk_bytes
        n = batch.run_count
        sdk = self.config.mode == "sdk"
        if number == 1:
            return (Attempt(number=1, sent="first", started_at=time.time()),
                    batch.lines if sdk else partial(batch.chunks, cb), batch.expected.lines)
        indices: np.ndarray | None = None
        if missing is None or len(missing) == 0:
            sent = "unknown_full"
            result.unknown_resends += 1
        elif self.retry.resend == "missing" and len(missing) < n:
            sent, indices = "missing", missing
        else:
            sent = "full"
        if sdk:  # the SDK's tee: the whole stream again (sdk mode's resend is full)
            return (Attempt(number=number, sent=sent, started_at=time.time()),
                    batch.clean_lines, n)
        return (Attempt(number=number, sent=sent, started_at=time.time()),
                partial(batch.clean_chunks, indices, cb),
                n if indices is None else len(indices))

    @staticmethod
    def _apply(verdict: judge.Judgement, attempt: Attempt,
               result: BatchResult) -> np.ndarray | None:
        """Put a judgement on the result; return what the server lacks now."""
        result.violations.extend(verdict.violations)
        if verdict.note is not None:
            result.notes.append(f"attempt {attempt.number}: {verdict.note}")
        if verdict.expected_error:
            attempt.end = End.EXPECTED_ERROR
        if verdict.sealed:
            result.sealed = True
            result.sealed_attempt = attempt.number
        elif verdict.ends_batch:
            result.error = attempt.error
            result.error_kind = (attempt.error.kind if attempt.error is not None
                                 else "status" if attempt.end is End.STATUS else "protocol")
        return verdict.missing

    def _retryable(self, attempt: Attempt) -> bool:
        end = attempt.end
        if end in (End.NOT_SEALED, End.EXPECTED_ERROR, End.CONNECT, End.DROPPED, End.TIMEOUT):
            return True
        if end is End.STATUS and attempt.status is not None:
            if attempt.status in (400, 401, 422):
                return False
            return self.retry.status_retryable(attempt.status, attempt.retry_headers)
        return False

    def _stream_once(self, batch_id: str, chunks: Iterable[bytes], attempt: Attempt,
                     lines: int | None, regenerate: Callable[[], Iterable[bytes]] | None) -> None:
        """One stream request with its timed body; fills ``attempt``."""
        timings = ChunkTimings() if self.keep_chunk_timings else None
        body = TimedBody(chunks, timings, lines, self._meter)
        path = wire.stream_path(batch_id)
        expecting, self._reset_expected = self._reset_expected, False
        attempt.started_at = time.time()
        t0 = body.t0 = time.perf_counter()
        try:
            with self._http.stream(
                "POST", self._merged(path), content=body,
                headers={wire.Header.CONTENT_TYPE: wire.NDJSON_CONTENT_TYPE},
            ) as resp:
                t_head = time.perf_counter()
                raw = resp.read()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            t_end = time.perf_counter()
            body.close()
            if isinstance(exc, httpx.TimeoutException):
                body.end_pending(t_end)  # the write that never got accepted
            body.end_body()
            attempt.error = self._transport_error(exc, path, sent=body.bytes)
            attempt.end = _end_of(attempt.error, exc, body.bytes)
        else:
            t_end = time.perf_counter()
            body.close()
            body.end_body()
            attempt.status = resp.status_code
            if body.done and body.t_last is not None:
                attempt.response_tail_ms = (t_head - body.t_last) * 1000.0
            self._read_stream_answer(attempt, raw, resp.headers, path)
        attempt.duration_ms = (t_end - t0) * 1000.0
        attempt.timings = timings
        self._measured(attempt, body, lines, regenerate)
        if expecting and attempt.end is End.DROPPED and regenerate is not None:
            # the aftermath of the previous error answer, not the target's fault: once more
            attempt.end = attempt.error = None
            attempt.reset_resent = True
            self._stream_once(batch_id, regenerate(), attempt, lines, regenerate)
        elif attempt.status is not None and 400 <= attempt.status < 500:
            # the real route answers its 4xx before reading the whole body, then closes the
            # connection: the next request may meet the reset (a 5xx comes after the body)
            self._reset_expected = True

    @staticmethod
    def _measured(attempt: Attempt, body: TimedBody, lines: int | None,
                  regenerate: Callable[[], Iterable[bytes]] | None) -> None:
        """Copy a finished request's body measurements onto its attempt."""
        attempt.bytes = body.bytes
        attempt.chunks = body.n
        attempt.stall_ms = body.stall * 1000.0
        attempt.write_ms = body.write * 1000.0
        attempt.max_stall_ms = body.max_stall * 1000.0
        attempt.body_done = body.done
        if body.done:
            attempt.lines = body.lines or 0
        elif lines is None:
            attempt.lines = body.counted
        elif body.bytes and regenerate is not None:
            attempt.lines = lines_in_prefix(regenerate(), body.bytes)

    def _read_stream_answer(self, attempt: Attempt, raw: bytes, headers: httpx.Headers,
                            path: str) -> None:
        status = attempt.status
        assert status is not None
        raw, value = self._clean.read(raw)
        attempt.answer = value if isinstance(value, dict) else None
        where = f"{self._where(path)} answered {status}"
        if status == 200:
            try:
                answer = answers.parsed(wire.parse_stream_response, raw, value, where)
            except ProtocolError as exc:
                attempt.end = End.PROTOCOL
                attempt.error = exc
                return
            attempt.stream_answer = answer
            attempt.end = End.SEALED if answer.sealed else End.NOT_SEALED
            return
        attempt.end = End.STATUS
        attempt.error = answers.status_error(status, raw, value, self._where(path))
        attempt.retry_headers = self._clean.retry_headers(headers)
        if status == 429:
            attempt.rate_limiter = wire.rate_limiter_of(headers.get(wire.Header.CONTENT_TYPE),
                                                        value)

    # -- retrieve and verify --------------------------------------------------------------

    def _get_batch(self, batch_id: str, until: float | None = None) -> tuple[bytes, Any, str]:
        """``GET /api/v2/batches/{id}``: the cleaned body, its JSON and where it came from;
        raises :class:`TargetError` for anything but a 200. Until ``until`` (a
        ``perf_counter`` time) a 404 the retry policy retries (``x-should-retry: true``: the
        real server riding out replica lag) is asked again."""
        if self._key is None:
            raise AuthError(_NO_KEY)
        path = wire.retrieve_path(batch_id)
        while True:
            try:
                resp = self._http.get(path)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._transport_error(exc, path, sent=0) from None
            raw, value = self._clean.read(resp.content)
            status = resp.status_code
            if (status == 404 and until is not None and time.perf_counter() < until
                    and self.retry.status_retryable(status, self._clean.retry_headers(
                        resp.headers))):
                self._sleep(0.05)
                continue
            if status != 200:
                raise answers.status_error(status, raw, value, self._where(path))
            return raw, value, f"{self._where(path)} answered 200"

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """The batch's JSON as the target sends it (cleaned of secrets); raises
        :class:`TargetError`. :meth:`retrieve_batch` reads it."""
        raw, value, where = self._get_batch(batch_id)
        return answers.parsed(dict, raw, value, where)

    def retrieve_batch(self, batch_id: str, until: float | None = None) -> wire.RetrieveAnswer:
        """The batch, read by :func:`loadkit.wire.parse_retrieve_response`; raises
        :class:`TargetError` (:class:`MalformedAnswer` for a JSON object that is not a Batch).
        ``until``: a ``perf_counter`` time up to which a retryable 404 is asked again."""
        raw, value, where = self._get_batch(batch_id, until)
        return answers.parsed(wire.parse_retrieve_response, raw, value, where)

    # -- cancel (loadkit cleanup) ---------------------------------------------------------

    def cancel_run(self, run_id: str) -> bool:
        """``POST /api/v2/runs/{runId}/cancel``: True when canceled (200, also for a run
        already finished or canceled), False when the target does not know the run (404).
        429 answers wait as their headers say and retryable failures back off as a create
        does, up to the policy's create attempts; then the :class:`TargetError` is raised."""
        if self._key is None:
            raise AuthError(_NO_KEY)
        path = wire.cancel_run_path(run_id)
        policy = self.retry
        for number in range(1, policy.create_attempts + 1):
            try:
                resp = self._http.post(path)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = self._transport_error(exc, path, sent=0)
                if _end_of(error, exc, sent=0) is End.PROTOCOL or number == policy.create_attempts:
                    raise error from None
                self._sleep(policy.create_delay(number, self._rng))
                continue
            status = resp.status_code
            if status == 200:
                return True
            if status == 404:
                return False
            raw, value = self._clean.read(resp.content)
            kept = self._clean.retry_headers(resp.headers)
            if status == 401 or not policy.status_retryable(status, kept) \
                    or number == policy.create_attempts:
                raise answers.status_error(status, raw, value, self._where(path))
            wait = self._rate_limit_wait(status, kept)
            self._sleep(wait[0] if wait is not None else policy.create_delay(number, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover

    def _verify(self, batch: GeneratedBatch, batch_id: str, result: BatchResult) -> None:
        """Retrieve the sealed batch until its runs are made (or ``verify_timeout`` runs out)
        and check them (:func:`loadkit.client.judge.judge_runs`); sets ``result.verified``
        (and ``verify_note`` when not checked in time)."""
        deadline = time.perf_counter() + self.verify_timeout
        while True:
            try:
                seen = self.retrieve_batch(batch_id, deadline)
            except MalformedAnswer as exc:  # a JSON object, but not a Batch
                result.verified = False
                result.violations.append(Violation("retrieve_malformed", None, "a Batch",
                                                   str(exc)))
                return
            except TargetError as exc:
                result.verified = False
                result.violations.append(Violation("retrieve_failed", None, 200, exc.kind,
                                                   str(exc)))
                return
            verdict = judge.judge_runs(batch.expected, seen)
            if verdict.done or time.perf_counter() >= deadline:
                break
            self._sleep(0.05)
        result.violations.extend(verdict.violations)
        result.verified = verdict.verified
        if result.verified is None:
            result.verify_note = (
                f"not verified within verify_timeout={self.verify_timeout:g} s: the batch is "
                f"{seen.status} with {len(seen.runs)} of {batch.run_count} runs made so far; "
                "raise verify_timeout for a slow engine")

"""``BatchClient``: the 2-phase batch protocol with backpressure timing, retries and truth checks.

One client, used by the locust user, the notebook runner and ``loadkit send``::

    from loadkit import BatchClient, BatchSpec, RetryPolicy

    with BatchClient("http://127.0.0.1:8030", "tr_dev_…", retry=RetryPolicy(resend="missing")) as c:
        result = c.send(BatchSpec.parse(items="1000").batch(0))
        print(result.outcome, result.stall_fraction, result.violations)
        record = result.to_record(run_id="r1", worker_id="w0", user_id=0)

It is a **sync** ``httpx.Client`` on purpose: it cooperates with gevent under locust (never use
``httpx.AsyncClient`` there). ``send`` never raises for target problems (no key, wrong URL,
server down, HTML or truncated answers, timeouts): they become a typed
:class:`~loadkit.errors.TargetError` on the :class:`~loadkit.result.BatchResult`.

**Protocol**, as the official SDK: ``POST /api/v3/batches`` with ``runCount``, the sorted task
identifiers and the batch's idempotency key (a request idempotency key uuid per create, kept
across its retries); streaming is skipped when the answer is ``isCached``; then
``POST /api/v3/batches/{id}/items`` with ``Content-Type: application/x-ndjson`` and a chunked
body produced by a generator over the batch's **coalesced** chunks (~64 KiB, never one line
per chunk). Headers: ``Authorization: Bearer``, ``trigger-version``, ``x-trigger-api-version``,
``x-trigger-source: loadkit``, ``x-trigger-realtime-streams-version: v2``.

**Backpressure**: the body generator notes when it hands a chunk to the transport and when
the transport asks for the next one: the chunk's *write*. The client's sockets write
non-blocking (:mod:`loadkit.transport`), so the part of each write spent waiting for a full
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

**Retries** (policy: :class:`~loadkit.retry.RetryPolicy`): on ``sealed: false``, connection
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

**Truth checks** (named :class:`~loadkit.result.Violation` on the result, never absorbed):
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
passes through one helper, ``BatchClient._clean``, as it is read. It replaces the client's own
key and any ``Bearer <token>`` with ``<redacted>``, so a target that echoes the
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson

from loadkit import __version__, wire
from loadkit.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    ProtocolError,
    StatusError,
    TargetError,
    TargetTimeout,
)
from loadkit.generators import GeneratedBatch
from loadkit.result import Attempt, BatchResult, ChunkTimings, Violation
from loadkit.retry import RetryPolicy
from loadkit.transport import MeteredTransport, WriteMeter

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

SDK_VERSION = "4.8.3"
"""Sent as ``trigger-version``: the SDK release whose wire behaviour loadkit matches."""
DEFAULT_TIMEOUT = 330.0
"""Seconds the client waits for any one request (the one default of ``BatchClient``, the
``timeout`` run option and ``loadkit send``): longer than the real server's own 300 s request
timeout, so its 408 is seen and a slow ingest tail is not cut short and re-sent (the SDK has
no client timeout at all)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection (at most the request timeout)."""
DEFAULT_VERIFY_TIMEOUT = 10.0
"""Seconds ``verify=True`` polls a sealed batch while the target's engine makes its runs."""
REDACTED = "<redacted>"
_BEARER = r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"
"""``Bearer <token>`` (RFC 6750 token characters); the word and spacing are kept."""
_BEARER_TEXT = re.compile(_BEARER)
_BEARER_RAW = re.compile(_BEARER.encode())
_SNIPPET = 120
_T = TypeVar("_T")
_RETRY_HEADERS = (wire.Header.SHOULD_RETRY, wire.Header.RATELIMIT_LIMIT,
                  wire.Header.RATELIMIT_REMAINING, wire.Header.RATELIMIT_RESET,
                  wire.Header.RETRY_AFTER)


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

    __slots__ = ("attempts", "create_ms", "rate_limit_wait_ms", "rate_limited", "reasons",
                 "reset_unit", "status")

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


class _TimedBody:
    """The request body: yields the chunks and times each one's write.

    A chunk's write lasts from handing it to the transport (the yield) until the transport
    asks for the next one: ``write`` (framing, the kernel's copy, any wait). Its *stall* is
    the part the socket made it wait for the target (``meter``: :mod:`loadkit.transport`);
    when the write did not go through the metered socket (a transport given by the caller),
    nothing tells the wait from the copy and the stall is the whole write. The chunked
    body's end marker is written after the last chunk; its wait is charged to that chunk.
    ``lines`` is the known number of lines in the whole body (None: count them per chunk,
    which costs ~20 µs per 64 KiB chunk, so ``send`` passes the count it knows).
    """

    __slots__ = ("_gen", "bytes", "chunks", "counted", "done", "last_stall", "lines",
                 "max_stall", "meter", "n", "pending_blocked", "pending_since", "pending_writes",
                 "stall", "t0", "t_last", "timings", "write")

    def __init__(self, chunks: Iterable[bytes], timings: ChunkTimings | None,
                 lines: int | None, meter: WriteMeter | None) -> None:
        self.chunks = chunks
        self.timings = timings
        self.lines = lines
        self.meter = meter
        self.counted = 0
        self.bytes = 0
        self.n = 0
        self.stall = 0.0
        self.max_stall = 0.0
        self.last_stall = 0.0
        self.write = 0.0
        self.done = False
        self.t0 = time.perf_counter()
        self.t_last: float | None = None
        self.pending_since: float | None = None
        self.pending_blocked = 0.0
        self.pending_writes = 0
        self._gen = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self._gen

    def close(self) -> None:
        self._gen.close()

    def _stalled(self, elapsed: float) -> float:
        """The pending write's stall, ``elapsed`` seconds after it was handed over."""
        meter = self.meter
        if meter is None or meter.writes == self.pending_writes:
            return elapsed
        return meter.blocked - self.pending_blocked

    def end_pending(self, t_end: float) -> None:
        """Count the write that was still pending when the request failed at ``t_end``."""
        if self.pending_since is not None:
            elapsed = t_end - self.pending_since
            stalled = self._stalled(elapsed)
            self.write += elapsed
            self.stall += stalled
            self.max_stall = max(self.max_stall, stalled)
            self.pending_since = None

    def end_body(self) -> None:
        """Once the request is over: count the wait of the body's end marker, if any."""
        meter = self.meter
        if meter is None or not self.done:
            return
        extra = meter.blocked - self.pending_blocked
        if extra <= 0.0:
            return
        self.pending_blocked = meter.blocked
        self.stall += extra
        self.write += extra
        self.last_stall += extra
        self.max_stall = max(self.max_stall, self.last_stall)
        timings = self.timings
        if timings is not None and len(timings):
            timings.stall_ms[-1] += extra * 1000.0
            timings.write_ms[-1] += extra * 1000.0

    def _run(self) -> Iterator[bytes]:
        perf = time.perf_counter
        timings = self.timings
        meter = self.meter
        count = self.lines is None
        for chunk in self.chunks:
            size = len(chunk)
            if not size:
                continue
            if meter is not None:
                self.pending_blocked = meter.blocked
                self.pending_writes = meter.writes
            t = perf()
            self.pending_since = t
            yield chunk
            elapsed = perf() - t
            stalled = self._stalled(elapsed)
            self.pending_since = None
            self.bytes += size
            self.n += 1
            self.write += elapsed
            self.stall += stalled
            self.last_stall = stalled
            self.max_stall = max(self.max_stall, stalled)
            if count:
                self.counted += chunk.count(b"\n")
            if timings is not None:
                timings.at_ms.append((t - self.t0) * 1000.0)
                timings.write_ms.append(elapsed * 1000.0)
                timings.stall_ms.append(stalled * 1000.0)
                timings.size.append(size)
        if count:
            self.lines = self.counted
        if meter is not None:
            self.pending_blocked = meter.blocked
        self.t_last = perf()
        self.done = True


def _snippet(raw: bytes) -> str:
    text = raw[:_SNIPPET].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(raw) > _SNIPPET else "")


class BatchClient:
    """A client of one target (base URL + secret key). Not thread-safe: one per user/thread.

    ``base_url``: the API root (``https://api.trigger.dev``, ``http://127.0.0.1:8030``), else
    ``$TRIGGER_API_URL``; there is deliberately no default, so that a load test never hits
    production by accident. ``secret_key``: else ``$TRIGGER_SECRET_KEY``; when there is none,
    ``send`` returns an ``auth`` error without sending anything.
    ``chunk_bytes``: body chunk size (default: the batch spec's, 64 KiB).
    ``timeout``: seconds or an ``httpx.Timeout`` (default :data:`DEFAULT_TIMEOUT`).
    ``retry``: the :class:`RetryPolicy` (default: SDK parity).
    ``transport``: an httpx transport (tests, ASGI apps); excludes ``send_buffer_bytes``.
    ``keep_chunk_timings``: keep every chunk's write timing on each attempt.
    ``send_buffer_bytes``: ``SO_SNDBUF`` for the client socket (see the module docstring).
    ``verify``: after sealing, retrieve the batch and check its runs (polls up to
    ``verify_timeout`` seconds, default :data:`DEFAULT_VERIFY_TIMEOUT`, while the target's
    engine makes the runs).
    ``seed``: seeds retry jitter (reproducible delays in tests).
    ``sleep``: the function used to wait (``time.sleep``; gevent patches it under locust).
    """

    def __init__(
        self,
        base_url: str | None = None,
        secret_key: str | None = None,
        *,
        chunk_bytes: int | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        keep_chunk_timings: bool = False,
        send_buffer_bytes: int | None = None,
        verify: bool = False,
        verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
        seed: int | None = None,
        trigger_version: str = SDK_VERSION,
        sleep: Callable[[float], None] = time.sleep,
        trust_env: bool = True,
    ) -> None:
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
        self.base_url = url
        key = secret_key if secret_key is not None else os.environ.get("TRIGGER_SECRET_KEY")
        self._key = key.strip() if key and key.strip() else None
        self._key_raw = self._key.encode() if self._key else None
        if chunk_bytes is not None and (isinstance(chunk_bytes, bool) or int(chunk_bytes) < 1):
            raise ConfigError("chunk_bytes", chunk_bytes, "a positive number of bytes")
        self.chunk_bytes = int(chunk_bytes) if chunk_bytes is not None else None
        if send_buffer_bytes is not None and int(send_buffer_bytes) < 1:
            raise ConfigError("send_buffer_bytes", send_buffer_bytes, "a positive number of bytes")
        if send_buffer_bytes is not None and transport is not None:
            raise ConfigError("send_buffer_bytes", send_buffer_bytes,
                              "None when a transport is given (set socket options on it)")
        self.send_buffer_bytes = send_buffer_bytes
        self.retry = retry if retry is not None else RetryPolicy()
        self.keep_chunk_timings = keep_chunk_timings
        self.verify = verify
        if (isinstance(verify_timeout, bool) or not isinstance(verify_timeout, (int, float))
                or not 0 <= verify_timeout < float("inf")):
            raise ConfigError("verify_timeout", verify_timeout, "seconds >= 0, e.g. 10")
        self.verify_timeout = float(verify_timeout)
        self._rng = random.Random(seed)
        self._sleep = sleep
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout = httpx.Timeout(float(timeout), connect=min(float(timeout), CONNECT_TIMEOUT))
        self.timeout = timeout
        self._meter: WriteMeter | None = None
        if transport is None:
            options = None
            if send_buffer_bytes is not None:
                options = [(socket.SOL_SOCKET, socket.SO_SNDBUF, int(send_buffer_bytes))]
            self._meter = WriteMeter()
            transport = MeteredTransport(self._meter, socket_options=options)
        headers = {
            wire.Header.TRIGGER_VERSION: trigger_version,
            wire.Header.API_VERSION: wire.API_VERSION,
            wire.Header.SOURCE: wire.SOURCE,
            wire.Header.REALTIME_STREAMS_VERSION: "v2",
            "user-agent": f"loadkit/{__version__}",
        }
        if self._key is not None:
            headers[wire.Header.AUTHORIZATION] = f"Bearer {self._key}"
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport,
            follow_redirects=False, trust_env=trust_env,
        )

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

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def _clean(self, value: Any) -> Any:
        """``value`` (text, raw bytes or parsed JSON from the target) with the client's key
        and any ``Bearer <token>`` replaced by ``<redacted>``: the one redaction of target
        text, applied where answers are read, before anything is stored."""
        if isinstance(value, str):  # the key first: a Bearer match could stop inside it
            if self._key:
                value = value.replace(self._key, REDACTED)
            return _BEARER_TEXT.sub(r"\1" + REDACTED, value)
        if isinstance(value, bytes):
            if self._key_raw:
                value = value.replace(self._key_raw, REDACTED.encode())
            return _BEARER_RAW.sub(rb"\1" + REDACTED.encode(), value)
        if isinstance(value, dict):
            return {self._clean(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(v) for v in value]
        return value

    def _read(self, raw: bytes) -> tuple[bytes, Any]:
        """An answer body as read: the body and its parsed JSON (None when it is not JSON),
        both cleaned of secrets (the parsed strings again, in case of JSON escapes)."""
        raw = self._clean(raw)
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        return raw, self._clean(parsed)

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
        if self._key is None:
            raise AuthError("no secret key: pass secret_key=… or set TRIGGER_SECRET_KEY "
                            "(nothing was sent)")
        body: dict[str, Any] = {"runCount": run_count}
        if tasks:
            body["taskIdentifiers"] = sorted(set(tasks))
        if key is not None:
            body["idempotencyKey"] = key
        content = orjson.dumps(body)
        headers = {
            wire.Header.CONTENT_TYPE: wire.JSON_CONTENT_TYPE,
            wire.Header.REQUEST_IDEMPOTENCY_KEY: str(uuid.uuid4()),
        }
        policy = self.retry
        path = wire.create_path()
        for attempt in range(1, policy.create_attempts + 1):
            track.attempts = attempt
            wait: float | None = None
            t0 = time.perf_counter()
            try:
                resp = self._http.post(path, content=content, headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = self._transport_error(exc, path, sent=0)
                retryable = not isinstance(error, ProtocolError)
                reason = ("timeout" if isinstance(error, TargetTimeout)
                          else "connect" if isinstance(exc, httpx.ConnectError) else "dropped")
            else:
                latency = (time.perf_counter() - t0) * 1000.0
                status = resp.status_code
                track.status = status
                raw, parsed = self._read(resp.content)
                if status in (200, 201, 202):
                    created = self._parsed(wire.parse_create_response, raw, parsed, status, path)
                    track.create_ms = latency
                    return CreatedBatch(
                        id=created.id,
                        run_count=run_count if created.run_count is None else created.run_count,
                        is_cached=created.is_cached, status=status,
                        create_ms=latency, attempts=attempt, rate_limited=track.rate_limited,
                        rate_limit_wait_ms=track.rate_limit_wait_ms,
                        ratelimit_reset_unit=track.reset_unit, answer=parsed,
                    )
                error = self._status_error(status, raw, parsed, path)
                reason = str(status)
                kept = self._retry_headers(resp.headers)
                retryable = status != 401 and policy.status_retryable(status, kept)
                if status == 429:
                    track.rate_limited += 1
                    rl = policy.rate_limit_wait(kept)
                    if rl is not None:
                        wait = rl.seconds
                        if rl.unit is not None:
                            track.reset_unit = rl.unit
            if not retryable or attempt == policy.create_attempts:
                raise error
            track.reasons.append(reason)
            if wait is not None:
                track.rate_limit_wait_ms += wait * 1000.0
            else:
                wait = policy.create_delay(attempt, self._rng)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- phase 2: one stream --------------------------------------------------------------

    def stream_items(self, batch_id: str, chunks: Iterable[bytes], *,
                     lines: int | None = None) -> Attempt:
        """Stream ``chunks`` as one request (no retry); never raises for target problems.

        ``lines``: the number of NDJSON lines in ``chunks`` if known (else counted).
        """
        attempt = Attempt(number=1, sent="first", started_at=time.time())
        if self._key is None:
            attempt.reason = "auth"
            attempt.error = AuthError("no secret key: pass secret_key=… or set "
                                      "TRIGGER_SECRET_KEY (nothing was sent)")
            return attempt
        self._stream_once(batch_id, chunks, attempt, lines, None)
        return attempt

    def _stream_once(self, batch_id: str, chunks: Iterable[bytes], attempt: Attempt,
                     lines: int | None, regenerate: Callable[[], Iterable[bytes]] | None) -> None:
        timings = ChunkTimings() if self.keep_chunk_timings else None
        body = _TimedBody(chunks, timings, lines, self._meter)
        path = wire.stream_path(batch_id)
        t_head: float | None = None
        attempt.started_at = time.time()
        t0 = body.t0 = time.perf_counter()
        try:
            with self._http.stream(
                "POST", path, content=body,
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
            error = self._transport_error(exc, path, sent=body.bytes)
            attempt.error = error
            attempt.reason = (
                "timeout" if isinstance(error, TargetTimeout)
                else "protocol" if isinstance(error, ProtocolError)
                else "connect" if isinstance(exc, httpx.ConnectError) and not body.bytes
                else "dropped"
            )
        else:
            t_end = time.perf_counter()
            body.close()
            body.end_body()
            status = resp.status_code
            attempt.status = status
            if body.done and body.t_last is not None:
                attempt.response_tail_ms = (t_head - body.t_last) * 1000.0
            self._read_stream_answer(attempt, status, raw, resp.headers, path)
        attempt.duration_ms = (t_end - t0) * 1000.0
        attempt.bytes = body.bytes
        attempt.chunks = body.n
        attempt.stall_ms = body.stall * 1000.0
        attempt.write_ms = body.write * 1000.0
        attempt.max_stall_ms = body.max_stall * 1000.0
        attempt.body_done = body.done
        attempt.timings = timings
        if body.done:
            attempt.lines = body.lines or 0
        elif lines is None:
            attempt.lines = body.counted
        elif body.bytes and regenerate is not None:
            attempt.lines = _lines_in_prefix(regenerate(), body.bytes)

    def _read_stream_answer(self, attempt: Attempt, status: int, raw: bytes,
                            headers: httpx.Headers, path: str) -> None:
        raw, parsed = self._read(raw)
        attempt.answer = parsed if isinstance(parsed, dict) else None
        if status == 200:
            try:
                answer = self._parsed(wire.parse_stream_response, raw, parsed, status, path)
            except ProtocolError as exc:
                attempt.reason = "protocol"
                attempt.error = exc
                return
            attempt.stream_answer = answer
            attempt.reason = "sealed" if answer.sealed else "not_sealed"
            return
        attempt.reason = str(status)
        attempt.error = self._status_error(status, raw, parsed, path)
        attempt.retry_headers = self._retry_headers(headers)

    def _retry_headers(self, headers: httpx.Headers) -> dict[str, str]:
        """The answer's retry-related headers, cleaned (what the retry policy reads)."""
        return {k: self._clean(headers[k]) for k in _RETRY_HEADERS if k in headers}

    # -- errors ---------------------------------------------------------------------------

    def _transport_error(self, exc: Exception, path: str, sent: int) -> TargetError:
        where = f"{self.base_url}{path}"
        detail = self._clean(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.TimeoutException):
            what, limit = _timeout_of(exc, self.timeout)
            error: TargetError = TargetTimeout(
                f"{where}: no progress within {limit} while {what} ({detail}); "
                "raise the client timeout or check the server")
        elif isinstance(exc, httpx.ConnectError):
            error = ConnectError(
                f"cannot connect to {where}: {detail}; check the URL (TRIGGER_API_URL) and that "
                "the server is running")
        elif isinstance(exc, httpx.TransportError) and not isinstance(
                exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.ProxyError)):
            error = ConnectError(
                f"{where}: the connection was dropped after {sent} body bytes ({detail})")
        else:
            error = ProtocolError(f"{where}: {detail}")
        return error

    def _status_error(self, status: int, raw: bytes, parsed: Any, path: str) -> TargetError:
        """The error of an unexpected status (``raw``/``parsed`` as :meth:`_read` gives them)."""
        where = f"{self.base_url}{path}"
        message = _error_message(raw, parsed)
        if status == 401:
            return AuthError(
                f"{where} answered 401 ({message}): check that the secret key "
                "(TRIGGER_SECRET_KEY) is one this target accepts")
        return StatusError(f"{where} answered {status}: {message}")

    def _parsed(self, parse: Callable[[Any], _T], raw: bytes, parsed: Any, status: int,
                path: str) -> _T:
        """``parse(parsed)`` (a :mod:`loadkit.wire` parser), or a ProtocolError naming what is
        wrong with the answer (``raw``/``parsed`` as :meth:`_read` gives them)."""
        where = f"{self.base_url}{path} answered {status}"
        if not isinstance(parsed, dict):
            raise ProtocolError(
                f"{where} with {_describe(raw, parsed)} instead of the batch API's JSON: "
                f"{_snippet(raw)!r}; check the URL points at a Trigger.dev API")
        try:
            return parse(parsed)
        except ValueError as exc:
            raise ProtocolError(
                f"{where} with JSON that is not the batch API's answer ({exc}): "
                f"{_snippet(raw)!r}; check the URL points at a Trigger.dev API") from None

    # -- retrieve -------------------------------------------------------------------------

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """``GET /api/v2/batches/{id}``; raises :class:`TargetError`."""
        if self._key is None:
            raise AuthError("no secret key: pass secret_key=… or set TRIGGER_SECRET_KEY")
        path = wire.retrieve_path(batch_id)
        try:
            resp = self._http.get(path)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, path, sent=0) from None
        raw, parsed = self._read(resp.content)
        if resp.status_code != 200:
            raise self._status_error(resp.status_code, raw, parsed, path)
        return self._parsed(dict, raw, parsed, 200, path)

    # -- the whole batch ------------------------------------------------------------------

    def send(self, batch: GeneratedBatch) -> BatchResult:
        """Create, stream, retry and check one batch; never raises for target problems."""
        exp = batch.expected
        result = BatchResult(
            seq=batch.seq, run_count=batch.run_count, task_count=len(batch.task_identifiers),
            tasks=",".join(f"{name}:{count}" for name, count in batch.task_counts.items()),
            payload_bytes=batch.payload_bytes, expected=exp, resend=self.retry.resend,
            started_at=time.time(),
        )
        t0 = time.perf_counter()
        try:
            self._send(batch, result)
        except TargetError as exc:  # a target problem in a path not handled below
            result.error = exc
            result.error_kind = exc.kind
        finally:
            result.total_ms = (time.perf_counter() - t0) * 1000.0
            result.ended_at = result.started_at + result.total_ms / 1000.0
        if self.verify and result.sealed and result.batch_id is not None:
            self._verify(batch, result.batch_id, result)  # not part of the batch's timings
        return result

    def _send(self, batch: GeneratedBatch, result: BatchResult) -> None:
        track = _CreateTrack()
        try:
            created = self._create(batch.run_count, batch.task_identifiers,
                                   batch.idempotency_key, track)
        except TargetError as exc:
            created = None
            result.error = exc
            result.error_kind = "rate_limited" if track.status == 429 else exc.kind
        result.create_attempts = track.attempts
        result.create_retry_reasons = track.reasons
        result.create_status = track.status
        result.create_ms = track.create_ms
        result.rate_limited = track.rate_limited
        result.rate_limit_wait_ms = track.rate_limit_wait_ms
        result.ratelimit_reset_unit = track.reset_unit
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
                    "cached_mismatch", None, False, True,
                    "isCached without an idempotency key"))
            return
        self._stream_with_retries(batch, created.id, result)
        if result.sealed:
            self._check_totals(result)

    def _stream_with_retries(self, batch: GeneratedBatch, batch_id: str,
                             result: BatchResult) -> None:
        policy = self.retry
        exp = batch.expected
        cb = self.chunk_bytes
        n = batch.run_count
        # What the server lacks: an index array when known, None when it cannot be known.
        missing: np.ndarray | None = np.arange(n)
        delay = 0.0
        for number in range(1, policy.attempts + 1):
            indices: np.ndarray | None = None
            if number == 1:
                sent, lines = "first", exp.lines
                factory: Callable[[], Iterable[bytes]] = partial(batch.chunks, cb)
            else:
                if missing is None or len(missing) == 0:
                    sent = "unknown_full"
                    result.unknown_resends += 1
                elif policy.resend == "missing" and len(missing) < n:
                    sent, indices = "missing", missing
                else:
                    sent = "full"
                lines = n if indices is None else len(indices)
                factory = partial(batch.clean_chunks, indices, cb)
            if delay > 0:
                self._sleep(delay)
            attempt = Attempt(number=number, sent=sent, started_at=time.time(),
                              delay_ms=delay * 1000.0)
            result.attempts.append(attempt)
            self._stream_once(batch_id, factory(), attempt, lines, factory)
            missing = self._judge(batch, batch_id, attempt, missing, result)
            if result.sealed or result.error is not None:
                return
            if attempt.reason == "429":
                result.rate_limited += 1
            if not self._retryable(attempt) or number == policy.attempts:
                if attempt.error is not None:
                    result.error = attempt.error
                    result.error_kind = ("rate_limited" if attempt.reason == "429"
                                         else attempt.error.kind)
                return
            delay = policy.stream_delay(number, self._rng)
            if attempt.reason == "429" and attempt.retry_headers is not None:
                rl = policy.rate_limit_wait(attempt.retry_headers)
                if rl is not None:
                    delay = rl.seconds
                    attempt.rate_limit_wait_ms = delay * 1000.0
                    result.rate_limit_wait_ms += delay * 1000.0
                    if rl.unit is not None:
                        result.ratelimit_reset_unit = rl.unit

    def _retryable(self, attempt: Attempt) -> bool:
        reason = attempt.reason
        if reason in ("not_sealed", "expected_error", "connect", "dropped", "timeout"):
            return True
        if reason.isdigit():
            status = int(reason)
            if status in (400, 401, 422):
                return False
            return self.retry.status_retryable(status, attempt.retry_headers)
        return False

    # -- truth checks ---------------------------------------------------------------------

    def _judge(self, batch: GeneratedBatch, batch_id: str, attempt: Attempt,
               before: np.ndarray | None, result: BatchResult) -> np.ndarray | None:
        """Check one attempt's answer; return what the server lacks now (None: unknown).

        Sets ``result.sealed``, or ``result.error`` for an attempt that ends the batch.
        """
        exp = batch.expected
        n = batch.run_count
        number = attempt.number
        v = result.violations
        reason = attempt.reason
        answer = attempt.answer
        if reason == "connect":  # nothing reached the server
            return before
        if reason in ("dropped", "timeout") or (reason.isdigit() and int(reason) not in
                                                 (400, 401, 422)):
            return None
        if reason in ("protocol", "auth") or reason == "401":
            result.error = attempt.error
            result.error_kind = attempt.error.kind if attempt.error else "protocol"
            return None
        if reason.isdigit():  # 400 or 422
            status = int(reason)
            message = next((answer[k] for k in ("error", "message")
                            if answer is not None and isinstance(answer.get(k), str)), None)
            if number == 1 and status == exp.status and message == exp.error_message:
                attempt.reason = "expected_error"
                return np.asarray(exp.missing, dtype=np.int64)
            if number == 1 and status != exp.status:
                v.append(Violation("status_mismatch", number, exp.status, status,
                                   str(message)))
            elif number == 1:
                v.append(Violation("error_message_mismatch", number, exp.error_message,
                                   message))
            else:
                v.append(Violation("status_mismatch", number, 200, status,
                                   f"clean lines rejected: {message}"))
            result.error = attempt.error
            result.error_kind = attempt.error.kind if attempt.error else "status"
            return None
        # a 200 answer, read by wire.parse_stream_response
        s = attempt.stream_answer
        assert s is not None
        accepted, dedup, sealed = s.items_accepted, s.items_deduplicated, s.sealed
        count = len(v)
        if s.id is not None and s.id != batch_id:
            v.append(Violation("id_mismatch", number, batch_id, s.id))
        if sealed and s.run_count is not None and s.run_count != n:
            v.append(Violation("run_count_mismatch", number, n, s.run_count))
        if not sealed and s.expected_count != n:
            v.append(Violation("expected_count_mismatch", number, n, s.expected_count))
        if number == 1:
            if exp.status != 200:
                v.append(Violation("status_mismatch", number, exp.status, 200,
                                   f"expected {exp.error_message!r}"))
            else:
                for name, want, got in (("accepted_mismatch", exp.items_accepted, accepted),
                                        ("dedup_mismatch", exp.items_deduplicated, dedup),
                                        ("sealed_mismatch", exp.sealed, sealed)):
                    if want != got:
                        v.append(Violation(name, number, want, got))
                if not sealed and s.enqueued_count != exp.enqueued_count:
                    v.append(Violation("enqueued_mismatch", number, exp.enqueued_count,
                                       s.enqueued_count))
            known_now = (np.asarray(exp.missing, dtype=np.int64)
                         if len(v) == count and exp.status == 200 else None)
        else:
            lines = attempt.lines
            if before is not None:
                want_acc = len(before)
                for name, want, got in (("accepted_mismatch", want_acc, accepted),
                                        ("dedup_mismatch", lines - want_acc, dedup),
                                        ("sealed_mismatch", True, sealed)):
                    if want != got:
                        v.append(Violation(name, number, want, got, f"retry sent {attempt.sent}"))
            elif not (sealed and accepted == 0 and dedup == 0) and accepted + dedup != lines:
                v.append(Violation("count_mismatch", number, lines, accepted + dedup,
                                   "itemsAccepted + itemsDeduplicated ≠ lines sent"))
            known_now = np.zeros(0, dtype=np.int64) if len(v) == count and before is not None \
                else None
        if sealed:
            result.sealed = True
            result.sealed_attempt = number
            return np.zeros(0, dtype=np.int64)
        if known_now is not None and s.enqueued_count != n - len(known_now):
            v.append(Violation("enqueued_mismatch", number, n - len(known_now),
                               s.enqueued_count))
            known_now = None
        return known_now

    def _check_totals(self, result: BatchResult) -> None:
        accepted = result.items_accepted
        first = result.attempts[0] if result.attempts else None
        if first is not None and first.reason == "expected_error":
            accepted += result.expected.enqueued  # enqueued before the bad line, not in answers
        n = result.run_count
        unseen = any(a.reason in ("dropped", "timeout") or (a.reason.isdigit()
                     and int(a.reason) >= 408) for a in result.attempts)
        if accepted > n or (not unseen and accepted != n):
            result.violations.append(Violation(
                "total_accepted_mismatch", None, n, accepted,
                "itemsAccepted summed over the answers" + (
                    " (some attempts unanswered: at most runCount)" if unseen else "")))

    def _verify(self, batch: GeneratedBatch, batch_id: str, result: BatchResult) -> None:
        """Retrieve the sealed batch until its runs are made (or ``verify_timeout`` runs out)
        and check them; sets ``result.verified`` (and ``verify_note`` when not checked)."""
        exp = batch.expected
        n = batch.run_count
        v = result.violations
        before = len(v)
        deadline = time.perf_counter() + self.verify_timeout
        while True:
            try:
                seen = wire.parse_retrieve_response(self.retrieve(batch_id))
            except TargetError as exc:
                result.verified = False
                v.append(Violation("retrieve_failed", None, 200, exc.kind, str(exc)))
                return
            except ValueError as exc:  # a JSON object, but not a Batch
                result.verified = False
                v.append(Violation("retrieve_malformed", None, "a Batch", str(exc)))
                return
            done = seen.status in _FINAL_STATUSES or len(seen.runs) >= n
            if done or time.perf_counter() >= deadline:
                break
            self._sleep(0.05)
        runs = seen.runs
        distinct = len(set(runs))
        too_large = sorted(e.index for e in seen.errors if e.error_code == wire.PAYLOAD_TOO_LARGE)
        want = sorted(exp.too_large)
        # In time, everything is checked; timed out, only what the runs seen so far prove
        # (the engine may still add runs and errors, never remove them).
        if len(runs) > n or (done and len(runs) != n):
            v.append(Violation("runs_count_mismatch", None, n, len(runs)))
        if distinct != len(runs):
            v.append(Violation("runs_duplicate", None, len(runs), distinct))
        if (too_large != want if done
                else len(set(too_large)) != len(too_large) or not set(too_large) <= set(want)):
            v.append(Violation("too_large_mismatch", None, want, too_large))
        if len(v) > before:
            result.verified = False
        elif done:
            result.verified = True
        else:
            result.verified = None
            result.verify_note = (
                f"not verified within verify_timeout={self.verify_timeout:g} s: the batch is "
                f"{seen.status} with {len(runs)} of {n} runs made so far; raise verify_timeout "
                "for a slow engine")


_FINAL_STATUSES = frozenset({str(wire.BatchStatus.COMPLETED), str(wire.BatchStatus.PARTIAL_FAILED),
                             str(wire.BatchStatus.ABORTED)})


def _timeout_of(exc: httpx.TimeoutException, timeout: Any) -> tuple[str, str]:
    name, what = {
        httpx.ConnectTimeout: ("connect", "connecting"),
        httpx.ReadTimeout: ("read", "waiting for the answer"),
        httpx.WriteTimeout: ("write", "writing the body"),
        httpx.PoolTimeout: ("pool", "waiting for a free connection"),
    }.get(type(exc), ("read", "waiting"))
    seconds = getattr(timeout, name, None) if isinstance(timeout, httpx.Timeout) else None
    return what, (f"{seconds:g} s" if isinstance(seconds, (int, float)) else "the timeout")


def _lines_in_prefix(chunks: Iterable[bytes], nbytes: int) -> int:
    """Lines in the first ``nbytes`` of a regenerated body (whole chunks only were counted)."""
    total = lines = 0
    for chunk in chunks:
        if total >= nbytes:
            break
        take = chunk[: nbytes - total]
        lines += take.count(b"\n")
        total += len(take)
    return lines


def _describe(raw: bytes, parsed: Any = None) -> str:
    head = raw[:200].lstrip().lower()
    if not raw:
        return "an empty body"
    if parsed is not None:
        return f"a JSON {type(parsed).__name__}"
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "HTML"
    if head.startswith((b"{", b"[")):
        return "truncated or invalid JSON"
    return "text"


def _error_message(raw: bytes, parsed: Any) -> str:
    """The message of an error answer (``raw``/``parsed`` as ``BatchClient._read`` gives
    them): its ``error`` or ``message`` string, else a description and a snippet."""
    if isinstance(parsed, dict):
        for key in ("error", "message"):
            if isinstance(parsed.get(key), str):
                return parsed[key]
    if parsed is None:
        return _describe(raw) + ": " + repr(_snippet(raw))
    return repr(_snippet(raw))

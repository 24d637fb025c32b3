"""Internal: the reference server's ASGI app: routes, auth, create, stream, retrieve, stats.

Plain ASGI (no framework) because the stream endpoint reads its body straight from
``receive`` chunk by chunk, and because every microsecond per chunk shows in the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import random
import time
import weakref
from typing import Any

import orjson

from loadkit import wire
from loadkit.server.config import ServerConfig
from loadkit.server.engine import Engine
from loadkit.server.ingest import StreamIngest
from loadkit.server.openapi import openapi_document
from loadkit.server.ratelimit import TokenBucket
from loadkit.server.state import Batch, Stats, Store

__all__ = ["ReferenceApp"]

_CREATE = wire.CREATE_PATH
_STREAM_PREFIX, _STREAM_SUFFIX = wire.STREAM_PATH.split("{batch_id}")
_RETRIEVE_PREFIX = wire.RETRIEVE_PATH.split("{batch_id}")[0]
_RETRIEVE_V1_PREFIX = wire.RETRIEVE_V1_PATH.split("{batch_id}")[0]
_CANCEL_PREFIX, _CANCEL_SUFFIX = wire.CANCEL_RUN_PATH.split("{run_id}")
_PROBLEM_HEADERS = [(wire.Header.CONTENT_TYPE.encode(), wire.PROBLEM_CONTENT_TYPE.encode())]
_RETRY_AFTER = wire.Header.RETRY_AFTER.encode()
# wire names as bytes, encoded once for the hot path
_AUTHORIZATION = wire.Header.AUTHORIZATION.encode()
_CONTENT_TYPE = wire.Header.CONTENT_TYPE.encode()
_CONTENT_LENGTH = wire.Header.CONTENT_LENGTH.encode()
_SHOULD_RETRY = wire.Header.SHOULD_RETRY.encode()
_JSON_HEADERS = [(_CONTENT_TYPE, wire.JSON_CONTENT_TYPE.encode())]


def _iso(ts: float) -> str:
    return (
        _dt.datetime.fromtimestamp(ts, _dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class _Pacer:
    """Server-wide ingest rate cap: hands out time slots of ``n / rate`` seconds in turn.

    Slots follow one another on a fixed timetable: a consumer that wakes late (the event
    loop was busy, or the machine) does not push every later slot back, or the cap would
    read low on a loaded machine (measured: 1,894 items/s against a 2,000 cap over 3 s on
    an idle one). Lateness is made up within ``SLACK_S``; so, after idling, up to
    ``rate × SLACK_S`` items may pass at once, and over any longer window the rate holds.
    """

    SLACK_S = 0.05

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next_free = 0.0

    def reserve(self, n: int, now: float | None = None) -> float:
        """Seconds to wait before ``n`` more items may be enqueued (≤ 0: at once)."""
        now = time.monotonic() if now is None else now
        start = max(now - self.SLACK_S, self.next_free)
        self.next_free = start + n / self.rate
        return self.next_free - now


class ReferenceApp:
    """One server's state and its ASGI entry point."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.store = Store()
        self.stats = Stats()
        self.engine = Engine(self.config, self.store, self.stats)
        self._keys = {key: env for env, key in enumerate(self.config.secret_keys)}
        seed = self.config.seed
        self._faults = random.Random(f"faults:{seed}" if seed is not None else None)
        self._pacer = _Pacer(self.config.ingest_rate) if self.config.ingest_rate > 0 else None
        self._slow = self.config.enqueue_delay > 0 or self.config.ingest_rate > 0
        self._buckets: dict[int, TokenBucket] = {}
        self._api_buckets: dict[int, TokenBucket] = {}
        self._engine_task: asyncio.Task[None] | None = None
        self._openapi = orjson.dumps(openapi_document(self.config))
        self._closing: weakref.WeakSet[Any] = weakref.WeakSet()
        """Connections whose stream was answered an error before its body was read
        (``close_after_error``): the next request on one meets a reset."""

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_engine()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop_engine()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_engine(self) -> None:
        if self._engine_task is None:
            self._engine_task = asyncio.get_running_loop().create_task(self.engine.run())

    async def stop_engine(self) -> None:
        task, self._engine_task = self._engine_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._closing:
            transport = _transport_of(send)
            if transport is not None and transport in self._closing:
                # closed after its early error answer: this request meets a reset
                self._closing.discard(transport)
                return await _drop_connection(send)
        path: str = scope["path"]
        method: str = scope["method"]
        if path == _CREATE:
            if method != "POST":
                return await self._error(send, 405, wire.msg.method_not_allowed(method, "POST"))
            env = await self._auth(scope, send)
            if env is not None and not await self._api_limited(send, env):
                await self._timed(send, self._create(scope, receive, send, env))
        elif path.startswith(_STREAM_PREFIX) and path.endswith(_STREAM_SUFFIX):
            batch_id = path[len(_STREAM_PREFIX) : -len(_STREAM_SUFFIX)]
            if "/" in batch_id or not batch_id:
                return await self._error(send, 404, wire.msg.route_not_found(method, path))
            if method != "POST":
                return await self._error(send, 405, wire.msg.method_not_allowed(method, "POST"))
            # the real route checks the content type before the key (docs/batch-api.md 5.1)
            if not wire.is_ndjson_content_type(_header(scope, _CONTENT_TYPE)):
                self.stats.stream_requests += 1
                return await self._error(send, 415, wire.msg.unsupported_media_type())
            env = await self._auth(scope, send)
            if env is not None and not await self._api_limited(send, env, batch_id):
                if not self.config.close_after_error:
                    return await self._stream(scope, receive, send, env, batch_id)
                watch = _Watch(receive, send)
                await self._stream(scope, watch.receive, watch.send, env, batch_id)
                if watch.status >= 400 and not watch.body_read and watch.transport is not None:
                    self._closing.add(watch.transport)
        elif (path.startswith((_RETRIEVE_PREFIX, _RETRIEVE_V1_PREFIX))
              and "/" not in path[len(_RETRIEVE_PREFIX) :]):
            if method != "GET":
                return await self._error(send, 405, wire.msg.method_not_allowed(method, "GET"))
            env = await self._auth(scope, send)
            if env is not None and not await self._api_limited(send, env):
                v1 = path.startswith(_RETRIEVE_V1_PREFIX)
                await self._retrieve(send, env, path[len(_RETRIEVE_PREFIX) :], v1=v1)
        elif (path.startswith(_CANCEL_PREFIX) and path.endswith(_CANCEL_SUFFIX)
              and "/" not in path[len(_CANCEL_PREFIX) : -len(_CANCEL_SUFFIX)]):
            if method != "POST":
                return await self._error(send, 405, wire.msg.method_not_allowed(method, "POST"))
            env = await self._auth(scope, send)
            if env is not None and not await self._api_limited(send, env):
                await self._cancel(send, env, path[len(_CANCEL_PREFIX) : -len(_CANCEL_SUFFIX)])
        elif path == wire.STATS_PATH:
            if method == "GET":
                await self._json(send, 200, self.stats.snapshot(), count=False)
            elif method == "DELETE":
                self.stats.reset()
                await self._json(send, 200, self.stats.snapshot(), count=False)
            else:
                await self._error(send, 405, wire.msg.method_not_allowed(method, "GET or DELETE"))
        elif path == wire.OPENAPI_PATH and method == "GET":
            await self._raw(send, 200, self._openapi)
        else:
            await self._error(send, 404, wire.msg.route_not_found(method, path))
        return None

    # -- responses ------------------------------------------------------------------------

    async def _raw(
        self,
        send: Any,
        status: int,
        data: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        close: bool = False,
        count: bool = True,
    ) -> None:
        hdrs = [*_JSON_HEADERS, (_CONTENT_LENGTH, str(len(data)).encode())]
        if headers:
            hdrs += headers
        if close:
            hdrs.append((b"connection", b"close"))
        if count:
            self.stats.status_counts[status] += 1
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": data})

    async def _json(
        self,
        send: Any,
        status: int,
        body: Any,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        close: bool = False,
        count: bool = True,
    ) -> None:
        await self._raw(send, status, orjson.dumps(body), headers, close=close, count=count)

    async def _error(
        self,
        send: Any,
        status: int,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        close: bool = False,
    ) -> None:
        await self._json(send, status, wire.error_body(message), headers, close=close)

    async def _timed(self, send: Any, work: Any) -> None:
        """Run a handler under the request timeout; past it, answer 408 and close."""
        try:
            async with asyncio.timeout(self.config.request_timeout or None):
                await work
        except TimeoutError:
            self.stats.timeouts += 1
            await self._error(send, 408, wire.msg.request_timeout(), close=True)

    async def _auth(self, scope: dict[str, Any], send: Any) -> int | None:
        value = _header(scope, _AUTHORIZATION) or ""
        scheme, _, key = value.partition(" ")
        env = self._keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if env is None:
            await self._error(send, 401, wire.msg.unauthorized())
        return env

    # -- create ---------------------------------------------------------------------------

    async def _create(self, scope: dict[str, Any], receive: Any, send: Any, env: int) -> None:
        stats = self.stats
        stats.create_requests += 1
        limit = wire.CREATE_BODY_MAX_BYTES
        declared = _header(scope, _CONTENT_LENGTH)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._error(send, 413, wire.msg.body_too_large(int(declared), limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                stats.client_disconnects += 1
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                return await self._error(send, 413, wire.msg.body_too_large(size, limit))
            chunks.append(body)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if self.config.create_delay > 0:
            await asyncio.sleep(self.config.create_delay)
        if not raw.strip():
            return await self._error(send, 400, wire.msg.no_body())
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return await self._error(send, 400, wire.msg.invalid_body("not valid JSON"))
        detail = wire.create_body_error(body)
        if detail is not None:
            return await self._error(send, 400, wire.msg.invalid_body(detail))
        run_count: int = body["runCount"]
        if run_count > self.config.max_items:
            return await self._error(
                send, 400, wire.msg.run_count_over(run_count, self.config.max_items)
            )
        tasks = tuple(sorted(body.get("taskIdentifiers") or ()))
        key: str | None = body.get("idempotencyKey")
        cached = self.store.cached(env, key, tasks)
        if cached is not None:
            stats.batches_cached += 1
            return await self._json(
                send, 200, {"id": cached.id, "runCount": cached.run_count, "isCached": True}
            )
        if self.config.rate_limit is not None:
            bucket = self._buckets.get(env)
            if bucket is None:
                bucket = self._buckets[env] = TokenBucket(
                    self.config.rate_limit, self.config.rate_limit_reset_unit
                )
            headers = bucket.take(run_count)
            if headers is not None:
                stats.rate_limited += 1
                if bucket.never_enough(run_count):
                    message = wire.msg.rate_limit_over_bucket(run_count, bucket.limit.max_tokens)
                else:
                    message = wire.msg.rate_limited()
                return await self._error(send, 429, message, headers)
        batch = Batch(self.store.new_id(), env, run_count, tasks, key)
        self.store.add(batch)
        stats.batches_created += 1
        answer: dict[str, Any] = {"id": batch.id, "runCount": run_count, "isCached": False}
        if key is not None:
            answer["idempotencyKey"] = key
        return await self._json(send, 202, answer)

    # -- stream ---------------------------------------------------------------------------

    async def _stream(
        self, scope: dict[str, Any], receive: Any, send: Any, env: int, batch_id: str
    ) -> None:
        stats = self.stats
        stats.stream_requests += 1
        if not wire.batch_id_well_formed(batch_id):
            return await self._error(send, 400, wire.msg.invalid_batch_id(batch_id))
        batch = self.store.get(env, batch_id)
        if batch is None:
            return await self._error(send, 422, wire.msg.batch_not_found(batch_id))
        if batch.sealed:
            stats.streams_to_sealed += 1
            return await self._json(
                send,
                200,
                wire.stream_response(
                    batch.id,
                    items_accepted=0,
                    items_deduplicated=0,
                    sealed=True,
                    run_count=batch.run_count,
                ),
            )
        if batch.aborted:
            return await self._error(send, 422, wire.msg.batch_aborted(batch_id))
        # Fault decisions: always two draws per ingesting stream, so a seed replays exactly.
        cfg = self.config
        inject_error = self._faults.random() < cfg.error_rate
        inject_drop = self._faults.random() < cfg.drop_rate and not inject_error
        drop_after = self._faults.randint(1, 3) if inject_drop else 0
        should_retry = self._faults.random() < cfg.error_should_retry if inject_error else False
        ingest = StreamIngest(batch, stats, cfg.item_max_bytes, self._slow)
        timeout = cfg.request_timeout or None
        try:
            async with asyncio.timeout(timeout):
                if cfg.stream_delay > 0:
                    await asyncio.sleep(cfg.stream_delay)  # the body waits in the buffers
                outcome = await self._read(receive, ingest, inject_error, drop_after)
                if cfg.answer_delay > 0 and outcome == "done":
                    await asyncio.sleep(cfg.answer_delay)  # the body is read, the writer idle
        except TimeoutError:
            stats.timeouts += 1
            return await self._error(send, 408, wire.msg.request_timeout(), close=True)
        finally:
            if ingest.claimed:
                ingest.release()
        if outcome == "disconnect":
            stats.client_disconnects += 1
            return None
        if outcome == "drop" or inject_drop:
            stats.injected_drops += 1
            return await _drop_connection(send)
        if inject_error:
            stats.injected_errors += 1
            flag = b"true" if should_retry else b"false"
            return await self._error(send, cfg.error_status, wire.msg.injected_error(),
                                     [(_SHOULD_RETRY, flag)])
        if ingest.error is not None:
            return await self._error(send, ingest.error.status, ingest.error.message)
        if not batch.sealed and batch.enqueued == batch.run_count:
            batch.sealed = True
            batch.updated_at = time.time()
            stats.batches_sealed += 1
        if batch.sealed:
            answer = wire.stream_response(
                batch.id,
                items_accepted=ingest.accepted,
                items_deduplicated=ingest.deduplicated,
                sealed=True,
                run_count=batch.run_count,
            )
        else:
            answer = wire.stream_response(
                batch.id,
                items_accepted=ingest.accepted,
                items_deduplicated=ingest.deduplicated,
                sealed=False,
                enqueued_count=batch.enqueued,
                expected_count=batch.run_count,
                run_count=batch.run_count,
            )
        return await self._json(send, 200, answer)

    async def _read(
        self, receive: Any, ingest: StreamIngest, discard: bool, drop_after: int
    ) -> str:
        """Pull the body chunk by chunk into ``ingest``; returns how the reading ended."""
        chunks = 0
        got_body = False
        slow = self._slow
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return "disconnect"
            body = message.get("body", b"")
            if body:
                got_body = True
                chunks += 1
                if discard:
                    self.stats.bytes_read += len(body)
                else:
                    ingest.feed(body)
                    if slow:
                        if ingest.waiting and ingest.error is None:
                            ingest.resolve()
                        if ingest.claimed:
                            await self._pace(ingest)
                    if ingest.error is not None:
                        return "error"
                if drop_after and chunks >= drop_after:
                    return "drop"
            if not message.get("more_body", False):
                break
        if not got_body:
            return "empty"  # no items: answered as any body without items (not an error)
        if not discard:
            ingest.finish()
            if slow:
                await self._settle(ingest)
        return "done"

    async def _settle(self, ingest: StreamIngest) -> None:
        """Slow enqueue at the body's end: enqueue this stream's claims, then wait for the
        claims of other streams on indices this stream carries too; each one either becomes
        this stream's duplicate (enqueued there) or its own enqueue (released there)."""
        while True:
            if ingest.claimed:
                await self._pace(ingest)
            if not ingest.waiting or ingest.error is not None:
                return
            if ingest.resolve() and not ingest.claimed:
                await ingest.batch.wait_for_claims()

    async def _pace(self, ingest: StreamIngest) -> None:
        """Slow enqueue: ``ingest_concurrency`` items at a time take ``enqueue_delay``, and the
        server-wide ``ingest_rate`` cap hands out time slots. The body is not read meanwhile."""
        cfg = self.config
        delay = cfg.enqueue_delay
        pacer = self._pacer
        group = cfg.ingest_concurrency if delay > 0 else max(1, int(cfg.ingest_rate * 0.01))
        while ingest.claimed:
            n = min(group, len(ingest.claimed))
            wait = delay
            if pacer is not None:
                wait = max(wait, pacer.reserve(n))
            await asyncio.sleep(wait)
            ingest.commit(n)

    # -- retrieve -------------------------------------------------------------------------

    async def _retrieve(self, send: Any, env: int, batch_id: str, *, v1: bool = False) -> None:
        batch = self.store.get(env, batch_id)
        if batch is None:
            # the real route answers a retryable 404 to ride out replica lag
            return await self._json(send, 404, {"error": wire.msg.batch_not_found_retrieve()},
                                    [(_SHOULD_RETRY, b"true")])
        return await self._json(send, 200, batch.retrieve_v1(_iso) if v1
                                else batch.retrieve(_iso))

    # -- cancel a run ---------------------------------------------------------------------

    async def _cancel(self, send: Any, env: int, run_id: str) -> None:
        """``POST /api/v2/runs/{runId}/cancel``: 200 ``{"id"}`` for a run of this
        environment (again for one already canceled), else 404."""
        batch_id = "batch_" + run_id[4:].rpartition("_")[0] if run_id.startswith("run_") else ""
        batch = self.store.get(env, batch_id) if batch_id else None
        if batch is None or not batch.has_run(run_id):
            return await self._json(send, 404, {"error": wire.msg.run_not_found()})
        if run_id not in batch.canceled:
            batch.canceled.add(run_id)
            self.stats.runs_canceled += 1
        return await self._json(send, 200, {"id": run_id})

    # -- the general API rate limiter -----------------------------------------------------

    async def _api_limited(self, send: Any, env: int, grant_batch: str | None = None) -> bool:
        """Take a token of the general API limiter (``api_rate_limit``); answer its 429 and
        return True when there is none. A new batch's first item requests spend its grant
        instead (``grant_batch``: the stream's batch id)."""
        limit = self.config.api_rate_limit
        if limit is None:
            return False
        if grant_batch is not None:
            batch = self.store.get(env, grant_batch)
            if (batch is not None and batch.grant > 0
                    and time.monotonic() - batch.created_mono < wire.API_LIMIT_GRANT_TTL_S):
                batch.grant -= 1
                return False
        bucket = self._api_buckets.get(env)
        if bucket is None:
            bucket = self._api_buckets[env] = TokenBucket(limit, "ms")
        headers = bucket.take(1)
        if headers is None:
            return False
        self.stats.api_rate_limited += 1
        headers = [(k, v) for k, v in headers if k != _RETRY_AFTER]
        found = dict(headers)
        reset_ms = int(found[wire.Header.RATELIMIT_RESET.encode()])
        remaining = int(found[wire.Header.RATELIMIT_REMAINING.encode()])
        body = wire.api_rate_limit_body(remaining, limit.max_tokens, reset_ms,
                                        time.time() * 1000.0)
        data = orjson.dumps(body, option=orjson.OPT_INDENT_2)
        self.stats.status_counts[429] += 1
        await send({"type": "http.response.start", "status": 429, "headers": [
            *_PROBLEM_HEADERS, (_CONTENT_LENGTH, str(len(data)).encode()), *headers]})
        await send({"type": "http.response.body", "body": data})
        return True


def _transport_of(send: Any) -> Any:
    """The connection's asyncio transport behind uvicorn's bound ``send`` (None elsewhere)."""
    return getattr(getattr(send, "__self__", None), "transport", None)


class _Watch:
    """Wraps one request's ``receive``/``send``: the answer's status and whether the body was
    read to its end (``close_after_error``)."""

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send
        self.transport = _transport_of(send)
        self.status = 0
        self.body_read = False

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.body_read = True
        return message

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


async def _drop_connection(send: Any) -> None:
    """Close the client's connection without an answer (an injected drop).

    uvicorn hands the app a bound ``send`` of its request cycle, which holds the transport;
    aborting it makes the client see a reset connection. Another server gets an exception
    after a started response, which every ASGI server turns into a broken connection.
    """
    transport = _transport_of(send)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let connection_lost run so the server knows the peer is gone
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(_CONTENT_LENGTH, b"1000")]}
    )
    raise ConnectionAbortedError("loadkit reference server: injected connection drop")

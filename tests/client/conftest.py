"""Fixtures for the client's tests: reference servers with knobs, test doubles, fast policies."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.retry import RetryPolicy
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
FAST = RetryPolicy(base_delay=0.005, max_delay=0.05, create_base_delay=0.005,
                   create_max_delay=0.05)
"""SDK-shaped retries with millisecond delays, so retry paths run fast."""


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """A default reference server (process mode) shared by a test module."""
    with ReferenceServer(mode="process", max_items=100_000) as srv:
        yield srv


@pytest.fixture
def make_server() -> Iterator[Callable[..., ReferenceServer]]:
    """Start reference servers with given knobs; all are stopped at teardown."""
    started: list[ReferenceServer] = []

    def make(**knobs: Any) -> ReferenceServer:
        srv = ReferenceServer(mode=knobs.pop("mode", "process"), **knobs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., BatchClient]]:
    """Build BatchClients (fast retry policy, local key by default), closed at teardown."""
    clients: list[BatchClient] = []

    def make(url: str, key: str | None = KEY, **kw: Any) -> BatchClient:
        kw.setdefault("retry", FAST)
        kw.setdefault("seed", 1)
        kw.setdefault("timeout", 20.0)
        c = BatchClient(url, key, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# --- a deliberately wrong batch API (ASGI on uvicorn, loopback) --------------------------


class WrongServer:
    """A batch API that gets the contract wrong on purpose: one lie per ``mode``
    (:data:`LIES` names each), an otherwise correct server (``honest``: no lie at all).

    Its stream answers count lines by ``index`` (first copy wins), number physical lines
    from 1, and answer a line that is not JSON with 400 ``Invalid JSON at line N: …``. Each
    batch counts its stream requests: a lie may be told on one attempt only. The tests that
    make each lie fire, and what it must cause: ``test_client_lies.py``.
    """

    def __init__(self, mode: str) -> None:
        assert mode in LIES or mode == "honest", mode
        self.mode = mode
        self.batches: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == wire.CREATE_PATH:
            return await self._create(send, orjson.loads(body))
        batch_id = path.split("/")[4]
        batch = self.batches[batch_id]
        if scope["method"] == "GET":
            return await self._retrieve(send, batch_id, batch)
        batch["streams"] += 1
        status, answer = self._stream(batch_id, batch, body, batch["streams"])
        await _answer(send, status, answer)

    async def _create(self, send: Any, req: dict[str, Any]) -> None:
        n = req["runCount"]
        batch_id = f"batch_wrong{len(self.batches)}"
        self.batches[batch_id] = {"n": n, "seen": set(), "streams": 0}
        if self.mode == "cached_without_key":  # the client sent no idempotency key
            return await _answer(send, 200, {"id": batch_id, "runCount": n, "isCached": True})
        said = n + 1 if self.mode == "create_run_count" else n
        await _answer(send, 202, {"id": batch_id, "runCount": said, "isCached": False})

    async def _retrieve(self, send: Any, batch_id: str, batch: dict[str, Any]) -> None:
        mode = self.mode
        if mode == "retrieve_error":
            return await _answer(send, 500, {"error": "retrieve broke"},
                                 [(b"x-should-retry", b"false")])
        runs: Any = [f"run_{i}" for i in sorted(batch["seen"])]
        errors: list[dict[str, Any]] = []
        if mode in ("lie_sealed", "too_large_error"):
            runs = runs[1:]
        if mode == "too_large_error":
            errors = [{"index": 0, "taskIdentifier": "loadkit-task", "error": "too large",
                       "errorCode": wire.PAYLOAD_TOO_LARGE}]
        if mode == "duplicate_run":
            runs[1] = runs[0]
        if mode == "retrieve_malformed":
            runs = "all of them"
        await _answer(send, 200, {"id": batch_id, "status": "COMPLETED", "runCount": batch["n"],
                                  "runs": runs, "processing": {"errors": errors}})

    def _stream(self, batch_id: str, batch: dict[str, Any], body: bytes,
                attempt: int) -> tuple[int, Any]:
        """One stream request's (status, answer): the honest one, then this mode's lie."""
        mode = self.mode
        n = batch["n"]
        if (mode, attempt) in (("count_after_503", 1), ("total_after_503", 2)):
            return 503, {"error": "unavailable"}  # nothing read, nothing enqueued
        if (mode, attempt) in (("reject_clean", 1), ("reject_retry", 2)):
            return 422, {"error": "Invalid item at index 0: refused for no reason"}
        accepted = dedup = 0
        for number, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                index = orjson.loads(line)["index"]
            except orjson.JSONDecodeError:
                if mode == "lenient":
                    continue
                said = number + 1 if mode == "wrong_message" else number
                return (422 if mode == "wrong_status" else 400,
                        {"error": f"Invalid JSON at line {said}: Unexpected end of JSON input"})
            if mode == "lose" and index % 10 == 0:
                continue
            if index in batch["seen"] and mode != "double_count":
                dedup += 1
                continue
            batch["seen"].add(index)
            accepted += 1
        if mode == "lie_sealed":
            return 200, wire.stream_response(batch_id, items_accepted=n, items_deduplicated=0,
                                              sealed=True, run_count=n)
        enqueued = len(batch["seen"])
        sealed = enqueued == n
        answer = wire.stream_response(
            batch_id, items_accepted=accepted, items_deduplicated=dedup, sealed=sealed,
            run_count=n, enqueued_count=enqueued, expected_count=n)
        lie = _STREAM_LIES.get((mode, attempt)) or _STREAM_LIES.get((mode, 0))
        if lie is not None:
            lie(answer)
        return 200, answer


def _shift(answer: dict[str, Any], accepted: int, dedup: int) -> None:
    answer["itemsAccepted"] += accepted
    answer["itemsDeduplicated"] += dedup


def _unseal(answer: dict[str, Any], enqueued: bool) -> None:
    """A complete batch's answer as ``sealed: false`` (with ``enqueuedCount`` or without)."""
    if answer["sealed"]:
        answer.update(sealed=False, expectedCount=answer["runCount"])
        if enqueued:
            answer["enqueuedCount"] = answer["runCount"]


def _bump(answer: dict[str, Any], field: str) -> None:
    if field in answer:
        answer[field] += 1


_STREAM_LIES: dict[tuple[str, int], Callable[[dict[str, Any]], None]] = {
    # (mode, attempt; 0: every attempt) -> how that 200 answer lies
    ("wrong_id", 0): lambda a: a.update(id="batch_someoneelse"),
    ("sealed_run_count", 0): lambda a: _bump(a, "runCount") if a["sealed"] else None,
    ("expected_count", 0): lambda a: _bump(a, "expectedCount"),
    ("enqueued_count", 0): lambda a: _bump(a, "enqueuedCount"),
    ("shifted_accepted", 1): lambda a: _shift(a, -1, 0),
    ("shifted_accepted", 2): lambda a: _shift(a, 1, -1),
    ("first_dedup", 1): lambda a: _shift(a, 0, 1),
    ("late_seal", 1): lambda a: _unseal(a, enqueued=False),
    ("retry_accepted", 2): lambda a: _shift(a, -1, 1),
    ("retry_dedup", 2): lambda a: _shift(a, 0, 1),
    ("retry_unsealed", 2): lambda a: _unseal(a, enqueued=True),
    ("count_after_503", 2): lambda a: _shift(a, 0, 1),
    ("total_after_503", 3): lambda a: _shift(a, 1, -1),
}

LIES = {
    "lose": "forgets every item whose index is a multiple of 10 and answers honestly about "
            "what it kept (the batch never seals)",
    "double_count": "counts a duplicate line as accepted again (itemsDeduplicated stays 0)",
    "lie_sealed": "answers sealed: true with every item accepted; its retrieve answer lacks "
                  "the run of index 0",
    "create_run_count": "the create answer's runCount is one more than asked",
    "cached_without_key": "the create answers isCached: true to a create without an "
                          "idempotency key",
    "wrong_id": "stream answers carry another batch's id",
    "sealed_run_count": "a sealed answer's runCount is one more than the batch's",
    "expected_count": "a not-sealed answer's expectedCount is one more than runCount",
    "enqueued_count": "a not-sealed answer's enqueuedCount is one more than enqueued",
    "shifted_accepted": "the first answer reports one accepted item fewer, the second one "
                        "more (the sum stays right)",
    "first_dedup": "the first answer's itemsDeduplicated is one more",
    "late_seal": "answers a complete first stream sealed: false (expectedCount, no "
                 "enqueuedCount), then seals on the resend",
    "lenient": "skips a line that is not JSON and answers 200 (a 400 was expected)",
    "wrong_message": "answers a line that is not JSON with a 400 naming the next line",
    "wrong_status": "answers a line that is not JSON with 422 instead of 400",
    "reject_clean": "answers the first stream of clean lines 422",
    "reject_retry": "answers the second stream (a clean resend) 422",
    "retry_accepted": "the second answer reports one accepted item as deduplicated",
    "retry_dedup": "the second answer's itemsDeduplicated is one more",
    "retry_unsealed": "answers the second stream sealed: false though it completed the batch "
                      "(enqueuedCount = expectedCount = runCount), then seals on the third",
    "count_after_503": "answers the first stream 503, then the second's itemsDeduplicated is "
                       "one more than it deduplicated",
    "total_after_503": "answers the second stream 503, then the third reports one "
                       "deduplicated item as accepted (counted twice over the batch)",
    "duplicate_run": "its retrieve answer lists the run of index 0 twice, not the run of 1",
    "too_large_error": "its retrieve answer puts index 0 in PAYLOAD_TOO_LARGE errors "
                       "instead of its run (no item was oversized)",
    "retrieve_malformed": "its retrieve answer's runs is a string, not a Batch's array",
    "retrieve_error": "its retrieve answers 500",
}
"""What each :class:`WrongServer` mode lies about."""


async def _answer(send: Any, status: int, body: Any,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class ThreadedASGI:
    """Serve an ASGI app with uvicorn in a background thread on a free loopback port (over
    TLS when given ``ssl_keyfile``/``ssl_certfile``)."""

    def __init__(self, app: Any, **tls: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                ws="none", loop="asyncio", http="h11", **tls)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> ThreadedASGI:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "test double did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def wrong_server() -> Iterator[Callable[[str], str]]:
    """Start WrongServer doubles by mode; returns their URLs."""
    running: list[ThreadedASGI] = []

    def start(mode: str) -> str:
        srv = ThreadedASGI(WrongServer(mode)).__enter__()
        running.append(srv)
        return srv.url

    yield start
    for srv in running:
        srv.__exit__()


# --- canned raw HTTP answers (HTML, truncated JSON, hanging) -----------------------------


class CannedServer:
    """A raw-socket HTTP server on loopback answering each path prefix with canned bytes.

    ``answers`` maps a path prefix to raw response bytes, or to None to hang (accept, read
    the headers, never answer). Unlisted paths hang too.
    """

    def __init__(self, answers: dict[str, bytes | None]) -> None:
        self.answers = answers
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = conn.recv(65536)
                if not part:
                    return
                data += part
            path = data.split(b" ", 2)[1].decode()
            answer = next((a for p, a in self.answers.items() if path.startswith(p)), None)
            if answer is None:
                self.stop.wait(30)
                return
            conn.sendall(answer)
            conn.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


def raw_answer(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 response with ``Connection: close``."""
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.fixture
def canned() -> Iterator[Callable[[dict[str, bytes | None]], str]]:
    """Start CannedServers; returns their URLs."""
    running: list[CannedServer] = []

    def start(answers: dict[str, bytes | None]) -> str:
        srv = CannedServer(answers)
        running.append(srv)
        return srv.url

    yield start
    for srv in running:
        srv.close()


# --- scripted answers through an httpx MockTransport -------------------------------------


class Script:
    """An httpx MockTransport handler answering from a list per endpoint; records requests.

    Each entry is ``(status, json_body, headers)``, or a function of the request returning an
    ``httpx.Response``; the last entry repeats. A stream entry of ``"seal"`` answers as a
    correct server for the lines received; a retrieve (GET) entry of ``"batch"`` answers the
    completed batch with one run per index received.
    """

    def __init__(self, create: list[Any] | None = None, stream: list[Any] | None = None,
                 retrieve: list[Any] | None = None) -> None:
        self.create = create or [(202, None, {})]
        self.stream = stream or ["seal"]
        self.retrieve = retrieve or ["batch"]
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.chunk_counts: list[int] = []
        self.seen: set[int] = set()
        self.n = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        chunks = list(request.stream)  # type: ignore[arg-type]
        body = b"".join(chunks)
        self.requests.append(request)
        self.bodies.append(body)
        self.chunk_counts.append(len(chunks))
        if request.method == "GET":
            entry = self.retrieve.pop(0) if len(self.retrieve) > 1 else self.retrieve[0]
            if callable(entry):
                return entry(request)
            if entry == "batch":
                return httpx.Response(200, json={
                    "id": "batch_script", "status": "COMPLETED", "runCount": self.n,
                    "runs": [f"run_{i}" for i in sorted(self.seen)],
                    "processing": {"errors": []}})
            status, answer, headers = entry
            return httpx.Response(status, json=answer, headers=headers)
        if request.url.path == wire.CREATE_PATH:
            self.n = orjson.loads(body)["runCount"]
            entry = self.create.pop(0) if len(self.create) > 1 else self.create[0]
            if callable(entry):
                return entry(request)
            status, answer, headers = entry
            if answer is None:
                answer = {"id": "batch_script", "runCount": self.n, "isCached": False}
            return httpx.Response(status, json=answer, headers=headers)
        entry = self.stream.pop(0) if len(self.stream) > 1 else self.stream[0]
        if callable(entry):
            return entry(request)
        if entry == "seal":
            accepted = dedup = 0
            for line in body.splitlines():
                index = orjson.loads(line)["index"]
                if index in self.seen:
                    dedup += 1
                else:
                    self.seen.add(index)
                    accepted += 1
            sealed = len(self.seen) == self.n
            return httpx.Response(200, json=wire.stream_response(
                "batch_script", items_accepted=accepted, items_deduplicated=dedup,
                sealed=sealed, run_count=self.n, enqueued_count=len(self.seen),
                expected_count=self.n))
        status, answer, headers = entry
        return httpx.Response(status, json=answer, headers=headers)

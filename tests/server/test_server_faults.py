"""Tests that backpressure is real and that every fault knob does what it says at its rate."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from loadkit import wire
from loadkit.errors import ConfigError
from loadkit.server import ReferenceServer, ServerConfig
from loadkit.server.app import _Pacer
from loadkit.server.serve import bind_socket

from .conftest import KEY, Api, lines, wait_for


def _raw_stream_request(
    host: str, port: int, batch_id: str, sndbuf: int | None = None
) -> socket.socket:
    """Open a socket and send the head of a chunked stream request; the caller sends the body."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.connect((host, port))
    head = (
        f"POST {wire.stream_path(batch_id)} HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {KEY}\r\ncontent-type: {wire.NDJSON_CONTENT_TYPE}\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _push(server: ReferenceServer, total_items: int, seconds: float) -> tuple[int, int, bool]:
    """Write ~1 KiB items as fast as the socket takes them, for at most ``seconds``.

    Returns (bytes written, items written, whether a write blocked for 1 s).
    """
    with Api(server.url) as api:
        bid = api.new_batch(total_items)
    host, port = server.url.removeprefix("http://").split(":")
    sock = _raw_stream_request(host, int(port), bid, sndbuf=8192)
    sock.settimeout(1.0)
    pad = "p" * 1000
    written = items = 0
    blocked = False
    deadline = time.monotonic() + seconds
    try:
        while items < total_items and time.monotonic() < deadline:
            block = lines(range(items, min(items + 64, total_items)), payload=pad)
            data = _chunk(block)
            try:
                sock.sendall(data)
            except TimeoutError:
                blocked = True
                break
            written += len(data)
            items = min(items + 64, total_items)
    finally:
        sock.close()
    return written, items, blocked


@pytest.mark.slow
def test_slow_enqueue_blocks_the_clients_writes():
    """With a slow enqueue the server stops reading and the client's writes block; without, not."""
    items = 40_000  # ~41 MB: more than every buffer between client and app
    with ReferenceServer(
        mode="thread", max_items=items, enqueue_delay=0.02, ingest_concurrency=1
    ) as slow:
        written, sent_items, blocked = _push(slow, items, seconds=20)
        stats = slow.stats()
    assert blocked, "writes never blocked although the server enqueues 50 items/s"
    assert sent_items < items
    # what the app has read is what it has enqueued (+ one chunk), far less than was written
    assert stats["items_enqueued"] < 500
    assert stats["bytes_read"] < written
    with ReferenceServer(mode="thread", max_items=items) as fast:
        _, sent_fast, blocked_fast = _push(fast, items, seconds=20)
        fast_stats = wait_for(  # the app enqueues what the socket took a moment later
            lambda: (s := fast.stats())["items_enqueued"] >= sent_fast and s,
            "the fast server enqueues every item written")
    assert not blocked_fast
    assert sent_fast == items
    assert fast_stats["items_enqueued"] == items


def test_enqueue_delay_paces_at_concurrency_over_delay():
    """enqueue_delay 0.01 s with concurrency 10 ingests ~1,000 items/s."""
    with (
        ReferenceServer(mode="thread", enqueue_delay=0.01, ingest_concurrency=10) as s,
        Api(s.url) as api,
    ):
        bid = api.new_batch(500)
        t0 = time.perf_counter()
        r = api.stream(bid, [lines(range(i, i + 50)) for i in range(0, 500, 50)])
        elapsed = time.perf_counter() - t0
        assert r.json()["sealed"] is True
        assert 0.45 <= elapsed <= 1.2  # 500 items / 1,000 per s = 0.5 s plus timer slack


def test_stream_and_answer_delays_hold_the_body_then_the_answer():
    """A stream waits stream_delay before its body is read and answer_delay after it."""
    with ReferenceServer(mode="thread", stream_delay=0.2, answer_delay=0.3) as s, \
            Api(s.url) as api:
        bid = api.new_batch(10)
        t0 = time.perf_counter()
        r = api.stream(bid, [lines(range(10))])
        elapsed = time.perf_counter() - t0
        assert r.json()["sealed"] is True
        assert 0.5 <= elapsed <= 1.0


def test_recv_buffer_bytes_is_what_each_accepted_connection_gets():
    """Every connection the listening socket accepts has the fixed receive buffer."""
    default = bind_socket("127.0.0.1", 0)
    fixed = bind_socket("127.0.0.1", 0, recv_buffer_bytes=16_384)
    got = {}
    for name, listener in (("default", default), ("fixed", fixed)):
        listener.listen()
        with listener, socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                got[name] = accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert got["fixed"] == 2 * 16_384  # Linux doubles what is asked
    assert got["default"] != got["fixed"]
    with pytest.raises(ConfigError, match="recv_buffer_bytes"):
        ServerConfig(recv_buffer_bytes=100)


def test_ingest_rate_cap_is_what_the_server_reports():
    """An ingest rate cap of 2,000 items/s takes ~1.5 s for 3,000 items, server-wide."""
    with ReferenceServer(mode="thread", ingest_rate=2000, max_items=3000) as s, Api(s.url) as api:
        bid = api.new_batch(3000)
        t0 = time.perf_counter()
        r = api.stream(bid, [lines(range(i, i + 500)) for i in range(0, 3000, 500)])
        elapsed = time.perf_counter() - t0
        assert r.json()["sealed"] is True
        assert 1.3 <= elapsed <= 2.0
        series = [n for _, n in api.stats()["ingest_series"]]
        assert sum(series) == 3000
        full_seconds = series[1:-1]
        assert all(1600 <= n <= 2400 for n in full_seconds), series


def test_ingest_pacer_makes_up_a_late_wake_instead_of_losing_rate():
    """A consumer waking 3 ms late for every 10 ms slot still gets the capped rate."""
    pacer, now = _Pacer(2000), 100.0
    for _ in range(300):  # 6,000 items in groups of 20
        now += max(pacer.reserve(20, now), 0.0) + 0.003
    # 3 s for 6,000 items, less the slack's head start (the pacer was idle before)
    assert now - 100.0 == pytest.approx(6000 / 2000 - _Pacer.SLACK_S, abs=0.005)


def test_ingest_pacer_bursts_at_most_its_slack_after_idling():
    """After idling, no more than rate × slack items pass before waits begin."""
    pacer = _Pacer(2000)
    free = 0
    while pacer.reserve(20, 50.0) <= 0:
        free += 20
    assert free <= 2000 * _Pacer.SLACK_S


def _fault_draws(seed: int, error_rate: float = 0.0, drop_rate: float = 0.0,
                 error_should_retry: float = 1.0) -> Iterator[tuple[str, bool]]:
    """The seeded fault decision of each stream that reaches ingest, replayed on its own:
    from ``random.Random("faults:<seed>")`` the server draws, per stream, an error (below
    error_rate), a drop (below drop_rate, unless an error; then the chunk to drop after, 1 to
    3) and, for an error, its x-should-retry (below error_should_retry). Yields ("error",
    should_retry), ("drop", False) or ("ok", False)."""
    rng = random.Random(f"faults:{seed}")
    while True:
        error = rng.random() < error_rate
        drop = rng.random() < drop_rate and not error
        if drop:
            rng.randint(1, 3)
        retry = rng.random() < error_should_retry if error else False
        yield ("error" if error else "drop" if drop else "ok"), retry


def test_error_rate_and_should_retry_mix_at_their_rates():
    """error_rate 0.3, seed 7: exactly the replayed streams are 500, should-retry as drawn."""
    n = 200
    draws = _fault_draws(7, error_rate=0.3, error_should_retry=0.5)
    with (
        ReferenceServer(mode="thread", error_rate=0.3, error_should_retry=0.5, seed=7) as s,
        Api(s.url) as api,
    ):
        statuses, retry = [], []
        for _ in range(n):
            bid = api.new_batch(1)
            r = api.stream(bid, lines([0]))
            kind, should_retry = next(draws)
            assert r.status_code == (500 if kind == "error" else 200)
            statuses.append(r.status_code)
            if r.status_code == 500:
                assert r.json()["error"] == wire.msg.injected_error()
                assert r.headers[wire.Header.SHOULD_RETRY] == str(should_retry).lower()
                retry.append(r.headers[wire.Header.SHOULD_RETRY])
                again = api.stream(bid, lines([0])).status_code  # nothing was enqueued
                assert again == (500 if next(draws)[0] == "error" else 200)
        # the replay's counts, run once and written down: 46 of the 200 first streams (23 %,
        # this seed's draw at a 30 % rate), 25 of them with x-should-retry: true
        assert statuses.count(500) == 46
        assert retry.count("true") == 25
        assert s.stats()["injected_errors"] == 46 + 10  # and 10 of the 46 second streams


def test_faults_replay_with_the_same_seed():
    """Two servers with the same seed answer a sequential client with the same fault sequence."""

    def run() -> list[int]:
        with ReferenceServer(mode="thread", error_rate=0.5, seed=42) as s, Api(s.url) as api:
            return [api.stream(api.new_batch(1), lines([0])).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 500 in first
    assert 200 in first


def test_drop_rate_breaks_connections_and_keeps_items_read():
    """drop_rate 0.4, seed 3: exactly the replayed streams break; what was read stays."""
    n = 100
    draws = _fault_draws(3, drop_rate=0.4)
    with ReferenceServer(mode="thread", drop_rate=0.4, seed=3) as s, Api(s.url) as api:
        dropped = 0
        partial_batches = []
        for _ in range(n):
            bid = api.new_batch(40)
            chunks = [lines(range(i, i + 10)) for i in range(0, 40, 10)]
            drop = next(draws)[0] == "drop"
            try:
                r = api.stream(bid, chunks)
                assert r.status_code == 200
                assert not drop
            except httpx.TransportError:
                assert drop
                dropped += 1
                partial_batches.append(bid)
        assert dropped == 49  # the replay's count, run once and written down (40 % rate)
        assert s.stats()["injected_drops"] == dropped
        for bid in partial_batches[:10]:
            # what was read before the drop stays enqueued: its runs appear (engine ticks)
            body = wait_for(lambda bid=bid: (b := api.retrieve(bid).json())["runs"] and b,
                            f"runs of the items read before {bid}'s drop")
            assert body["status"] != "COMPLETED"  # a dropped stream never seals


def test_never_ending_body_answers_408():
    """A body that never ends is answered 408 after request_timeout, and the connection closes."""
    with ReferenceServer(mode="thread", request_timeout=0.5) as s, Api(s.url) as api:
        bid = api.new_batch(5)
        host, port = s.url.removeprefix("http://").split(":")
        sock = _raw_stream_request(host, int(port), bid)
        try:
            sock.sendall(_chunk(lines([0])))
            sock.settimeout(5)
            t0 = time.perf_counter()
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            elapsed = time.perf_counter() - t0
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert 0.3 <= elapsed <= 2
        assert api.stats()["timeouts"] == 1


def test_error_status_sets_the_status_of_injected_errors():
    """error_status 503 answers every injected error 503 {error}; values outside 5xx are refused."""
    with (
        ReferenceServer(mode="thread", error_rate=1.0, error_status=503, seed=1) as s,
        Api(s.url) as api,
    ):
        r = api.stream(api.new_batch(1), lines([0]))
        assert r.status_code == 503
        assert r.json()["error"] == wire.msg.injected_error()
        assert r.headers[wire.Header.SHOULD_RETRY] == "true"
        assert s.stats()["injected_errors"] == 1
        assert s.stats()["responses_by_status"]["503"] == 1
    assert ServerConfig.parse(error_status="503").to_argv() == ["--error-status", "503"]
    for bad in ("404", "600", "x"):
        with pytest.raises(ConfigError) as info:
            ServerConfig.parse(error_status=bad)
        assert info.value.field == "error_status"

"""The metered socket seam: a write's wait on a full send buffer is counted apart from its cost."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpcore
import pytest
import trustme

from loadkit import BatchClient, BatchSpec, transport
from loadkit.server.app import ReferenceApp
from loadkit.server.config import ServerConfig
from loadkit.transport import MeteredBackend, MeteredTransport, WriteMeter

from .conftest import KEY, ThreadedASGI

SNDBUF = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)]
BODY = b"x" * (8 * 2**20)


class Peer:
    """A loopback TCP peer that accepts one connection (over TLS when given a server
    context) and reads only once told to (or ``read_delay`` seconds after accepting)."""

    def __init__(self, tls: ssl.SSLContext | None = None,
                 read_delay: float | None = None) -> None:
        self.tls = tls
        self.read_delay = read_delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.read_from = threading.Event()
        self.received = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        with conn:
            self.read_from.wait(30 if self.read_delay is None else self.read_delay)
            while data := conn.recv(1 << 20):
                self.received += len(data)

    def close(self) -> None:
        self.read_from.set()
        self.listener.close()
        self._thread.join(10)


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def test_a_reading_peer_makes_writes_that_never_wait(peer):
    """8 MB to a peer that reads at once: every byte written, no wait counted."""
    peer.read_from.set()
    meter = WriteMeter()
    stream = MeteredBackend(meter).connect_tcp("127.0.0.1", peer.port, timeout=5)
    for k in range(0, len(BODY), 65536):
        stream.write(BODY[k:k + 65536], timeout=5)
    stream.close()
    assert meter.writes == len(BODY) // 65536
    assert meter.blocked < 0.05


def test_a_peer_that_stops_reading_is_counted_as_the_wait(peer):
    """A peer that reads only after 0.3 s: the write waits ~0.3 s, and that is the meter's."""
    meter = WriteMeter()
    stream = MeteredBackend(meter).connect_tcp("127.0.0.1", peer.port, timeout=5,
                                               socket_options=SNDBUF)
    threading.Timer(0.3, peer.read_from.set).start()
    t = time.perf_counter()
    stream.write(BODY, timeout=5)
    elapsed = time.perf_counter() - t
    stream.close()
    assert meter.waits >= 1
    assert 0.25 <= meter.blocked <= elapsed
    assert elapsed - meter.blocked < 0.2  # the rest is the copy, not the wait


def test_a_write_that_waits_past_its_timeout_raises_write_timeout(peer):
    """A peer that never reads: the write raises httpcore.WriteTimeout after its timeout."""
    meter = WriteMeter()
    stream = MeteredBackend(meter).connect_tcp("127.0.0.1", peer.port, timeout=5,
                                               socket_options=SNDBUF)
    with pytest.raises(httpcore.WriteTimeout):
        stream.write(BODY, timeout=0.2)
    stream.close()
    assert 0.19 <= meter.blocked < 1.0


def test_a_client_timed_out_on_a_silent_peer_records_the_wait_as_stall(peer):
    """A target that takes the request but never reads: attempt times out, its stall ≈ timeout."""
    batch = BatchSpec.parse(items="5000", payload_bytes="2000", max_items="5000").batch(0)
    with BatchClient(f"http://127.0.0.1:{peer.port}", KEY, timeout=0.5,
                     send_buffer_bytes=65536) as client:
        attempt = client.stream_items(f"batch_{'a' * 21}", batch.chunks(), lines=batch.run_count)
    assert attempt.reason == "timeout"
    assert 450 <= attempt.stall_ms <= attempt.write_ms <= attempt.duration_ms


def test_the_client_writes_through_the_metered_pool():
    """BatchClient's default transport is metered (guards httpx's private pool slot)."""
    meter = WriteMeter()
    transport = MeteredTransport(meter, socket_options=SNDBUF)
    pool = transport._pool
    assert isinstance(pool, httpcore.ConnectionPool)
    assert isinstance(pool._network_backend, MeteredBackend)
    assert pool._network_backend.meter is meter
    transport.close()


def test_https_writes_are_metered_too(tmp_path, monkeypatch):
    """Over TLS batches seal intact; a target that keeps up: no wait; a slow one: mostly wait."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    key, chain = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(key))
    cert.cert_chain_pems[0].write_to_path(str(chain))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    monkeypatch.setattr(transport, "_ssl_context", lambda: trusting)
    tls = {"ssl_keyfile": str(key), "ssl_certfile": str(chain)}
    small = BatchSpec.parse(items="1000", payload_bytes="256").batch(0)
    with ThreadedASGI(ReferenceApp(ServerConfig()), **tls) as srv, \
            BatchClient(srv.url, KEY) as client:
        assert srv.url.startswith("https://")
        fast = client.send(small)
    assert fast.outcome == "sealed"
    assert not fast.violations
    assert fast.stall_ms < 0.01 * fast.stream_ms
    assert fast.write_ms > fast.stall_ms
    slow_app = ReferenceApp(ServerConfig(enqueue_delay=0.01, ingest_concurrency=8,
                                         max_items=2000))
    big = BatchSpec.parse(items="2000", payload_bytes="2000", max_items="2000").batch(1)
    with ThreadedASGI(slow_app, **tls) as srv, \
            BatchClient(srv.url, KEY, send_buffer_bytes=65536) as client:
        slow = client.send(big)
    assert slow.outcome == "sealed"
    assert not slow.violations
    assert slow.stall_fraction > 0.2, (slow.stall_ms, slow.write_ms, slow.stream_ms)
    assert slow.stall_ms > 0.9 * slow.write_ms  # its writes spent their time waiting


GEVENT_WRITER = """
import json, socket, ssl, sys, time
from gevent import monkey
monkey.patch_all()
import gevent, httpcore
from loadkit.transport import MeteredBackend, WriteMeter

port, cafile, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ticks = []
def tick():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.02)
gevent.spawn(tick)
meter = WriteMeter()
stream = MeteredBackend(meter).connect_tcp(
    "127.0.0.1", port, timeout=5, socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)])
stream = stream.start_tls(ssl.create_default_context(cafile=cafile), "127.0.0.1", timeout=5)
gevent.sleep(0.05)
ticks.clear()
outcome, t = "written", time.perf_counter()
try:
    stream.write(b"x" * 8 * 2**20, timeout=timeout)
except httpcore.WriteTimeout:
    outcome = "timeout"
print(json.dumps({"outcome": outcome, "elapsed": time.perf_counter() - t,
                  "blocked": meter.blocked, "waits": meter.waits, "ticks": len(ticks)}))
"""


@pytest.mark.parametrize("reads_after", [None, 0.4])
def test_tls_writes_under_gevent_wait_cooperatively(tmp_path, reads_after):
    """Under locust's gevent, a TLS write to a full socket waits in the hub (other users run)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    peer = Peer(tls=server, read_delay=reads_after)
    try:
        timeout = "0.5" if reads_after is None else "5"
        proc = subprocess.run([sys.executable, "-c", GEVENT_WRITER, str(peer.port), str(cafile),
                               timeout], capture_output=True, text=True, timeout=20,
                              check=False)
    finally:
        peer.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["waits"] >= 1
    assert got["ticks"] >= 0.5 * got["blocked"] / 0.02  # the hub ran others while it waited
    if reads_after is None:
        assert got["outcome"] == "timeout"
        assert 0.45 <= got["blocked"] <= got["elapsed"] < 2
    else:
        assert got["outcome"] == "written"
        assert 0.2 <= got["blocked"] <= got["elapsed"]
        assert got["elapsed"] - got["blocked"] < 0.3

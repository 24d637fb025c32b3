"""The client's socket seam: writes that tell waiting on the target from the cost of writing.

A body chunk's write takes time for two reasons. The kernel copies the bytes in (on loopback
the send call also runs the receiving side's TCP work): tens of µs per 64 KiB, more when the
CPU is busy, whatever the target does. And the write **waits** when the socket's send buffer
is full because the target is not reading fast enough: that wait is backpressure. Timing the
whole write mixes the two, so a target faster than the client still shows a few percent of
"stall" (measured: ~6 % of stream time on an idle 2-core machine, ~24 % with a busy core,
with not one write ever finding the socket full).

:class:`MeteredTransport` is an ``httpx.HTTPTransport`` whose sockets write **non-blocking**:
each send takes what the kernel accepts at once; when it accepts nothing
(``EAGAIN``) the write waits in ``poll`` for the socket to become writable, and that wait
alone is added to :attr:`WriteMeter.blocked`. The client reads the meter around each chunk:
the difference is the chunk's stall. Same semantics as a blocking send with the same
timeout (a wait longer than the write timeout raises ``WriteTimeout``), over plain TCP and
TLS alike (TLS inside TLS, through an https proxy, is left unmetered: the client then counts
each whole write as stall, as it does with a transport of the caller's own). Under locust,
gevent patches ``select.poll`` and the wait yields to other users.

httpx has no public parameter for httpcore's network backend, so :class:`MeteredTransport`
builds its own ``httpcore.ConnectionPool`` (same settings as ``httpx.HTTPTransport``'s) with
:class:`MeteredBackend`; ``tests/client/test_transport.py`` fails if that stops holding.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["MeteredBackend", "MeteredTransport", "WriteMeter"]

_SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]


class WriteMeter:
    """Running totals of one client's socket writes (one client = one thread or greenlet)."""

    __slots__ = ("blocked", "waits", "writes")

    def __init__(self) -> None:
        self.blocked = 0.0
        """Seconds writes spent waiting for the socket to take more bytes."""
        self.writes = 0
        """Write calls made (one per body chunk, plus the request head)."""
        self.waits = 0
        """Times a write found the socket full and waited."""


def _wait(sock: Any, readable: bool, timeout: float | None) -> bool:
    """Wait until ``sock`` is writable (readable: TLS wants to read first); False on timeout.

    ``select`` is looked up at call time, so that gevent's patched one is used under locust.
    ``poll`` has no limit on descriptor numbers; ``select`` is the fallback where there is no
    ``poll`` (Windows).
    """
    if timeout is not None:
        timeout = max(timeout, 0.0)
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN if readable else select.POLLOUT)
        return bool(poller.poll(None if timeout is None else timeout * 1000.0))
    waiting = ([sock], [], []) if readable else ([], [sock], [])
    return any(select.select(*waiting, timeout))


class _MeteredStream(httpcore.NetworkStream):
    """A connected stream whose writes count their waits on :class:`WriteMeter`."""

    def __init__(self, inner: httpcore.NetworkStream, meter: WriteMeter) -> None:
        self._inner = inner
        self._meter = meter
        self._sock = inner.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        meter = self._meter
        meter.writes += 1
        sock = self._sock
        view = memoryview(buffer)
        perf = time.perf_counter
        try:
            sock.settimeout(0.0)
            while view:
                try:
                    sent = sock.send(view)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError) as exc:
                    meter.waits += 1
                    t = perf()
                    try:
                        ready = _wait(sock, isinstance(exc, ssl.SSLWantReadError), timeout)
                    finally:
                        meter.blocked += perf() - t
                    if not ready:
                        raise httpcore.WriteTimeout("timed out writing the request") from None
                    continue
                view = view[sent:]
        except httpcore.WriteTimeout:
            raise
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        if self._inner.get_extra_info("ssl_object") is not None:
            return tls  # TLS inside TLS (an https proxy): its socket is not the one to write
        return _MeteredStream(tls, self._meter)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class MeteredBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with metered writes."""

    def __init__(self, meter: WriteMeter) -> None:
        self.meter = meter
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[_SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout=timeout,
                                         local_address=local_address,
                                         socket_options=socket_options)
        return _MeteredStream(stream, self.meter)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[_SocketOption] | None = None,
                            ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout=timeout,
                                                 socket_options=socket_options)
        return _MeteredStream(stream, self.meter)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, made once per process (each costs ~20 ms: certifi's
    bundle is parsed); sharing one context between connections is what ``ssl`` intends."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = httpx.create_ssl_context()
    return _SSL_CONTEXT


class MeteredTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport(retries=0)`` whose connections write through :class:`MeteredBackend`.

    ``meter``: where the waits are counted. ``socket_options``: as httpx's (``SO_SNDBUF``…).
    """

    def __init__(self, meter: WriteMeter, *,
                 socket_options: Iterable[_SocketOption] | None = None) -> None:
        context = _ssl_context()
        super().__init__(verify=context, retries=0, socket_options=socket_options)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                              keepalive_expiry=5.0)  # httpx.HTTPTransport's defaults
        self.meter = meter
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            socket_options=socket_options,
            network_backend=MeteredBackend(meter),
        )

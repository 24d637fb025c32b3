"""Internal: the client's socket seam: writes that tell waiting on the target from writing.

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
TLS alike. Under locust, gevent patches ``select.poll`` and the wait yields to other users
(the wait then also holds the hub's delay in resuming the user once the socket drains).

httpx has no public parameter for httpcore's network backend, so :class:`MeteredTransport`
builds its own ``httpcore.ConnectionPool`` (same settings as ``httpx.HTTPTransport``'s) with
:class:`MeteredBackend`; ``tests/client/test_transport.py`` fails if that stops holding.
"""

from __future__ import annotations

import os
import select
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["MeteredBackend", "MeteredTransport", "WriteMeter"]

_SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                 | tuple[int, int, None, int])
"""httpcore's ``SOCKET_OPTION``."""


class WriteMeter:
    """Running totals of one client's socket writes (one client = one thread or greenlet)."""

    __slots__ = ("blocked", "waits", "writes")

    def __init__(self) -> None:
        self.blocked = 0.0
        """Seconds writes spent waiting for the socket to take more bytes."""
        self.writes = 0
        """Write calls made (the request head, one per body chunk, the chunked body's end)."""
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
    none: list[Any] = []
    ready = select.select([sock] if readable else none, none if readable else [sock], none,
                          timeout)
    return any(ready)


class _MeteredStream(httpcore.NetworkStream):
    """A connected stream whose writes count their waits on :class:`WriteMeter`."""

    def __init__(self, inner: httpcore.NetworkStream, meter: WriteMeter) -> None:
        self._inner = inner
        self._meter = meter
        self._sock = inner.get_extra_info("socket")
        # A plain socket never gains an SSL object (TLS makes a new socket and a new stream),
        # so only a TLS socket's is looked up per write (on a gevent socket the failed
        # lookup raises inside __getattr__: ~2 µs per write).
        self._tls = hasattr(self._sock, "_sslobj")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        meter = self._meter
        meter.writes += 1
        sock = self._sock
        # Over TLS, write through the SSL object: it raises SSLWantWrite/ReadError when the
        # socket is full, where gevent's SSLSocket.send (timeout 0) returns 0 and would spin.
        ssl_object = getattr(sock, "_sslobj", None) if self._tls else None
        send = ssl_object.write if ssl_object is not None else sock.send
        view = memoryview(buffer)
        perf = time.perf_counter
        try:
            if sock.gettimeout() != 0.0:  # reads set the read timeout; writes never block
                sock.settimeout(0.0)
            while view:
                readable = False
                try:
                    sent = send(view)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError) as exc:
                    sent, readable = 0, isinstance(exc, ssl.SSLWantReadError)
                if sent:
                    view = view[sent:]
                    continue
                meter.waits += 1
                t = perf()
                try:
                    ready = _wait(sock, readable, timeout)
                finally:
                    meter.blocked += perf() - t
                if not ready:
                    raise httpcore.WriteTimeout("timed out writing the request")
        except httpcore.WriteTimeout:
            raise
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _MeteredStream(self._inner.start_tls(ssl_context, server_hostname, timeout),
                              self._meter)

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
_SSL_CONTEXT_FOR: tuple[object, ...] = ()


def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, shared by the clients of a process (each costs
    ~20 ms: certifi's bundle is parsed; sharing one between connections is what ``ssl``
    intends). Made again when what it depends on changed: ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    (httpx reads them) or ``ssl.SSLContext`` itself (gevent's patching, so that a context
    made before locust started is not used under it)."""
    global _SSL_CONTEXT, _SSL_CONTEXT_FOR
    depends = (ssl.SSLContext, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    if _SSL_CONTEXT is None or depends != _SSL_CONTEXT_FOR:
        _SSL_CONTEXT, _SSL_CONTEXT_FOR = httpx.create_ssl_context(), depends
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

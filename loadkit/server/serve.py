"""uvicorn glue: bind a socket, run the app in the foreground (CLI) or in a thread (tests).

Nothing outside ``loadkit.server`` needs to know uvicorn is underneath.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, TextIO

import uvicorn

from loadkit.server.app import ReferenceApp
from loadkit.server.config import ServerConfig

__all__ = ["LISTENING_LINE", "ListeningServer", "bind_socket", "run_foreground", "uvicorn_config"]

LISTENING_LINE = "loadkit reference server listening on {url}"
"""The one line ``loadkit serve`` prints on stdout when it accepts connections."""


def uvicorn_config(app: Any, config: ServerConfig, *, configure_logging: bool) -> uvicorn.Config:
    """The uvicorn settings the server (and the benchmark's minimal app) run with."""
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=config.access_log,
        log_level="warning",
        log_config=uvicorn.config.LOGGING_CONFIG if configure_logging else None,
        timeout_graceful_shutdown=3,
        server_header=False,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ListeningServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit and self._on_ready is not None:
            self._on_ready()


def run_foreground(config: ServerConfig, out: TextIO | None = None, app: Any = None) -> int:
    """Serve until SIGINT/SIGTERM; print the listening line when ready. Returns an exit code."""
    out = out or sys.stdout
    app = app if app is not None else ReferenceApp(config)
    sock = bind_socket(config.host, config.port)
    url = url_of(sock)

    def ready() -> None:
        print(LISTENING_LINE.format(url=url), file=out, flush=True)

    server = ListeningServer(uvicorn_config(app, config, configure_logging=True), on_ready=ready)

    def early_exit(signum: int, frame: Any) -> None:
        # Before uvicorn takes the signals over (and again after it gives them back, when it
        # re-raises the one that stopped it): ask for a clean exit instead of dying by signal.
        server.should_exit = True

    previous = {sig: signal.signal(sig, early_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0 if server.started else 1

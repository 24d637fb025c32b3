"""Internal: uvicorn glue: bind a socket, run the app in the foreground (CLI) or a thread (tests).

Nothing outside ``loadkit.server`` needs to know uvicorn is underneath.

Output: ``loadkit serve`` prints exactly one line on stdout (``LISTENING_LINE``, once it accepts
connections); every log line (uvicorn's warnings and errors, the access log with
``--access-log``) goes to stderr, and after the listening line stdout itself points at stderr,
so a parent that reads only the first line can never block the server on a full pipe. Access
lines name the client, the request line (method, path, HTTP version) and the status: never a
header, so never the secret key.

Parent watch: when ``ReferenceServer`` starts the server as a subprocess it puts its own pid in
``$LOADKIT_SERVER_PARENT_PID``; the server then checks every second that this process is still
its parent and shuts down cleanly when it is not (the parent died, even by SIGKILL).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

import uvicorn

from loadkit.server.app import ReferenceApp
from loadkit.server.config import PARENT_PID_ENV, ServerConfig

__all__ = [
    "LISTENING_LINE",
    "LOG_CONFIG",
    "PARENT_PID_ENV",
    "ListeningServer",
    "bind_socket",
    "run_foreground",
    "uvicorn_config",
]

LISTENING_LINE = "loadkit reference server listening on {url}"
"""The one line ``loadkit serve`` prints on stdout when it accepts connections."""

PARENT_POLL_S = 1.0

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": "%(asctime)s %(levelprefix)s %(message)s",
            "use_colors": False,
        },
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s %(levelprefix)s %(client_addr)s - "%(request_line)s" '
            "%(status_code)s",
            "use_colors": False,
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
"""``loadkit serve``'s logging: warnings and errors, plus the access log when asked, all on
stderr (uvicorn's own default writes the access log to stdout)."""


def uvicorn_config(app: Any, config: ServerConfig, *, configure_logging: bool) -> uvicorn.Config:
    """The uvicorn settings the server (and the benchmark's minimal app) run with.

    ``configure_logging`` (``loadkit serve``): ``LOG_CONFIG``. Without it (a server in a thread
    of someone else's process) only the levels of uvicorn's loggers are set: warnings, and the
    access log's INFO lines when ``access_log`` is on, go wherever that process's logging sends
    them.
    """
    uv = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=config.access_log,
        log_level=None,  # uvicorn would apply one level to the access log too
        log_config=copy.deepcopy(LOG_CONFIG) if configure_logging else None,
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    if not configure_logging:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        logging.getLogger("uvicorn.asgi").setLevel(logging.WARNING)
        access = logging.INFO if config.access_log else logging.WARNING
        logging.getLogger("uvicorn.access").setLevel(access)
    return uv


def bind_socket(host: str, port: int, recv_buffer_bytes: int = 0) -> socket.socket:
    """The listening socket; ``recv_buffer_bytes`` (if not 0) is set on it before listening,
    so every accepted connection inherits it and the kernel no longer grows it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if recv_buffer_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
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
    """Serve until SIGINT/SIGTERM (or the death of ``$LOADKIT_SERVER_PARENT_PID``); print the
    listening line when ready. Returns an exit code."""
    out = out or sys.stdout
    app = app if app is not None else ReferenceApp(config)
    parent = _parent_pid()
    sock = bind_socket(config.host, config.port, config.recv_buffer_bytes)
    url = url_of(sock)

    def ready() -> None:
        print(LISTENING_LINE.format(url=url), file=out, flush=True)
        if out is sys.stdout:
            _stdout_to_stderr()

    server = ListeningServer(uvicorn_config(app, config, configure_logging=True), on_ready=ready)

    def early_exit(signum: int, frame: Any) -> None:
        # Before uvicorn takes the signals over (and again after it gives them back, when it
        # re-raises the one that stopped it): ask for a clean exit instead of dying by signal.
        server.should_exit = True

    previous = {sig: signal.signal(sig, early_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop_watch = threading.Event()
    if parent is not None:
        threading.Thread(
            target=_watch_parent,
            args=(parent, server, stop_watch),
            name="loadkit-parent-watch",
            daemon=True,
        ).start()
    try:
        server.run(sockets=[sock])
    finally:
        stop_watch.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0 if server.started else 1


def _parent_pid() -> int | None:
    """The pid in ``$LOADKIT_SERVER_PARENT_PID`` (removed from the environment), if any."""
    raw = os.environ.pop(PARENT_PID_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 1 else None


def _watch_parent(parent: int, server: uvicorn.Server, stop: threading.Event) -> None:
    """Ask ``server`` for a clean exit once the process ``parent`` is gone.

    When ``parent`` is this process's parent (the usual case), its death re-parents this
    process (to init or a subreaper), so ``getppid`` changes: safe against pid reuse. When
    something stands in between (a launcher that did not exec), the pid's liveness is polled.
    """
    direct = os.getppid() == parent
    while not stop.wait(PARENT_POLL_S):
        if direct:
            gone = os.getppid() != parent
        else:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:  # alive, someone else's
                gone = False
            else:
                gone = False
        if gone:
            print(f"loadkit serve: parent process {parent} is gone; shutting down",
                  file=sys.stderr, flush=True)
            server.should_exit = True
            return


def _stdout_to_stderr() -> None:
    """After the listening line, anything written to stdout goes to stderr instead."""
    try:
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptors (embedded, tests): nothing to do
        pass

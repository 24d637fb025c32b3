"""The reference batch API server: a faithful local copy of Trigger.dev's 2-phase batch API.

From Python::

    from loadkit.server import ReferenceServer

    with ReferenceServer(max_items=5000, enqueue_delay=0.001) as server:
        print(server.url)          # http://127.0.0.1:54321
        ...                        # create, stream, retrieve over HTTP
        print(server.stats())      # the server's own counters (GET /api/loadkit/stats)

``mode="process"`` (the default) runs ``python -m loadkit serve`` in a subprocess, so a
gevent-patched or GIL-bound client in this process cannot distort the server; ``mode="thread"``
runs it in a background thread of this process (``server.app`` then gives the live state).
Knobs are the fields of :class:`ServerConfig`, given as a config or as keywords.

In process mode the server's stderr (warnings, errors and, with ``access_log=True``, one line
per request, never a header or key) goes to ``log_path`` when given, else to an anonymous
temporary file; ``server.log_text()`` returns what it holds so far. Its stdout carries only the
URL line, which is read at start-up; nothing is left in a pipe that could fill and block the
server. The subprocess shuts itself down when this process dies, even by SIGKILL: it watches
its parent every second (``$LOADKIT_SERVER_PARENT_PID``).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from loadkit import wire
from loadkit.errors import ConfigError, ServerError
from loadkit.server.config import PARENT_PID_ENV, RateLimit, ServerConfig

__all__ = ["RateLimit", "ReferenceServer", "ServerConfig"]

_URL_RE = re.compile(r"listening on (http://\S+)")
_MODES = ("process", "thread")


class ReferenceServer:
    """A running reference server; a context manager. ``url`` is set once started."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        mode: str = "process",
        startup_timeout: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in _MODES:
            raise ConfigError("mode", mode, "'process' or 'thread'")
        if config is None:
            config = ServerConfig.parse(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self.log_path = os.fspath(log_path) if log_path is not None else None
        """Process mode: the file the server's stderr is appended to (None: a temporary one)."""
        self._proc: subprocess.Popen[str] | None = None
        self._log: Any = None
        """Process mode: a read handle on the server's stderr file."""
        self._drain: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._uvicorn: Any = None
        self._app: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ReferenceServer:
        if self.url is not None:
            return self
        if self.mode == "process":
            self._start_process()
        else:
            self._start_thread()
        return self

    def stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if self._drain is not None:
                self._drain.join(timeout=5)
                self._drain = None
            if proc.stdout is not None:
                proc.stdout.close()
            if self._log is not None:
                self._log.close()
                self._log = None
        if self._thread is not None:
            thread, self._thread = self._thread, None
            self._uvicorn.should_exit = True
            thread.join(timeout=15)
            if thread.is_alive():
                self._uvicorn.force_exit = True
                thread.join(timeout=5)
        self.url = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    @property
    def pid(self) -> int | None:
        """The server process id (process mode), for memory measurements."""
        return self._proc.pid if self._proc is not None else None

    @property
    def app(self) -> Any:
        """The live ``ReferenceApp`` (thread mode only): store, stats, engine."""
        if self._app is None:
            raise ServerError("ReferenceServer.app exists only in mode='thread' once started")
        return self._app

    # -- truth ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The server's counters from ``GET /api/loadkit/stats``."""
        import httpx  # noqa: PLC0415 - only callers of stats() pay for it

        return httpx.get(self._require_url() + wire.STATS_PATH, timeout=10).json()

    def reset_stats(self) -> dict[str, Any]:
        import httpx  # noqa: PLC0415 - only callers of stats() pay for it

        return httpx.delete(self._require_url() + wire.STATS_PATH, timeout=10).json()

    def log_text(self) -> str:
        """What the server process has written to its stderr so far (process mode only)."""
        if self._log is None:
            raise ServerError("ReferenceServer.log_text() exists in mode='process' once started")
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def _require_url(self) -> str:
        if self.url is None:
            raise ServerError("the reference server is not running; call start() or use 'with'")
        return self.url

    # -- process mode ---------------------------------------------------------------------

    def _start_process(self) -> None:
        env = dict(os.environ)
        env["TRIGGER_SECRET_KEY"] = ",".join(self.config.secret_keys)  # not on the command line
        env[PARENT_PID_ENV] = str(os.getpid())  # the server exits when this process is gone
        argv = [sys.executable, "-m", "loadkit", "serve", *self.config.to_argv()]
        if self.log_path is not None:
            path, temporary = self.log_path, False
        else:
            fd, path = tempfile.mkstemp(prefix="loadkit-server-", suffix=".log")
            os.close(fd)
            temporary = True
        try:
            # append mode: the server's writes land at the end whatever this side reads
            with open(path, "ab") as log:
                self._log = open(path, "rb")  # noqa: SIM115 - closed in stop()
                proc = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    text=True,
                )
        except BaseException:
            if self._log is not None:
                self._log.close()
                self._log = None
            raise
        finally:
            if temporary:
                os.unlink(path)  # the open handles keep it; nothing is left behind
        self._proc = proc
        assert proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise ServerError(
                        f"the reference server did not start within {self.startup_timeout:g} s"
                    )
                if sel.select(timeout=min(left, 0.5)):
                    line = proc.stdout.readline()
                    m = _URL_RE.search(line)
                    if m:
                        self.url = m.group(1)
                        self._drain = threading.Thread(
                            target=_drain,
                            args=(proc.stdout, self._log.name if not temporary else None),
                            name="loadkit-server-stdout",
                            daemon=True,
                        )
                        self._drain.start()
                        return
                    if not line:  # EOF: the process ended
                        break
                elif proc.poll() is not None:
                    break
        proc.wait(timeout=5)
        detail = self.log_text().strip().splitlines()
        self.stop()
        raise ServerError(
            "the reference server exited before listening"
            + (f": {detail[-1]}" if detail else f" (exit code {proc.returncode})")
        )

    # -- thread mode ----------------------------------------------------------------------

    def _start_thread(self) -> None:
        from loadkit.server.app import ReferenceApp  # noqa: PLC0415 - uvicorn only when needed
        from loadkit.server.serve import (  # noqa: PLC0415
            ListeningServer,
            bind_socket,
            url_of,
            uvicorn_config,
        )

        app = ReferenceApp(self.config)
        try:
            sock = bind_socket(self.config.host, self.config.port,
                               self.config.recv_buffer_bytes)
        except OSError as exc:
            raise ServerError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        ready = threading.Event()
        server = ListeningServer(
            uvicorn_config(app, self.config, configure_logging=False), on_ready=ready.set
        )
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="loadkit-reference-server",
            daemon=True,
        )
        self._app, self._uvicorn, self._thread = app, server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise ServerError("the reference server thread did not start")
        self.url = url_of(sock)


def _drain(stdout: Any, path: str | None) -> None:
    """Read the server's stdout to its end, so that it can never fill and block the server.

    ``loadkit serve`` points its stdout at its stderr after the URL line, so this normally
    ends at once; anything that still arrives is kept in the log file when there is a named one.
    """
    try:
        for line in stdout:
            if path is not None:
                with open(path, "a", encoding="utf-8") as log:
                    log.write(line)
    except (OSError, ValueError):  # closed under us by stop(): the process is gone
        pass

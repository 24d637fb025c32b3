"""Internal module of loadkit's pytest plugin (entry point ``pytest11``: ``loadkit``).

What users rely on is the plugin's surface, documented in the README ("In your own test
suite"), not the Python names here:

- fixture ``loadkit_server``: a reference server with the knobs of the test's
  ``@pytest.mark.loadkit_server(**knobs)`` (the names of ``loadkit serve``'s settings; the
  closest marker wins per knob). One server per distinct set of knobs, shared by every test
  that asks for the same set, stopped at the end of the session. ``.url``, ``.stats()`` (the
  counters of ``GET /api/loadkit/stats``), ``.reset()`` (those counters back to 0),
  ``.config`` (its :class:`~loadkit.server.ServerConfig`);
- fixture ``loadkit_run``: ``loadkit_run(users=2, run_time="5s", **run_options) -> Run``, a
  :func:`loadkit.run` against ``loadkit_server``, or against ``--loadkit-host`` /
  ``$TRIGGER_API_URL`` with the key from ``$TRIGGER_SECRET_KEY``; results under the test's
  ``tmp_path`` or ``--loadkit-results DIR``. A failing test's results path is printed (a
  report section and a line of the terminal summary) and kept; every run's path is also a
  ``user_properties`` entry (``loadkit_results``: JUnit XML carries it);
- marker ``loadkit`` (given to every test that uses ``loadkit_run``): ``-m "not loadkit"``
  deselects the load tests;
- a marker knob ``loadkit serve`` does not have, or a value it refuses: a usage error at
  collection, before any test runs; an unreachable target: the tests that would load it
  error at setup with one line naming it.

The plugin is imported by every pytest session of a user who installed loadkit, so this
module imports nothing beyond pytest and the standard library at import time; the server,
the runner and pandas are imported by the fixtures that use them (never locust or gevent:
:func:`loadkit.run` starts locust in a subprocess). ``-p no:loadkit`` switches it off.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from loadkit.analysis import Run
    from loadkit.server import ReferenceServer, ServerConfig

__all__ = ["LoadkitServer", "loadkit_run", "loadkit_server"]

RUN_MARKER = "loadkit"
SERVER_MARKER = "loadkit_server"
RESULTS_PROPERTY = "loadkit_results"
"""The ``user_properties`` name under which each run's results path is recorded."""
CONNECT_TIMEOUT = 5.0
"""Seconds the reachability check of an external target waits for a TCP connection."""

_FAILED: pytest.StashKey[list[tuple[str, list[Path]]]] = pytest.StashKey()
"""config.stash: (node id, kept results) of each failed test, for the terminal summary."""
_RESULTS: pytest.StashKey[list[Path]] = pytest.StashKey()
"""item.stash: the results (run directories, or a log when none was made) of its runs."""
_KNOBS: pytest.StashKey[dict[str, Any]] = pytest.StashKey()
"""item.stash: the merged knobs of its ``loadkit_server`` markers, checked at collection."""
_REACHABLE: pytest.StashKey[dict[str, str | None]] = pytest.StashKey()
"""config.stash: target URL → None (reachable) or the one-line reason it is not."""


# --- options, markers, collection ---------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loadkit", "loadkit load tests (fixtures loadkit_run, loadkit_server)")
    group.addoption(
        "--loadkit-host", default=None, metavar="URL",
        help="the batch API that loadkit_run loads (default $TRIGGER_API_URL, else the "
        "loadkit_server fixture's reference server); the secret key comes from "
        "$TRIGGER_SECRET_KEY, never a flag")
    group.addoption(
        "--loadkit-results", default=None, metavar="DIR",
        help="where loadkit_run writes its run directories (default: each test's tmp_path)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{RUN_MARKER}: a load test (every test that uses the loadkit_run fixture "
        "has it); deselect them with -m 'not loadkit'")
    config.addinivalue_line(
        "markers", f"{SERVER_MARKER}(**knobs): the knobs of the loadkit_server reference "
        "server, named as loadkit serve's settings, e.g. create_delay=0.05, ingest_rate=20000")
    config.stash[_FAILED] = []
    config.stash[_REACHABLE] = {}


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the marker must be there by then
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "loadkit_run" in getattr(item, "fixturenames", ()):
            item.add_marker(RUN_MARKER)
        markers = list(item.iter_markers(SERVER_MARKER))
        if markers:
            item.stash[_KNOBS] = _marker_knobs(item, markers)


def _marker_knobs(item: pytest.Item, markers: list[pytest.Mark]) -> dict[str, Any]:
    """The knobs of ``markers`` (closest first) merged, the closest winning; a knob
    ``loadkit serve`` does not have, or a value it refuses, is a usage error."""
    import dataclasses  # noqa: PLC0415

    from loadkit.errors import ConfigError  # noqa: PLC0415
    from loadkit.server.config import ServerConfig  # noqa: PLC0415 - only with the marker

    where = f"@pytest.mark.{SERVER_MARKER} of {item.nodeid}"
    valid = [f.name for f in dataclasses.fields(ServerConfig)]
    knobs: dict[str, Any] = {}
    for mark in reversed(markers):
        if mark.args:
            raise pytest.UsageError(f"{where}: knobs go by name, e.g. create_delay=0.05; "
                                    f"got positional {mark.args!r}; valid knobs: "
                                    + ", ".join(valid))
        knobs.update(mark.kwargs)
    unknown = [name for name in knobs if name not in valid]
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown knob{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(n) for n in unknown) + "; valid knobs (loadkit serve's settings): "
            + ", ".join(valid))
    try:
        ServerConfig.parse(**knobs)
    except ConfigError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    return knobs


# --- loadkit_server -------------------------------------------------------------------------


class LoadkitServer:
    """A running reference server of the ``loadkit_server`` fixture (shared by the tests with
    the same knobs: its counters add up across them until :meth:`reset`)."""

    def __init__(self, server: ReferenceServer, knobs: dict[str, Any]) -> None:
        assert server.url is not None
        self.server = server
        """The underlying :class:`~loadkit.server.ReferenceServer`."""
        self.url: str = server.url
        self.knobs = dict(knobs)
        """The marker's knobs, as given."""

    @property
    def config(self) -> ServerConfig:
        """The server's :class:`~loadkit.server.ServerConfig` (every knob, defaults included)."""
        return self.server.config

    @property
    def secret_key(self) -> str:
        """The key ``loadkit_run`` sends it (its first accepted key)."""
        return self.server.config.secret_keys[0]

    def stats(self) -> dict[str, Any]:
        """The server's truth counters: the answer of ``GET /api/loadkit/stats``."""
        return self.server.stats()

    def reset(self) -> dict[str, Any]:
        """Set the counters back to 0 (the batches it stores stay); the fresh counters."""
        return self.server.reset_stats()

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in self.knobs.items() if k != "secret_keys")
        return f"<loadkit_server {self.url} {knobs or 'default knobs'}>"


class _Servers:
    """The session's servers, one per distinct configuration."""

    def __init__(self) -> None:
        self._running: dict[Any, LoadkitServer] = {}

    def get(self, knobs: dict[str, Any]) -> LoadkitServer:
        from loadkit import wire  # noqa: PLC0415
        from loadkit.server import ReferenceServer, ServerConfig  # noqa: PLC0415

        # the local key unless a knob says otherwise: a key of the user's environment is
        # never handed to a local server, and the same knobs give the same config
        config = ServerConfig.parse(**{"secret_keys": (wire.DEFAULT_LOCAL_SECRET_KEY,), **knobs})
        found = self._running.get(config)
        if found is None or not found.server.running:
            server = ReferenceServer(config, mode="process").start()
            found = self._running[config] = LoadkitServer(server, knobs)
        return found

    def stop(self) -> None:
        running, self._running = list(self._running.values()), {}
        for found in running:
            found.server.stop()


@pytest.fixture(scope="session")
def _loadkit_servers() -> Iterator[_Servers]:
    servers = _Servers()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def loadkit_server(request: pytest.FixtureRequest, _loadkit_servers: _Servers) -> LoadkitServer:
    """A loadkit reference server with the knobs of the test's ``loadkit_server`` marker;
    one per distinct set of knobs, shared by the tests that ask for the same set."""
    node = request.node
    knobs = node.stash.get(_KNOBS, None)
    if knobs is None:  # not collected through this plugin's hook (or no marker)
        markers = list(node.iter_markers(SERVER_MARKER))
        knobs = _marker_knobs(node, markers) if markers else {}
    return _loadkit_servers.get(knobs)


# --- loadkit_run ----------------------------------------------------------------------------


def _display(url: str) -> str:
    """``url`` without a user and password it may carry (never printed)."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _unreachable(url: str) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens, else the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http:// or https:// URL with a host"
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return re.sub(r"\s+", " ", reason).strip()


def _external_target(config: pytest.Config) -> tuple[str, str] | None:
    """(URL, where it came from) of a target given to the session, else None."""
    host = config.getoption("--loadkit-host")
    if host:
        return str(host).strip(), "--loadkit-host"
    env = os.environ.get("TRIGGER_API_URL", "").strip()
    return (env, "TRIGGER_API_URL") if env else None


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """``os.environ`` with ``values`` set (None: removed) for the block: what the locust
    subprocess of :func:`loadkit.run` inherits."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in values.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        yield


@pytest.fixture
def loadkit_run(request: pytest.FixtureRequest) -> Callable[..., Run]:
    """A factory: ``loadkit_run(users=2, run_time="5s", **run_options) -> Run``, a
    :func:`loadkit.run` against ``loadkit_server`` (or ``--loadkit-host`` /
    ``$TRIGGER_API_URL``); results under ``tmp_path`` or ``--loadkit-results``."""
    config = request.config
    external = _external_target(config)
    if external is not None:  # checked at setup: a target that cannot be reached errors here
        url, source = external
        shown = _display(url)
        checked = config.stash[_REACHABLE]
        if url not in checked:
            checked[url] = _unreachable(url)
        if checked[url] is not None:
            pytest.fail(f"loadkit: {source} {shown} is unreachable: {checked[url]}",
                        pytrace=False)
        if not os.environ.get("TRIGGER_SECRET_KEY", "").strip():
            pytest.fail(f"loadkit: {source} {shown} is given but TRIGGER_SECRET_KEY is not "
                        "set; export the secret key of the environment to load-test",
                        pytrace=False)
    # the server starts at setup too: a server that cannot start is an error, not a failure
    server = request.getfixturevalue("loadkit_server") if external is None else None
    option = config.getoption("--loadkit-results")
    results = (Path(option) if option else request.getfixturevalue("tmp_path")).absolute()
    kept = request.node.stash.setdefault(_RESULTS, [])

    def run(users: int = 2, run_time: str | float = "5s", **run_options: Any) -> Run:
        import loadkit  # noqa: PLC0415
        from loadkit.options import new_run_id  # noqa: PLC0415
        from loadkit.vocabulary import ExitCode  # noqa: PLC0415

        if "host" in run_options:
            raise TypeError("loadkit_run() takes no host: the target is --loadkit-host, else "
                            "$TRIGGER_API_URL, else the loadkit_server fixture's server")
        run_options.setdefault("progress", False)
        results_dir = Path(run_options.pop("results_dir", None) or results)
        run_id = run_options.pop("run_id", None) or new_run_id()
        run_dir = results_dir / str(run_id)
        env: dict[str, str | None] = {}
        if server is None:
            assert external is not None
            host = external[0]
        else:  # the server's own key, whatever the user's environment holds
            host = server.url
            env = {"TRIGGER_SECRET_KEY": server.secret_key, "TRIGGER_API_URL": None}
        kept.append(run_dir)
        try:
            with _environment(**env):
                done = loadkit.run(users=users, run_time=run_time, host=host,
                                   results_dir=str(results_dir), run_id=run_id, **run_options)
        except Exception:
            log = results_dir / f"{run_id}.locust.log"  # where a run that never began logs
            if not run_dir.exists() and log.exists():
                kept[-1] = log
            raise
        request.node.user_properties.append((RESULTS_PROPERTY, str(run_dir)))
        if done.exit_code == ExitCode.ABORTED:
            pytest.fail(f"loadkit: the target {_display(host)} rejected the secret key "
                        f"(TRIGGER_SECRET_KEY); run {run_id} stopped; its log: {done.log}",
                        pytrace=False)
        return done

    return run


# --- a failing test's results ----------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    kept = [p for p in item.stash.get(_RESULTS, ()) if p.exists()]
    if not kept or not report.failed:
        return
    failed = item.config.stash[_FAILED]
    if any(nodeid == item.nodeid for nodeid, _ in failed):
        return  # once per test (a teardown error after a failed call adds nothing)
    report.sections.append(("loadkit results (kept)", "\n".join(str(p) for p in kept)))
    failed.append((item.nodeid, list(kept)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    failed = config.stash.get(_FAILED, [])
    if not failed:
        return
    terminalreporter.write_sep("-", "loadkit results of failed tests (kept)")
    for nodeid, paths in failed:
        for path in paths:
            terminalreporter.write_line(f"{nodeid}: {path}")

"""Internal: loadkit's listeners on locust's events, and the one role of this process.

:func:`register` adds them to locust's global events (importing :mod:`loadkit.locust` calls
it once). ``init`` picks the process's role from locust's runner, once; the other listeners
hand each event to that role.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadkit.errors import ConfigError, ThresholdError

from .flags import add_loadkit_flags, parse_given_options
from .local import LocalRole
from .master import MasterRole
from .role import Role, exit_at_start_up
from .webui import bind_web_ui
from .worker import WorkerRole

__all__ = ["current_role", "register", "role_for"]

_role: Role | None = None
"""This process's role, set by the ``init`` listener."""
_registered = False


def current_role() -> Role:
    """This process's role (locust has fired ``init``)."""
    if _role is None:
        raise RuntimeError("loadkit: locust has not initialised this process yet")
    return _role


def role_for(runner: Any) -> type[Role]:
    """The role class of a process with ``runner`` (None: a local run with no runner)."""
    if isinstance(runner, WorkerRunner):
        return WorkerRole
    if isinstance(runner, MasterRunner):
        return MasterRole
    return LocalRole


def _on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    global _role
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _role = None
    try:
        options = parse_given_options(environment)
    except (ConfigError, ThresholdError) as exc:
        exit_at_start_up(str(exc))
    _role = role_for(runner)(environment, options, os.environ.get("TRIGGER_SECRET_KEY") or None)
    # Listeners registered here (after the runner's own) fire before the runner's own
    # quitting listener, which quits the workers / tells the master this worker quit.
    environment.events.quitting.add_listener(_on_quitting)
    if runner is not None:
        _role.start(runner)
    bind_web_ui(environment)


def _on_test_start(environment: Any, **_kw: Any) -> None:
    if _role is not None:
        _role.on_test_start()


def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if _role is not None:
        _role.on_test_stop()


def _on_quitting(environment: Any, **_kw: Any) -> None:
    if _role is not None:
        _role.on_quitting()


def _on_quit(**_kw: Any) -> None:
    """After locust's own tables: the loadkit summary block of the run this process owned."""
    recording = getattr(_role, "recording", None)
    if recording is not None:
        recording.print_summary()


def register() -> None:
    """Add loadkit's flags and listeners to locust's events (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    events.init_command_line_parser.add_listener(add_loadkit_flags)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
    events.quit.add_listener(_on_quit)

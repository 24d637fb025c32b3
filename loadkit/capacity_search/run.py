"""Internal: ``loadkit.capacity()`` and ``loadkit capacity``: a capacity search as one locust run.

The search runs inside one headless locust process (:func:`loadkit.runner.run` starts it in a
subprocess, as for any run); this side only starts it, shows each step as it finishes (read
from ``capacity_steps.jsonl`` in the run directory) and returns the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from loadkit.capacity_search.result import STEPS_JSONL, Capacity, step_line
from loadkit.capacity_search.settings import SearchSettings
from loadkit.errors import ConfigError, LoadkitError

__all__ = ["DEFAULT_USERS", "StepPrinter", "capacity"]

DEFAULT_USERS = 64
"""Users of a capacity run: idle users cost little, and the open model needs enough of them
to keep starts on time when the target slows down (a start no user takes in time is
dropped)."""
_SLACK_S = 60.0
"""locust's own run time is the search's bound plus this (the search ends the run itself)."""


class StepPrinter:
    """Prints each finished step's line once, as ``capacity_steps.jsonl`` grows."""

    def __init__(self, out: TextIO | None = None,
                 on_step: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.out = out
        self.on_step = on_step
        self.seen = 0

    def __call__(self, run_dir: Path) -> None:
        try:
            lines = (run_dir / STEPS_JSONL).read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines[self.seen:]:
            try:
                step = json.loads(line)
            except ValueError:  # a line still being written
                break
            self.seen += 1
            if self.out is not None:
                self.out.write(step_line(step) + "\n")
                self.out.flush()
            if self.on_step is not None:
                self.on_step(step)


def capacity(*, start: float | str | None = None, max: float | str | None = None,
             step_seconds: float | str | None = None, resolution: float | str | None = None,
             latency_bound: float | str | None = None, max_seconds: float | str | None = None,
             users: int = DEFAULT_USERS, host: str | None = None, progress: bool = True,
             out: TextIO | None = None, locust_args: tuple[str, ...] | list[str] = (),
             **options: Any) -> Capacity:
    """Search the target's capacity; return the :class:`~loadkit.capacity_search.Capacity`.

    ``start``, ``max`` (offered items/s), ``step_seconds``, ``resolution``, ``latency_bound``
    (ms or ``"auto"``) and ``max_seconds`` shape the search; ``options`` are run options
    (``items``, ``payload_bytes``, ``server_ingest_rate`` …); ``host`` the target (default:
    ``TRIGGER_API_URL``, else the embedded reference server). Each step is printed to ``out``
    (default: stderr when ``progress``) as it finishes.
    """
    search = {"capacity_start": start, "capacity_max": max, "step_seconds": step_seconds,
              "resolution": resolution, "latency_bound": latency_bound,
              "capacity_max_seconds": max_seconds}
    given: dict[str, Any] = {k: v for k, v in search.items() if v is not None}
    for name in ("arrival_rate", "capacity"):
        if options.get(name) not in (None, 0, "0", True, "true"):
            raise ConfigError(name, options[name], "not set: the search sets the offered rate")
        options.pop(name, None)
    settings = SearchSettings.parse(
        start=start, max=max, step_seconds=step_seconds, resolution=resolution,
        latency_bound=latency_bound, max_seconds=max_seconds)
    from loadkit.runner import run  # noqa: PLC0415

    printer = StepPrinter(out if out is not None else (sys.stderr if progress else None))
    result = run(users=users, spawn_rate=users, run_time=settings.max_seconds + _SLACK_S,
                 host=host, progress=progress, locust_args=locust_args, watch=printer,
                 capacity=True, **given, **options)
    try:
        answer = Capacity.load(result.path)
    except LoadkitError as exc:
        raise LoadkitError(f"the capacity search ended without an answer ({exc}); locust's "
                           f"log: {result.log}") from None
    answer._run = result
    return answer

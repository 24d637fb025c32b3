"""Internal: loadkit's options as locust flags, and reading them back.

Every row of :data:`loadkit.options.OPTIONS` becomes a flag (``payload_bytes`` →
``--payload-bytes``), so each also works in the web UI, ``locust.conf``, ``[tool.locust]``
and as ``LOCUST_PAYLOAD_BYTES``. They are parsed once per process (a worker again when the
master's options arrive with locust's spawn message) by
:func:`loadkit.options.parse_options`.
"""

from __future__ import annotations

from typing import Any

from loadkit.options import OPTIONS, RunOptions, add_flags, parse_options

__all__ = ["add_loadkit_flags", "differences", "given_options", "parse_given_options",
           "set_options"]


def add_loadkit_flags(parser: Any, **_kw: Any) -> None:
    """``init_command_line_parser`` listener: declare every loadkit option on locust's parser.

    They stay out of the web UI's start form: a run's options are fixed for the session
    (a value edited there would not reach the run's own settings, and the form would show
    every value, paths included, to whoever opens the page)."""
    add_flags(parser, OPTIONS, include_in_web_ui=False)


def given_options(environment: Any) -> dict[str, Any]:
    """The raw value of every loadkit option locust parsed (empty before parsing)."""
    parsed = environment.parsed_options
    return {o.name: getattr(parsed, o.name, None) for o in OPTIONS} if parsed else {}


def parse_given_options(environment: Any) -> RunOptions:
    """The run's options, from locust's parsed flags (raises ConfigError / ThresholdError)."""
    return parse_options(**given_options(environment))


def set_options(environment: Any) -> dict[str, Any]:
    """The loadkit options this process was given a value for (others are at their default)."""
    defaults = {o.name: o.default for o in OPTIONS}
    return {k: v for k, v in given_options(environment).items()
            if v is not None and v != defaults[k]}


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The options a worker set (``theirs``) to another value than the master's (``mine``:
    every option's value), as ``--flag VALUE (the master's: VALUE)``."""
    flags = {o.name: o.flag for o in OPTIONS}
    return [f"{flags.get(k, k)} {v} (the master's: {mine.get(k)})"
            for k, v in sorted(theirs.items()) if k in flags and mine.get(k) != v]

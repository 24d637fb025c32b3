"""Internal: small value parsers (and the setting descriptor) shared by every configuration parser.

Each takes the setting's name and the value as given (a Python value or the string a flag,
config file or environment variable gives) and raises :class:`~loadkit.errors.ConfigError`
naming the setting, the value and the accepted form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadkit.errors import ConfigError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "Setting", "parse_bool", "parse_float", "parse_int"]

@dataclass(frozen=True, slots=True)
class Setting:
    """One setting of a parser's table (spec, retry) as flags, config keys and keywords see
    it: its name, its default as the string the parser takes, and its help."""

    name: str
    default: str
    help: str


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(name: str, value: object, *, empty: bool | None = None) -> bool:
    """``value`` as a bool: a bool, or ``1/true/yes/on`` and ``0/false/no/off`` (any case,
    surrounding blanks ignored). An empty string is ``empty`` when given, else an error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    if text == "" and empty is not None:
        return empty
    raise ConfigError(name, value, "true or false")


def parse_float(name: str, value: object, low: float = 0.0, *, above: bool = False) -> float:
    """``value`` as a finite number of at least ``low`` (above it with ``above``); ``_`` may
    group digits."""
    try:
        number = float(str(value).replace("_", ""))
    except ValueError:
        number = math.nan
    ok = math.isfinite(number) and (number > low if above else number >= low)
    if isinstance(value, bool) or not ok:
        raise ConfigError(name, value, f"a number {'above' if above else 'of at least'} {low:g}")
    return number


def parse_int(name: str, value: object, low: int) -> int:
    """``value`` as a whole number of at least ``low``; ``_`` may group digits."""
    try:
        number = int(str(value).replace("_", ""))
    except ValueError:
        number = None
    if isinstance(value, bool) or number is None or number < low:
        raise ConfigError(name, value, f"a whole number of at least {low}")
    return number

"""Small value parsers shared by every configuration parser (spec, client, retry, server).

Each takes the setting's name and the value as given (a Python value or the string a flag,
config file or environment variable gives) and raises :class:`~loadkit.errors.ConfigError`
naming the setting, the value and the accepted form.
"""

from __future__ import annotations

from loadkit.errors import ConfigError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]

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

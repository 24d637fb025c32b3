"""Tests for the run-time parser of loadkit.run() (locust's duration form)."""

import pytest

from loadkit.errors import ConfigError
from loadkit.runner import _seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (2.5, 2.5), ("20s", 20.0), ("90", 90.0), ("5m", 300.0), ("1h30m", 5400.0),
     ("1.5m", 90.0), ("1h", 3600.0)],
)
def test_durations_parse(value, seconds):
    """Numbers and locust's h/m/s forms give seconds."""
    assert _seconds(value) == seconds


@pytest.mark.parametrize("value", ["1.2.3", "", "abc", "0s", "s", "5x", -1, 0, True, "1m1h"])
def test_bad_durations_are_config_errors(value):
    """Anything else is a ConfigError naming run_time, never a ValueError from inside."""
    with pytest.raises(ConfigError, match="run_time"):
        _seconds(value)

"""Numbers for people: prefixes, separators, units, never scientific notation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadkit import humanize as hz


@pytest.mark.parametrize(("value", "text"), [
    (39_580, "39.6 k items/s"), (958.2, "958 items/s"), (9.583, "9.58 items/s"),
    (12_345_678, "12.3 M items/s"), (0, "0 items/s"), (None, "–"), (math.nan, "–"),
])
def test_rate(value, text):
    """Rates take an SI prefix from 10,000 on and three significant figures."""
    assert hz.rate(value, "items/s") == text


@pytest.mark.parametrize(("value", "text"), [
    (4.213, "4.2 ms"), (42.6, "43 ms"), (1234.6, "1,235 ms"), (0.0, "0.0 ms"),
    (np.float64(250.0), "250 ms"),
])
def test_ms(value, text):
    """Milliseconds: one decimal below 10 ms, whole with separators above."""
    assert hz.ms(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "100 %"), (0.9995, "99.95 %"), (0.031, "3.1 %"), (0.00004, "0.004 %"), (0, "0 %"),
    (0.5, "50 %"),
])
def test_share(value, text):
    """A share never rounds a part to 0 % or a near-whole to 100 %."""
    assert hz.share(value) == text


def test_sizes_rates_counts_and_values():
    """MB/s, sizes, counts, durations and table values read as people write them."""
    assert hz.mb_per_s(11.94) == "11.9 MB/s"
    assert hz.mb_per_s(0.05) == "50 kB/s"
    assert hz.size(1_190_000) == "1.19 MB"
    assert hz.count(1_234_567) == "1,234,567"
    assert hz.duration(125) == "2 min 05 s"
    assert hz.value(1.195e7) == "11,950,000"
    assert hz.value(True) == "yes"
    assert hz.value(np.int64(3958)) == "3,958"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_never_scientific_notation(x):
    """No function writes an exponent, whatever the number."""
    for func in (hz.number, hz.value, hz.ms, hz.share, hz.size, hz.count, hz.duration):
        assert not re.search(r"\de[+-]?\d", func(x)), (func.__name__, x)
    assert not re.search(r"\de[+-]?\d", hz.rate(x, "items/s"))
    assert not re.search(r"\de[+-]?\d", hz.mb_per_s(x))

"""Tests for loadkit.distributions: parsing spec strings and drawing from them."""

import numpy as np
import pytest

from loadkit.distributions import Dist
from loadkit.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "kind", "params"),
    [
        ("100", "fixed", (100.0,)),
        ("fixed:7", "fixed", (7.0,)),
        ("uniform:1:1000", "uniform", (1.0, 1000.0)),
        ("lognormal:512:1.0", "lognormal", (512.0, 1.0)),
        ("pareto:100:1.5", "pareto", (100.0, 1.5)),
        ("choice:10,100,1000", "choice", (10.0, 100.0, 1000.0)),
        ("1_000", "fixed", (1000.0,)),
    ],
)
def test_parse_forms(text, kind, params):
    """Each documented string form parses to its kind and parameters."""
    dist = Dist.parse(text, field="items")
    assert (dist.kind, dist.params) == (kind, params)


@pytest.mark.parametrize(
    "text", ["100", "uniform:1:1000", "lognormal:512:1", "pareto:100:1.5", "choice:10*3,100"]
)
def test_str_round_trips(text):
    """A parsed distribution prints back as a string that parses to the same value."""
    dist = Dist.parse(text, field="x")
    assert Dist.parse(str(dist), field="x") == dist


@pytest.mark.parametrize(
    "text",
    ["", "abc", "uniform:5", "uniform:9:1", "lognormal:-1:1", "pareto:1:0", "choice:", "1.5",
     "choice:1*0", "normal:1:2", "uniform:a:b"],
)
def test_bad_strings_name_field_value_and_form(text):
    """A string that does not parse raises ConfigError naming the field, value and forms."""
    with pytest.raises(ConfigError) as info:
        Dist.parse(text, field="payload_bytes")
    message = str(info.value)
    assert "payload_bytes" in message
    assert repr(text) in message
    assert "uniform:LO:HI" in message


def test_bounds_are_enforced_for_bounded_forms():
    """Bounded forms outside the field's range are rejected with the range in the message."""
    with pytest.raises(ConfigError, match="1 to 1000"):
        Dist.parse("uniform:0:10", field="items", low=1, high=1000)
    with pytest.raises(ConfigError, match="1 to 1000"):
        Dist.parse("1001", field="items", low=1, high=1000)
    with pytest.raises(ConfigError):
        Dist.parse(-5, field="payload_bytes", low=0)


def test_unbounded_draws_are_clipped():
    """Heavy-tailed draws are clipped to the field's bounds."""
    rng = np.random.default_rng(1)
    draws = Dist.parse("pareto:100:0.5", field="items").sample(rng, 10_000, low=1, high=1000)
    assert draws.min() >= 1
    assert draws.max() == 1000


@pytest.mark.parametrize(
    ("text", "tolerance"),
    [("uniform:100:300", 0.02), ("lognormal:512:0.5", 0.03), ("pareto:100:3", 0.03),
     ("choice:10*3,100", 0.02)],
)
def test_sample_means_match_the_distribution(text, tolerance):
    """Large samples have the mean the distribution says they should."""
    dist = Dist.parse(text, field="x")
    draws = dist.sample(np.random.default_rng(7), 200_000)
    assert abs(draws.mean() - dist.mean) / dist.mean < tolerance


def test_same_generator_state_gives_same_draws():
    """Draws are reproducible from the numpy generator's seed."""
    dist = Dist.parse("lognormal:512:1.0", field="x")
    a = dist.sample(np.random.default_rng([3, 4]), 100)
    b = dist.sample(np.random.default_rng([3, 4]), 100)
    assert a.tolist() == b.tolist()

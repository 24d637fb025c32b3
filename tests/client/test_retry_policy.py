"""RetryPolicy: SDK parity defaults, delays, status rules, 429 waits and parsing."""

from __future__ import annotations

import random
import time

import pytest

from loadkit.errors import ConfigError
from loadkit.retry import RETRY_FIELDS, RetryPolicy


def test_defaults_are_sdk_parity():
    """The default policy has the SDK's numbers for streams and creates."""
    p = RetryPolicy()
    assert (p.attempts, p.base_delay, p.factor, p.max_delay, p.jitter) == (5, 1.0, 2.0, 30.0, True)
    assert (p.create_attempts, p.create_base_delay, p.create_factor, p.create_max_delay,
            p.create_jitter) == (5, 1.0, 1.6, 30.0, False)
    assert p.resend == "full"
    assert p.retry_statuses == {408, 409, 429}
    assert p.retry_5xx


def test_stream_delay_is_sdk_formula_and_seedable():
    """Stream delay = min(30, rand[1,2) × 1 s × 2^(n−1)), reproducible with a seeded Random."""
    p = RetryPolicy()
    for attempt in range(1, 8):
        d = p.stream_delay(attempt, random.Random(attempt))
        low = 2 ** (attempt - 1)
        assert min(30, low) <= d <= min(30, 2 * low)
    a = [p.stream_delay(n, random.Random(7)) for n in (1, 2, 3)]
    b = [p.stream_delay(n, random.Random(7)) for n in (1, 2, 3)]
    assert a == b
    assert RetryPolicy(jitter=False).stream_delay(3, random.Random()) == 4.0


def test_create_delay_has_no_jitter():
    """Create delays grow by 1.6 from 1 s and cap at 30 s, without jitter."""
    p = RetryPolicy()
    assert [round(p.create_delay(n), 4) for n in (1, 2, 3)] == [1.0, 1.6, 2.56]
    assert p.create_delay(50) == 30.0


@pytest.mark.parametrize(("status", "headers", "retry"), [
    (408, {}, True), (409, {}, True), (429, {}, True), (500, {}, True), (503, {}, True),
    (400, {}, False), (404, {}, False), (422, {}, False),
    (500, {"x-should-retry": "false"}, False), (400, {"x-should-retry": "true"}, True),
])
def test_status_rules_and_should_retry_override(status, headers, retry):
    """408/409/429/5xx retry; x-should-retry overrides the status rule both ways."""
    assert RetryPolicy().status_retryable(status, headers) is retry


def test_should_retry_can_be_ignored():
    """With honor_should_retry off only the status decides."""
    p = RetryPolicy(honor_should_retry=False)
    assert p.status_retryable(500, {"x-should-retry": "false"})


def test_rate_limit_wait_reads_seconds_ms_delta_and_retry_after():
    """x-ratelimit-reset in epoch s or ms is told apart by magnitude; then retry-after."""
    p = RetryPolicy()
    now = 1_700_000_000.0
    w = p.rate_limit_wait({"x-ratelimit-reset": str(int(now) + 3)}, now=now)
    assert (round(w.seconds, 3), w.unit) == (3.0, "s")
    w = p.rate_limit_wait({"x-ratelimit-reset": str(int(now * 1000) + 2500)}, now=now)
    assert (round(w.seconds, 3), w.unit) == (2.5, "ms")
    w = p.rate_limit_wait({"x-ratelimit-reset": "4"}, now=now)
    assert (w.seconds, w.unit) == (4.0, "delta")
    w = p.rate_limit_wait({"retry-after": "2"}, now=now)
    assert (w.seconds, w.source, w.unit) == (2.0, "retry-after", None)
    w = p.rate_limit_wait({"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"})
    assert w.seconds == p.rate_limit_max_wait
    assert p.rate_limit_wait({"x-ratelimit-reset": str(int(now) - 5)}, now=now).seconds == 0.0
    assert p.rate_limit_wait({}, now=now) is None
    assert p.rate_limit_wait({"retry-after": "soon"}, now=now) is None
    assert RetryPolicy(rate_limit_max_wait=1).rate_limit_wait(
        {"x-ratelimit-reset": str(time.time() + 100)}).seconds == 1.0


def test_parse_strings_and_round_trip():
    """parse takes flag strings (ms suffix, status lists) and as_settings gives them back."""
    p = RetryPolicy.parse(attempts="3", base_delay="250ms", resend="missing",
                          retry_statuses="429,5xx", jitter="false", max_delay=None)
    assert (p.attempts, p.base_delay, p.resend, p.jitter) == (3, 0.25, "missing", False)
    assert p.retry_statuses == {429}
    assert p.retry_5xx
    assert p.max_delay == 30.0
    assert RetryPolicy.parse(**p.as_settings()) == p
    assert p.replace(attempts="2").attempts == 2
    assert p.replace(attempts="2").resend == "missing"
    assert RetryPolicy.parse(retry_statuses="none").status_retryable(503, {}) is False
    assert {f.name for f in RETRY_FIELDS} == set(RetryPolicy().as_settings())
    assert RetryPolicy.none().attempts == 1
    assert RetryPolicy.none().create_attempts == 1


@pytest.mark.parametrize(("field", "value"), [
    ("attempts", "0"), ("attempts", "many"), ("base_delay", "-1"), ("base_delay", "fast"),
    ("factor", "0.5"), ("resend", "some"), ("retry_statuses", "4xx"), ("jitter", "maybe"),
    ("colour", "red"),
])
def test_parse_errors_name_the_field(field, value):
    """A bad setting raises ConfigError naming the field and the value."""
    with pytest.raises(ConfigError) as info:
        RetryPolicy.parse(**{field: value})
    assert info.value.field == field
    assert info.value.value == value

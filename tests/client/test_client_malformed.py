"""Malformed answers (wrong JSON types, junk headers): a typed error or a violation, no raise."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.errors import ProtocolError
from loadkit.generators import BatchSpec
from loadkit.retry import RetryPolicy

from .conftest import FAST, KEY, Script

BATCH = BatchSpec.parse(items="5").batch(0)
ONCE = FAST.replace(attempts=1, create_attempts=1)


def _send(script: Script, **kw: Any):
    # scripted: wrongly typed answers and junk rate-limit headers are what the reference
    # server never sends
    kw.setdefault("retry", ONCE)
    with BatchClient("http://target.test", KEY, transport=httpx.MockTransport(script), seed=1,
                     sleep=lambda _s: None, **kw) as client:
        result = client.send(BATCH)
    json.dumps(result.as_dict(chunk_timings=True))  # everything stays JSON-able
    json.dumps(result.to_record(run_id="r", worker_id="w", user_id=0).as_dict())
    return result


def _batch(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "batch_script", "status": "COMPLETED", "runCount": 5,
                            "runs": [f"run_{i}" for i in range(5)], "processing": {"errors": []}}
    body.update(fields)
    return body


@pytest.mark.parametrize("answer", [
    _batch(processing={"errors": [{"index": None, "errorCode": "PAYLOAD_TOO_LARGE"},
                                  {"index": 3, "errorCode": "PAYLOAD_TOO_LARGE"}]}),
    _batch(processing={"errors": "none"}),
    _batch(processing={"errors": [["not", "an", "object"]]}),
    _batch(processing={"errors": [{"index": 1, "errorCode": 7}]}),
    _batch(processing=None),
    _batch(runs=[1, 2, 3, 4, 5]),
    _batch(runs="run_0,run_1"),
    _batch(runs=None),
    _batch(status=["COMPLETED"]),
    _batch(status=None),
], ids=["null-index", "errors-text", "error-array", "code-number", "no-processing",
        "int-runs", "runs-text", "no-runs", "status-list", "no-status"])
def test_malformed_retrieve_answer_is_a_violation(answer):
    """A retrieve answer that is not a Batch is the violation retrieve_malformed (no TypeError)."""
    result = _send(Script(retrieve=[(200, answer, {})]), verify=True, verify_timeout=1.0)
    assert result.sealed
    assert result.verified is False
    assert [v.name for v in result.violations] == ["retrieve_malformed"]
    assert result.error is None


@pytest.mark.parametrize("body", [[1, 2], "text", None])
def test_retrieve_answer_that_is_not_an_object_fails_verify(body):
    """A retrieve answer that is not a JSON object is the violation retrieve_failed (protocol)."""
    result = _send(Script(retrieve=[(200, body, {})]), verify=True)
    assert result.verified is False
    (violation,) = result.violations
    assert (violation.name, violation.actual) == ("retrieve_failed", "protocol")


@pytest.mark.parametrize("answer", [
    {"id": 12345, "runCount": 5, "isCached": False},
    {"id": "", "runCount": 5, "isCached": False},
    {"id": "a/b", "runCount": 5, "isCached": False},
    {"runCount": 5, "isCached": False},
    {"id": "batch_x", "runCount": "5", "isCached": False},
    {"id": "batch_x", "runCount": 5, "isCached": 1},
    {"id": "batch_x", "runCount": 5, "isCached": "true"},
    [{"id": "batch_x"}],
], ids=["id-int", "id-empty", "id-slash", "no-id", "runcount-text", "cached-number",
        "cached-text", "array"])
def test_malformed_create_answer_is_a_protocol_error(answer):
    """A create answer with wrong JSON types is a ProtocolError on the result; nothing streams."""
    script = Script(create=[(202, answer, {})])
    result = _send(script)
    assert result.outcome == "failed"
    assert result.error_kind == "protocol"
    assert isinstance(result.error, ProtocolError)
    assert result.attempts == []
    assert len(script.requests) == 1


@pytest.mark.parametrize("answer", [
    {"id": "batch_script", "itemsAccepted": "5", "itemsDeduplicated": 0, "sealed": True},
    {"id": "batch_script", "itemsAccepted": 5, "itemsDeduplicated": 0, "sealed": 1},
    {"id": "batch_script", "itemsAccepted": 5, "itemsDeduplicated": None, "sealed": True},
    {"id": "batch_script", "itemsAccepted": 5.0, "itemsDeduplicated": 0, "sealed": True},
    {"id": "batch_script", "itemsAccepted": -5, "itemsDeduplicated": 0, "sealed": True},
    {"id": 7, "itemsAccepted": 5, "itemsDeduplicated": 0, "sealed": True},
    {"id": "batch_script", "itemsAccepted": 5, "itemsDeduplicated": 0, "sealed": True,
     "runCount": "5"},
    {"id": "batch_script", "itemsAccepted": 3, "itemsDeduplicated": 0, "sealed": False,
     "enqueuedCount": [3], "expectedCount": 5},
    [5, 0, True],
], ids=["accepted-text", "sealed-number", "dedup-null", "accepted-float", "accepted-negative",
        "id-int", "runcount-text", "enqueued-list", "array"])
def test_malformed_stream_answer_is_a_protocol_error(answer):
    """A 200 stream answer with wrong JSON types is a ProtocolError on the result, not counted."""
    result = _send(Script(stream=[(200, answer, {})]))
    assert result.outcome == "failed"
    assert result.error_kind == "protocol"
    assert isinstance(result.error, ProtocolError)
    assert "check the URL" in str(result.error)
    assert result.items_accepted == 0
    assert result.to_record(run_id="r", worker_id="w", user_id=0).enqueued_count is None


JUNK_HEADERS = [
    {"retry-after": "abc"},
    {"x-ratelimit-reset": "1e999", "retry-after": "0"},
    {"x-ratelimit-reset": "nan"},
    {"retry-after": "1 Jan 99999999999999999999 0:0:0 GMT"},
    {"retry-after": "Mon, 01 Jan 2020 00:00:00 +99999999999999999999"},
    {"x-should-retry": "maybe", "x-ratelimit-reset": "-5"},
]


@pytest.mark.parametrize("headers", JUNK_HEADERS)
def test_junk_rate_limit_headers_fall_back_to_backoff(headers):
    """429s with unusable wait headers (create and stream) are retried with backoff and seal."""
    script = Script(create=[(429, {"error": "slow"}, headers), (202, None, {})],
                    stream=[(429, {"error": "slow"}, headers), "seal"])
    result = _send(script, retry=FAST)
    assert result.ok, (result.error, result.violations)
    assert result.retry_reasons == "create:429,429"
    assert result.rate_limited == 2
    assert result.rate_limit_wait_ms == 0


def test_retry_after_dates_no_clock_holds_are_ignored():
    """retry-after dates whose year overflows the clock give no wait (they used to raise)."""
    policy = RetryPolicy()
    for text in ("1 Jan 99999999999999999999 0:0:0 GMT",
                 "Mon, 01 Jan 2020 00:00:00 +99999999999999999999"):
        assert policy.rate_limit_wait({wire.Header.RETRY_AFTER: text}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=False,
                                                                    allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)
header_values = st.sampled_from(["abc", "1e999", "-1", "0", "nan", "", "true", "false",
                                 "Mon, 01 Jan 2020 00:00:00 GMT", "99999999999999999999"])


def _maybe_replace(base: dict[str, Any], draw_fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in draw_fields.items():
        if value == "<drop>":
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _fields(names: list[str]):
    return st.dictionaries(st.sampled_from(names), st.just("<drop>") | json_values, max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    create=_fields(["id", "runCount", "isCached"]),
    stream=_fields(["id", "itemsAccepted", "itemsDeduplicated", "sealed", "runCount",
                    "enqueuedCount", "expectedCount"]),
    retrieve=_fields(["status", "runs", "processing", "runCount"]),
    status=st.sampled_from([200, 400, 422, 429, 500]),
    headers=st.dictionaries(st.sampled_from(["retry-after", "x-ratelimit-reset",
                                             "x-should-retry"]), header_values, max_size=3),
)
def test_any_malformed_answer_ends_on_the_result(create, stream, retrieve, status, headers):
    """Whatever JSON types the create, stream and retrieve answers hold, send returns a result."""
    good_create = {"id": "batch_script", "runCount": 5, "isCached": False}
    good_stream = wire.stream_response("batch_script", items_accepted=5, items_deduplicated=0,
                                       sealed=True, run_count=5)
    script = Script(create=[(202, _maybe_replace(good_create, create), headers)],
                    stream=[(status, _maybe_replace(good_stream, stream), headers), "seal"],
                    retrieve=[(200, _maybe_replace(_batch(), retrieve), headers)])
    result = _send(script, retry=FAST.replace(attempts=2, create_attempts=2), verify=True,
                   verify_timeout=0)
    assert result.ok or result.error is not None or result.violations \
        or (result.sealed and result.verified is None and result.verify_note)

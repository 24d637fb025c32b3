"""Tests of phase 1, POST /api/v3/batches, against a live reference server on loopback."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from loadkit import wire
from loadkit.server import RateLimit, ReferenceServer
from loadkit.server.ratelimit import TokenBucket

from .conftest import KEY, OTHER_KEY, Api


def test_create_answers_202_with_id_and_run_count(api):
    """A valid create answers 202 {id: batch_…, runCount, isCached: false}."""
    r = api.create(5)
    assert r.status_code == 202
    body = r.json()
    assert body["id"].startswith("batch_")
    assert body["runCount"] == 5
    assert body["isCached"] is False
    assert "idempotencyKey" not in body


def test_run_count_over_maximum_names_both_numbers(api):
    """runCount above max_items answers 400 naming the count and the maximum."""
    r = api.create(5001)
    assert r.status_code == 400
    assert r.json()["error"] == wire.msg.run_count_over(5001, 5000)
    assert "5001" in r.json()["message"]
    assert "5000" in r.json()["message"]


@pytest.mark.parametrize("run_count", [0, -1, -(2**40), 1.5, "3", None, True, 2**63 - 1])
def test_bad_run_counts_answer_400(api, run_count):
    """Zero, negative, fractional, string, null, boolean or huge runCounts answer 400, never 500."""
    r = api.create(run_count)
    assert r.status_code == 400
    assert r.json()["error"].startswith(("Invalid request body", "runCount", "Batch runCount"))


def test_run_count_beyond_64_bits_answers_400(api):
    """A runCount too large for any integer type answers 400."""
    r = api.client.post(wire.CREATE_PATH, content=b'{"runCount": 1' + b"0" * 40 + b"}")
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"taskIdentifiers": []}, 400),
        ({"taskIdentifiers": [""]}, 400),
        ({"taskIdentifiers": "a"}, 400),
        ({"taskIdentifiers": ["a", "b"]}, 202),
        ({"idempotencyKey": "k" * 2048}, 202),
        ({"idempotencyKey": "k" * 2049}, 400),
        ({"parentRunId": 3}, 400),
        ({"resumeParentOnCompletion": "yes"}, 400),
        ({"idempotencyKeyOptions": []}, 400),
        ({"unknownField": {"x": 1}}, 202),
    ],
)
def test_create_field_rules(api, fields, status):
    """Optional fields follow the server's schema; unknown fields are ignored."""
    r = api.create(2, **fields)
    assert r.status_code == status, r.text


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"[1,2]", b'"x"', b"null", b"\xff\xfe"])
def test_empty_invalid_or_non_object_bodies_answer_400(api, raw):
    """An empty, malformed, non-UTF-8 or non-object create body answers 400 with an error text."""
    r = api.client.post(wire.CREATE_PATH, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()) == {"error", "message"}


def test_body_over_131072_bytes_answers_413(api):
    """A create body over 131,072 bytes answers 413, whether its length is declared or chunked."""
    big = orjson.dumps({"runCount": 1, "pad": "x" * wire.CREATE_BODY_MAX_BYTES})
    assert api.client.post(wire.CREATE_PATH, content=big).status_code == 413
    chunked = api.client.post(wire.CREATE_PATH, content=iter([big[:1000], big[1000:]]))
    assert chunked.status_code == 413


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic " + KEY, KEY, "Bearer"])
def test_missing_or_wrong_key_answers_401(server, auth):
    """No key, an unknown key or a non-Bearer scheme answers 401 without echoing the key."""
    headers = {"authorization": auth} if auth else {}
    r = httpx.post(server.url + wire.CREATE_PATH, json={"runCount": 1}, headers=headers)
    assert r.status_code == 401
    assert KEY not in r.text


def test_idempotent_replay_answers_200_cached(api):
    """The same key, environment and sorted task identifiers replay the batch as 200 isCached."""
    first = api.create(4, idempotencyKey="replay-1", taskIdentifiers=["b", "a"])
    again = api.create(4, idempotencyKey="replay-1", taskIdentifiers=["a", "b"])
    assert first.status_code == 202
    assert first.json()["idempotencyKey"] == "replay-1"
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "runCount": 4, "isCached": True}
    other_tasks = api.create(4, idempotencyKey="replay-1", taskIdentifiers=["a"])
    assert other_tasks.status_code == 202
    assert other_tasks.json()["id"] != first.json()["id"]


def test_replay_is_per_environment(server):
    """An idempotency key used in one environment creates a new batch in another."""
    a, b = Api(server.url, KEY), Api(server.url, OTHER_KEY)
    try:
        first = a.create(2, idempotencyKey="env-scoped")
        other = b.create(2, idempotencyKey="env-scoped")
        assert first.status_code == other.status_code == 202
        assert first.json()["id"] != other.json()["id"]
    finally:
        a.close()
        b.close()


@pytest.fixture
def limited():
    """A server with a small token bucket: 10 tokens, 5 back every 2 s; a full bucket for each
    test (a bucket shared by a module made one test fail after another drained it)."""
    with ReferenceServer(mode="thread", rate_limit="10:5/2s") as s:
        yield s


@pytest.fixture
def limited_ms():
    """The same bucket, sending x-ratelimit-reset in epoch milliseconds (one per test too)."""
    with ReferenceServer(mode="thread", rate_limit="10:5/2s", rate_limit_reset_unit="ms") as s:
        yield s


def test_rate_limit_answers_429_with_headers(limited):
    """Creates cost runCount tokens; past the bucket a 429 carries the four rate-limit headers."""
    with Api(limited.url) as api:
        assert api.create(6).status_code == 202
        assert api.create(3, idempotencyKey="rl").status_code == 202
        r = api.create(5)
        assert r.status_code == 429
        h = r.headers
        assert h[wire.Header.RATELIMIT_LIMIT] == "10"
        assert h[wire.Header.RATELIMIT_REMAINING] == "1"
        reset = int(h[wire.Header.RATELIMIT_RESET])
        assert time.time() - 1 <= reset <= time.time() + 3  # epoch seconds
        assert int(h[wire.Header.RETRY_AFTER]) >= 1
        assert r.json()["error"] == wire.msg.rate_limited()
        # a rejected create costs nothing, and a replay costs no tokens
        assert api.create(1).status_code == 202
        assert api.create(3, idempotencyKey="rl").status_code == 200
        assert api.create(1).status_code == 429
        assert api.stats()["rate_limited"] == 2


def test_rate_limit_refills_after_retry_after(limited):
    """Waiting retry-after seconds refills the bucket enough for the rejected create."""
    with Api(limited.url, timeout=10) as api:
        r = api.create(10)
        while r.status_code == 202:
            r = api.create(10)
        assert r.status_code == 429
        time.sleep(float(r.headers["retry-after"]) + 0.2)
        assert api.create(5).status_code == 202


def test_rate_limit_reset_in_milliseconds(limited_ms):
    """With rate_limit_reset_unit='ms' the reset header is epoch milliseconds."""
    with Api(limited_ms.url) as api:
        api.create(10)
        r = api.create(10)
        assert r.status_code == 429
        reset = int(r.headers[wire.Header.RATELIMIT_RESET])
        assert time.time() * 1000 - 1000 <= reset <= time.time() * 1000 + 5000


def test_create_delay_adds_latency():
    """create_delay holds every create answer for at least that long."""
    with ReferenceServer(mode="thread", create_delay=0.3) as s, Api(s.url) as api:
        t0 = time.perf_counter()
        assert api.create(1).status_code == 202
        assert time.perf_counter() - t0 >= 0.3


def test_wrong_method_and_unknown_path(api):
    """Unknown paths answer 404 and wrong methods 405, both as JSON errors."""
    assert api.client.get(wire.CREATE_PATH).status_code == 405
    r = api.client.get("/nope")
    assert r.status_code == 404
    assert "error" in r.json()


def test_run_count_over_the_bucket_answers_429_naming_both_numbers(limited):
    """A runCount the bucket can never hold answers 429 with a message naming both numbers."""
    with Api(limited.url) as api:
        r = api.create(11)
        assert r.status_code == 429
        assert r.json()["error"] == wire.msg.rate_limit_over_bucket(11, 10)
        assert "11" in r.json()["error"]
        assert "at most 10" in r.json()["error"]
        assert r.headers[wire.Header.RATELIMIT_LIMIT] == "10"
        assert int(r.headers[wire.Header.RETRY_AFTER]) >= 1


def test_token_bucket_measures_intervals_on_the_monotonic_clock():
    """Refills follow the monotonic clock whatever the wall clock does; reset is wall + wait."""
    mono, wall = [100.0], [1_700_000_000.0]
    bucket = TokenBucket(RateLimit(10, 5, 2.0), clock=lambda: mono[0], wall=lambda: wall[0])
    assert bucket.take(10) is None
    wall[0] += 3600  # the wall clock jumps an hour ahead: no refill
    headers = dict(bucket.take(5))
    assert headers[wire.Header.RETRY_AFTER.encode()] == b"2"
    assert headers[wire.Header.RATELIMIT_RESET.encode()] == str(int(wall[0]) + 2).encode()
    wall[0] -= 7200  # and back two hours: still no effect
    mono[0] += 2.0
    assert bucket.take(5) is None
    assert bucket.take(1) is not None

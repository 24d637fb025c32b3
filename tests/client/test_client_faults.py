"""Retries, resend modes and truth checks against the reference server's fault knobs and doubles."""

from __future__ import annotations

import httpx
import pytest

from loadkit.generators import BatchSpec

from .conftest import FAST, Script

INPUT_FAULTS = ["duplicate=0.05,gap=0.05", "gap=0.1,shuffle=1", "malformed=1", "schema=1",
                "out_of_range=1", "duplicate=0.1,malformed=1", "oversized=1"]


@pytest.mark.parametrize("resend", ["full", "missing"])
@pytest.mark.parametrize("faults", INPUT_FAULTS)
def test_input_faults_seal_with_zero_violations(server, make_client, resend, faults):
    """Injected input faults end sealed, zero violations, and 'missing' resends exactly the gap."""
    spec = BatchSpec.parse(items="uniform:50:400", payload_bytes="200", faults=faults, seed="5")
    client = make_client(server.url, retry=FAST.replace(resend=resend), verify=True)
    for seq in range(3):
        batch = spec.batch(seq)
        result = client.send(batch)
        assert result.ok, (result.violations, result.error)
        assert result.verified is True
        first = result.attempts[0]
        exp = batch.expected
        assert first.status == exp.status
        if exp.status != 200:
            assert first.reason == "expected_error"
        if not exp.sealed:
            assert len(result.attempts) == 2
            retry = result.attempts[1]
            assert retry.sent == resend
            assert retry.lines == (len(exp.missing) if resend == "missing" else batch.run_count)
            assert retry.answer["itemsAccepted"] == len(exp.missing)


@pytest.mark.parametrize("resend", ["full", "missing"])
def test_server_errors_and_drops_are_retried_to_a_seal(make_server, make_client, resend):
    """Injected 500s and connections dropped mid-stream are retried until the batch seals."""
    srv = make_server(error_rate=0.3, drop_rate=0.3, seed=11, max_items=5000)
    client = make_client(srv.url, retry=FAST.replace(resend=resend, attempts=12), verify=True)
    spec = BatchSpec.parse(items="1500", payload_bytes="500", faults="gap=0.02,duplicate=0.02",
                           max_items="5000", seed="2")
    reasons: list[str] = []
    unknown = 0
    for seq in range(8):
        result = client.send(spec.batch(seq))
        assert result.ok, (result.violations, result.error, result.retry_reasons)
        reasons += [a.reason for a in result.attempts]
        unknown += result.unknown_resends
        for a in result.attempts:
            if a.reason == "dropped":
                assert a.error.kind == "connect"
                assert not a.body_done or a.status is None
    assert "500" in reasons
    assert "dropped" in reasons
    assert unknown > 0
    stats = srv.stats()
    assert stats["injected_drops"] > 0
    assert stats["injected_errors"] > 0


def test_should_retry_false_stops_retries(make_server, make_client):
    """A 500 with x-should-retry: false is not retried; the batch fails with a status error."""
    srv = make_server(error_rate=1, error_should_retry=0)
    result = make_client(srv.url).send(BatchSpec.parse(items="20").batch(0))
    assert len(result.attempts) == 1
    assert result.attempts[0].retry_headers["x-should-retry"] == "false"
    assert result.outcome == "failed"
    assert result.error_kind == "status"
    assert result.to_record(run_id="r", worker_id="w", user_id=0).error_kind == "status"


def test_request_timeout_408_is_retried_until_sealed(make_server, make_client):
    """A server timing slow streams out with 408 is retried; dedupe lets later attempts finish."""
    srv = make_server(request_timeout=0.25, enqueue_delay=0.01)
    client = make_client(srv.url, retry=FAST.replace(resend="missing", attempts=8))
    result = client.send(BatchSpec.parse(items="600").batch(0))
    assert result.ok, (result.violations, result.error)
    assert result.retry_reasons.startswith("408")
    assert result.unknown_resends >= 1


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_rate_limit_429_waits_for_reset_in_seconds_or_ms(make_server, make_client, unit):
    """A 429 waits until x-ratelimit-reset, read right in epoch s or ms; the unit is recorded."""
    srv = make_server(rate_limit="10:10/1s", rate_limit_reset_unit=unit)
    client = make_client(srv.url, retry=FAST.replace(create_attempts=4))
    spec = BatchSpec.parse(items="10")
    first = client.send(spec.batch(0))
    second = client.send(spec.batch(1))
    assert first.ok
    assert second.ok, second.error
    assert second.rate_limited >= 1
    assert second.ratelimit_reset_unit == unit
    assert 0 < second.rate_limit_wait_ms <= 2600
    assert second.total_ms >= second.rate_limit_wait_ms
    rec = second.to_record(run_id="r", worker_id="w", user_id=0)
    assert rec.ratelimit_reset_unit == unit
    assert rec.create_attempts >= 2


def test_rate_limit_exhausted_is_a_rate_limited_failure(make_server, make_client):
    """Creates still rejected after every attempt fail with error_kind rate_limited."""
    srv = make_server(rate_limit="10:10/1h")
    client = make_client(srv.url, retry=FAST.replace(create_attempts=2, rate_limit_max_wait=0.01))
    spec = BatchSpec.parse(items="10")
    assert client.send(spec.batch(0)).ok
    result = client.send(spec.batch(1))
    assert result.outcome == "failed"
    assert result.error_kind == "rate_limited"
    assert result.rate_limited == 2
    assert result.attempts == []


def _scripted(make_client, script, **kw):
    return make_client("http://scripted.test", transport=httpx.MockTransport(script), **kw)


def test_stream_503s_then_the_api_limiters_429_are_retried_to_a_seal(make_server, make_client):
    """Ten 503s (a proxy's status) spend the batch's grant; the API limiter's 429 (reset in ms)
    is waited out; the eleventh stream seals, all through loadkit's own transport."""
    # seed 2 at error_rate 0.9: the first ten fault draws are errors, the eleventh is not
    # (replayed with random.Random("faults:2") as test_server_faults does); the 429 stream
    # draws nothing. The create took the API bucket's only token, back 3 s after it.
    srv = make_server(error_rate=0.9, error_status=503, seed=2, api_rate_limit="1:1/3s")
    client = make_client(srv.url, retry=FAST.replace(attempts=12))
    result = client.send(BatchSpec.parse(items="30").batch(0))
    assert result.ok, (result.violations, result.error, result.retry_reasons)
    assert result.retry_reasons == ",".join(["503"] * 10 + ["429"])
    assert [a.status for a in result.attempts] == [503] * 10 + [429, 200]
    assert [a.sent for a in result.attempts] == ["first"] + ["unknown_full"] * 11
    assert result.attempts[0].retry_headers["x-should-retry"] == "true"
    assert result.attempts[10].rate_limiter == "api"
    assert result.rate_limited == 1
    assert result.ratelimit_reset_unit == "ms"
    assert 0 < result.rate_limit_wait_ms <= 3000
    stats = srv.stats()
    assert stats["responses_by_status"] == {"202": 1, "503": 10, "429": 1, "200": 1}
    assert (stats["injected_errors"], stats["api_rate_limited"]) == (10, 1)
    rec = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert (rec.rate_limited, rec.rate_limiter, rec.ratelimit_reset_unit) == (1, "api", "ms")


def test_scripted_stream_409_is_retried(make_client):
    """A stream answered 409 is retried, and the batch seals on the next attempt."""
    # scripted: the reference server never answers 409 (the SDK retries it, so loadkit does)
    script = Script(stream=[(409, {"error": "busy"}, {}), "seal"])
    result = _scripted(make_client, script, retry=FAST.replace(attempts=3)).send(
        BatchSpec.parse(items="30").batch(0))
    assert result.ok, (result.violations, result.error)
    assert result.retry_reasons == "409"
    assert [a.sent for a in result.attempts] == ["first", "unknown_full"]


def test_scripted_non_retryable_and_exhausted(make_client):
    """404 is not retried; a server that never seals ends not_sealed with a violation each retry."""
    # scripted: the reference server answers no 404 to a batch it created, and never lies
    batch = BatchSpec.parse(items="10").batch(0)
    result = _scripted(make_client, Script(stream=[(404, {"error": "no"}, {})])).send(batch)
    assert len(result.attempts) == 1
    assert result.error_kind == "status"
    never = Script(stream=[(200, {"id": "batch_script", "itemsAccepted": 0,
                                  "itemsDeduplicated": 10, "sealed": False,
                                  "enqueuedCount": 0, "expectedCount": 10}, {})])
    result = _scripted(make_client, never, retry=FAST.replace(attempts=3)).send(batch)
    assert result.outcome == "not_sealed"
    assert result.error is None
    assert len(result.attempts) == 3
    assert {v.name for v in result.violations} >= {"accepted_mismatch", "sealed_mismatch"}


def test_create_429_is_retried_and_a_rejected_key_is_not(make_server, make_client):
    """A create answered 429 by the batch bucket is retried to a 202; a 401 is sent once."""
    srv = make_server(rate_limit="10:10/500ms", rate_limit_reset_unit="ms")
    spec = BatchSpec.parse(items="10")
    client = make_client(srv.url)
    assert client.send(spec.batch(0)).ok  # the bucket is empty now
    result = client.send(spec.batch(1))
    assert result.ok, result.error
    assert (result.create_attempts, result.rate_limited) == (2, 1)
    assert result.retry_reasons == "create:429"
    srv.reset_stats()
    rejected = make_client(srv.url, key="tr_dev_not_this_servers_key").send(spec.batch(2))
    assert (rejected.create_attempts, rejected.error_kind) == (1, "auth")
    assert rejected.attempts == []
    assert srv.stats()["responses_by_status"] == {"401": 1}  # one request: never retried


def test_retried_creates_are_named_in_retry_reasons(make_server, make_client):
    """Create retries come first in retry_reasons, prefixed 'create:', then the stream's."""
    # seed 8 at error_rate 0.5: the first stream passes, the second is a 503, the third passes
    srv = make_server(rate_limit="10:10/500ms", rate_limit_reset_unit="ms", error_rate=0.5,
                      error_status=503, seed=8)
    client = make_client(srv.url, retry=FAST.replace(attempts=3))
    spec = BatchSpec.parse(items="10")
    assert client.send(spec.batch(0)).retry_reasons == ""  # and the bucket is empty now
    result = client.send(spec.batch(1))
    assert result.ok, (result.violations, result.error)
    assert result.create_attempts == 2
    assert result.retry_reasons == "create:429,503"
    rec = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert rec.retry_reasons == "create:429,503"
    assert rec.rate_limited == 1


def test_scripted_create_connect_error_and_5xx_are_retried(make_client):
    """A create's connect error, 500 and 503 are retried and named first, prefixed 'create:'."""
    # scripted: the reference server never answers a create with a 5xx (its injected errors
    # are the stream's), and a connect error, then an answer, needs a target that comes up
    # between two attempts
    script = Script(create=[(500, {"error": "x"}, {}), (503, {"error": "down"}, {}),
                            (202, None, {})])
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return script(request)

    result = _scripted(make_client, handler).send(BatchSpec.parse(items="10").batch(0))
    assert result.ok, (result.violations, result.error)
    assert result.create_attempts == 4
    assert result.retry_reasons == "create:connect,create:500,create:503"
    rec = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert rec.retry_reasons == "create:connect,create:500,create:503"


@pytest.mark.parametrize("resend", ["full", "missing"])
def test_lossy_server_shows_violations(wrong_server, make_client, resend):
    """A server that silently loses items is caught: violations on every answer, never sealed."""
    client = make_client(wrong_server("lose"), retry=FAST.replace(resend=resend, attempts=3))
    result = client.send(BatchSpec.parse(items="100").batch(0))
    assert result.outcome == "not_sealed"
    names = {v.name for v in result.violations}
    assert {"accepted_mismatch", "sealed_mismatch"} <= names
    assert result.to_record(run_id="r", worker_id="w", user_id=0).violations == len(
        result.violations)


def test_double_counting_server_shows_violations(wrong_server, make_client):
    """A server that counts duplicates as accepted is caught by the dedup and total checks."""
    spec = BatchSpec.parse(items="200", faults="duplicate=0.1", seed="3")
    result = make_client(wrong_server("double_count")).send(spec.batch(0))
    names = {v.name for v in result.violations}
    assert {"accepted_mismatch", "dedup_mismatch", "total_accepted_mismatch"} <= names


def test_lying_server_is_caught_by_verify(wrong_server, make_client):
    """A server that claims a seal but lacks a run is caught by verify=True."""
    url = wrong_server("lie_sealed")
    result = make_client(url, verify=True).send(BatchSpec.parse(items="50").batch(0))
    assert result.sealed
    assert result.verified is False
    assert "runs_count_mismatch" in {v.name for v in result.violations}
    plain = make_client(url).send(BatchSpec.parse(items="50").batch(1))
    assert plain.verified is None


def test_backpressure_visible_when_enqueue_is_slow(make_server, make_client):
    """A slow enqueue makes writes wait (high stall fraction); a fast server, none at all."""
    slow = make_server(enqueue_delay=0.001, max_items=8000)
    big = BatchSpec.parse(items="8000", payload_bytes="1000", max_items="8000").batch(0)
    result = make_client(slow.url, send_buffer_bytes=65536, keep_chunk_timings=True).send(big)
    assert result.ok
    assert result.stall_fraction > 0.7
    assert result.max_stall_ms > 5
    fast = make_server()
    small = BatchSpec.parse(items="1000", payload_bytes="1000").batch(0)
    client = make_client(fast.url)
    client.send(small)  # warm the connection
    quick = client.send(BatchSpec.parse(items="1000", payload_bytes="1000").batch(1))
    assert quick.ok
    assert quick.stall_fraction < 0.01  # the writes cost time, but none waited
    assert quick.write_ms > quick.stall_ms


def test_reported_send_rate_matches_server_ingest_rate(make_server, make_client):
    """A server told to ingest 2,000 items/s is reported at 2,000 items/s (±5 %)."""
    # a 3 s stream, so the request's fixed costs (connect, head, answer) weigh ~1 %
    srv = make_server(ingest_rate=2000, max_items=6000)
    spec = BatchSpec.parse(items="6000", max_items="6000", payload_bytes="200")
    result = make_client(srv.url).send(spec.batch(0))
    assert result.ok
    assert result.send_items_per_s == pytest.approx(2000, rel=0.05)

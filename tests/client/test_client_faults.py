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


def test_scripted_stream_retry_paths(make_client):
    """409, 503, 429 (ms reset) and not-sealed answers are retried; the batch seals."""
    now_ms = int(__import__("time").time() * 1000)
    script = Script(stream=[(409, {"error": "busy"}, {}), (503, {"error": "down"}, {}),
                            (429, {"error": "slow"}, {"x-ratelimit-reset": str(now_ms + 30)}),
                            "seal"])
    result = _scripted(make_client, script, retry=FAST.replace(attempts=5)).send(
        BatchSpec.parse(items="30").batch(0))
    assert result.ok, (result.violations, result.error)
    assert result.retry_reasons == "409,503,429"
    assert result.ratelimit_reset_unit == "ms"
    assert result.rate_limited == 1
    assert [a.sent for a in result.attempts] == ["first", "unknown_full", "unknown_full",
                                                 "unknown_full"]


def test_scripted_non_retryable_and_exhausted(make_client):
    """404 is not retried; a server that never seals ends not_sealed with a violation each retry."""
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


def test_scripted_create_retries(make_client):
    """Create retries 5xx and 429 (retry-after), never 401; counters land on the result."""
    script = Script(create=[(500, {"error": "x"}, {}), (429, {"error": "rl"},
                                                        {"retry-after": "0"}),
                            (202, None, {})])
    result = _scripted(make_client, script).send(BatchSpec.parse(items="5").batch(0))
    assert result.ok
    assert result.create_attempts == 3
    assert result.rate_limited == 1
    auth = Script(create=[(401, {"error": "Invalid API key"}, {})])
    result = _scripted(make_client, auth).send(BatchSpec.parse(items="5").batch(0))
    assert result.create_attempts == 1
    assert result.error_kind == "auth"


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
    """A server told to ingest 2,000 items/s is reported at ~2,000 items/s."""
    srv = make_server(ingest_rate=2000)
    result = make_client(srv.url).send(BatchSpec.parse(items="1000", payload_bytes="200").batch(0))
    assert result.ok
    assert result.send_items_per_s == pytest.approx(2000, rel=0.15)


def test_retried_creates_are_named_in_retry_reasons(make_client):
    """Create retries (connect, 503, 429) come first in retry_reasons, prefixed 'create:'."""
    script = Script(create=[(503, {"error": "down"}, {}),
                            (429, {"error": "slow"}, {"retry-after": "0"}), (202, None, {})],
                    stream=[(503, {"error": "down"}, {}), "seal"])
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return script(request)

    result = _scripted(make_client, handler, retry=FAST.replace(attempts=3)).send(
        BatchSpec.parse(items="10").batch(0))
    assert result.ok, (result.violations, result.error)
    assert result.create_attempts == 4
    assert result.retry_reasons == "create:connect,create:503,create:429,503"
    rec = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert rec.retry_reasons == "create:connect,create:503,create:429,503"
    assert rec.rate_limited == 1

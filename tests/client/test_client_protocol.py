"""BatchClient against the reference server: protocol, measurements, record, cache, verify."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import orjson
import pytest

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec
from loadkit.records import FIELD_NAMES, BatchRecord

from .conftest import FAST, KEY, Script


def test_headers_and_bodies_match_the_sdk(make_client):
    """Create and stream carry the SDK's headers and bodies; the stream body is coalesced chunks."""
    script = Script()  # scripted: it keeps each request as sent (headers, body chunks)
    batch = BatchSpec.parse(items="500", tasks="b-task,a-task", idempotency="true",
                            max_items="5000").batch(3)
    client = make_client("http://target.test", transport=httpx.MockTransport(script))
    result = client.send(batch)
    assert result.ok, result.violations
    create, stream = script.requests
    for req in (create, stream):
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert req.headers["x-trigger-api-version"] == wire.API_VERSION
        assert req.headers["x-trigger-source"] == wire.SOURCE
        assert req.headers["x-trigger-realtime-streams-version"] == "v2"
        assert req.headers["trigger-version"]
    uuid.UUID(create.headers["x-trigger-request-idempotency-key"])
    assert orjson.loads(script.bodies[0]) == {
        "runCount": 500, "taskIdentifiers": sorted(batch.task_identifiers),
        "idempotencyKey": batch.idempotency_key}
    assert stream.headers["content-type"] == "application/x-ndjson"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert script.bodies[1] == b"".join(batch.chunks())
    assert result.attempts[0].chunks == len(list(batch.chunks())) < batch.run_count / 10


def test_clean_batch_seals_and_every_record_field_is_measured(server, make_client):
    """A clean batch seals on attempt 1 and its record agrees with the server's own counters."""
    server.reset_stats()
    batch = BatchSpec.parse(items="3000", payload_bytes="512", max_items="5000").batch(0)
    result = make_client(server.url).send(batch)
    stats = server.stats()
    assert result.ok
    assert result.sealed_attempt == 1
    assert result.violations == []
    rec = result.to_record(run_id="r1", worker_id="w1", user_id=7, intended_at=None)
    assert isinstance(rec, BatchRecord)
    assert rec.bytes_sent == sum(len(c) for c in batch.chunks()) == stats["bytes_read"]
    assert rec.lines_sent == 3000 == stats["items_enqueued"] == rec.items_accepted
    assert rec.payload_bytes == 3000 * 512
    assert rec.outcome == "sealed"
    assert rec.status == 200
    assert rec.attempts == 1
    assert rec.create_attempts == 1
    assert rec.create_ms > 0
    assert rec.stream_ms > 0
    assert rec.total_ms >= rec.create_ms + rec.stream_ms
    assert rec.ended_at > rec.started_at
    assert 0 <= rec.stall_fraction <= 1
    assert rec.max_stall_ms <= rec.stall_ms
    assert rec.send_bytes_per_s == pytest.approx(rec.bytes_sent / (rec.stream_ms / 1000))
    assert rec.response_tail_ms is not None
    assert 0 <= rec.response_tail_ms < rec.stream_ms
    assert rec.retry_reasons == ""
    assert rec.error_kind is None
    assert rec.violations == 0
    assert rec.expected_accepted == 3000
    assert rec.expected_sealed
    assert rec.total_from_intended_ms is None
    assert set(rec.as_dict()) == set(FIELD_NAMES)
    later = result.to_record(run_id="r1", worker_id="w1", user_id=7,
                             intended_at=result.started_at - 1.0)
    assert later.total_from_intended_ms == pytest.approx(rec.total_ms + 1000, rel=0.01)


def test_cached_replay_skips_streaming(server, make_client):
    """A second create with the same idempotency key is isCached and nothing is streamed."""
    batch = BatchSpec.parse(items="20", idempotency="true", seed="991").batch(0)
    client = make_client(server.url)
    first = client.send(batch)
    again = client.send(batch)
    assert first.outcome == "sealed"
    assert first.violations == []
    assert again.outcome == "cached"
    assert again.attempts == []
    assert again.ok
    assert again.batch_id == first.batch_id
    assert again.to_record(run_id="r", worker_id="w", user_id=0).outcome == "cached"


def test_chunk_timings_sum_to_stall(server, make_client):
    """keep_chunk_timings keeps each chunk's write and stall; they add up to the attempt's."""
    batch = BatchSpec.parse(items="2000", payload_bytes="300", max_items="5000").batch(1)
    result = make_client(server.url, keep_chunk_timings=True).send(batch)
    (attempt,) = result.attempts
    timings = attempt.timings
    assert timings is not None
    assert len(timings) == attempt.chunks == len(list(batch.chunks()))
    assert sum(timings.size) == attempt.bytes
    assert sum(timings.write_ms) == pytest.approx(attempt.write_ms)
    assert sum(timings.stall_ms) == pytest.approx(attempt.stall_ms)
    assert all(0 <= s <= w for s, w in zip(timings.stall_ms, timings.write_ms, strict=True))
    assert list(timings.at_ms) == sorted(timings.at_ms)
    assert len(result.as_dict(chunk_timings=True)["attempts"][0]["timings"]["size"]) == len(timings)
    assert make_client(server.url).send(batch).attempts[0].timings is None


def test_verify_checks_runs_and_payload_too_large(server, make_client):
    """verify=True retrieves the sealed batch: runCount distinct runs, oversized item pre-failed."""
    spec = BatchSpec.parse(items="200", faults="oversized=1", payload_bytes="100")
    batch = spec.batch(0)
    assert batch.expected.too_large
    result = make_client(server.url, verify=True).send(batch)
    assert result.verified is True, result.violations
    assert result.ok


def test_stream_items_single_attempt(server, make_client):
    """stream_items sends given chunks once and counts their lines itself."""
    client = make_client(server.url)
    batch = BatchSpec.parse(items="100").batch(0)
    created = client.create_batch(batch)
    assert created.status == 202
    assert not created.is_cached
    assert created.create_ms > 0
    attempt = client.stream_items(created.id, batch.chunks())
    assert attempt.reason == "sealed"
    assert attempt.lines == 100
    assert attempt.status == 200
    other = client.create_batch(3, ["t"], None)
    assert other.run_count == 3
    assert client.retrieve(created.id)["runCount"] == 100


SECRET = "tr_dev_SUPERSECRET_value_0123456789"


def _echo(status: int, field: str = "error", **extra: object):
    """An answer that echoes the request's whole Authorization header back in ``field``."""

    def answer(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        return httpx.Response(status, json={field: f"you sent {auth!r} (key {SECRET})",
                                            **extra})

    return answer


def _escaped_echo(request: httpx.Request) -> httpx.Response:
    """A 400 whose body holds the key JSON-escaped (no raw byte sequence of the key)."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    body = ('{"error":"Invalid JSON at line 1 (' + escaped + ')"}').encode()
    return httpx.Response(400, content=body, headers={"content-type": "application/json"})


# scripted: the reference server never echoes a key or an Authorization header back
LEAKS = {
    "create-error": Script(create=[_echo(500)]),
    "create-401": Script(create=[_echo(401, "message")]),
    "create-429-header": Script(create=[(429, {"error": f"slow {SECRET}"},
                                         {"retry-after": f"Bearer {SECRET}"})]),
    "stream-400": Script(stream=[_echo(400)]),
    "stream-400-escaped": Script(stream=[_escaped_echo]),
    "stream-500-header": Script(stream=[(500, {"message": SECRET},
                                         {"x-should-retry": SECRET})]),
    "stream-200-violation": Script(stream=[lambda request: httpx.Response(200, json={
        "id": f"batch {request.headers['authorization']}", "itemsAccepted": 10,
        "itemsDeduplicated": 0, "sealed": True, "runCount": 10, "note": SECRET})]),
    "retrieve-error": Script(retrieve=[_echo(500)]),
    "retrieve-answer": Script(retrieve=[lambda request: httpx.Response(
        200, text=f"<html>{request.headers['authorization']}</html>")]),
}


@pytest.mark.parametrize("script", LEAKS.values(), ids=LEAKS.keys())
def test_key_echoed_by_the_target_is_never_stored(script, make_client):
    """A target echoing the whole key or Authorization header leaks it nowhere on the result."""
    client = make_client("http://target.test", key=SECRET, verify=True, keep_chunk_timings=True,
                         retry=FAST.replace(attempts=1, create_attempts=1),
                         transport=httpx.MockTransport(script))
    result = client.send(BatchSpec.parse(items="10").batch(0))
    record = result.to_record(run_id="r", worker_id="w", user_id=0)
    texts = [json.dumps(result.as_dict(chunk_timings=True)), json.dumps(record.as_dict()),
             str(result.error), repr(client), repr(result.attempts),
             *(str(v) for v in result.violations),
             *(json.dumps(v.as_dict()) for v in result.violations)]
    assert result.error is not None or result.violations
    assert all(SECRET not in text for text in texts)
    assert any("<redacted>" in text for text in texts)  # the echo did reach the result


def test_other_bearer_tokens_and_a_wrong_key_are_redacted(server, make_client):
    """Any 'Bearer <token>' in an answer is redacted, and a key the server rejects never shows."""
    # scripted: no reference server answer names a bearer token (its 401 is checked below)
    script = Script(stream=[(400, {"error": "token Bearer sk_other.TOKEN-123= refused"}, {})])
    client = make_client("http://target.test", key=SECRET, transport=httpx.MockTransport(script),
                         retry=FAST.replace(attempts=1))
    result = client.send(BatchSpec.parse(items="10").batch(0))
    text = json.dumps(result.as_dict()) + str(result.error)
    assert "sk_other" not in text
    assert "token Bearer <redacted> refused" in text
    rejected = make_client(server.url, key=SECRET).send(BatchSpec.parse(items="10").batch(0))
    assert rejected.error_kind == "auth"
    assert SECRET not in json.dumps(rejected.as_dict()) + str(rejected.error)


def test_configuration_from_environment(monkeypatch, server):
    """Base URL and key come from TRIGGER_API_URL / TRIGGER_SECRET_KEY; no URL is a ConfigError."""
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", KEY)
    with BatchClient() as client:
        assert client.send(BatchSpec.parse(items="5").batch(0)).ok
    monkeypatch.delenv("TRIGGER_API_URL")
    with pytest.raises(ConfigError):
        BatchClient()
    with pytest.raises(ConfigError):
        BatchClient("ftp://example.com", KEY)


def test_httpx_info_logging_is_silenced():
    """Importing the client turns off httpx's per-request INFO lines."""
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING

"""BatchClient against the reference server: protocol, measurements, record, cache, verify."""

from __future__ import annotations

import dataclasses
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

from .conftest import KEY, Script


def test_headers_and_bodies_match_the_sdk(make_client):
    """Create and stream carry the SDK's headers and bodies; the stream body is coalesced chunks."""
    script = Script()
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
    """keep_chunk_timings keeps one write time per chunk; they add up to the stall."""
    batch = BatchSpec.parse(items="2000", payload_bytes="300", max_items="5000").batch(1)
    result = make_client(server.url, keep_chunk_timings=True).send(batch)
    (attempt,) = result.attempts
    timings = attempt.timings
    assert timings is not None
    assert len(timings) == attempt.chunks == len(list(batch.chunks()))
    assert sum(timings.size) == attempt.bytes
    assert sum(timings.write_ms) == pytest.approx(attempt.stall_ms)
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


def test_key_never_appears_in_results_or_errors(server, make_client, canned):
    """Neither a right nor a wrong secret key shows up in results, records or error texts."""
    secret = "tr_dev_SUPERSECRET_value"
    echo = canned({"/": b"HTTP/1.1 500 X\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 40\r\nConnection: close\r\n\r\n"
                   + b'{"error":"bad key tr_dev_SUPERSECRET_va"}'})
    batch = BatchSpec.parse(items="10").batch(0)
    for url in (server.url, echo):
        client = make_client(url, key=secret, retry=dataclasses.replace(
            make_client(url).retry, create_attempts=1))
        result = client.send(batch)
        text = json.dumps(result.as_dict(), default=str) + repr(client)
        text += json.dumps(result.to_record(run_id="r", worker_id="w", user_id=0).as_dict())
        assert secret not in text
        assert result.error is not None
    leaky = canned({"/": b"HTTP/1.1 500 X\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 38\r\nConnection: close\r\n\r\n"
                    + b'{"error":"key tr_dev_SUPERSECRET_value"}'})
    client = make_client(leaky, key=secret, retry=dataclasses.replace(
        make_client(leaky).retry, create_attempts=1))
    result = client.send(batch)
    assert "<redacted>" in str(result.error)
    assert secret not in str(result.error)


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

"""After an error answer: a differing error detail is a note, a reset after it no fault."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from loadkit import wire
from loadkit.generators import BatchSpec
from loadkit.records import SCHEMA_VERSION
from loadkit.server.app import ReferenceApp

from .conftest import FAST, ThreadedASGI

FAULTY = BatchSpec.parse(items="400", payload_bytes="200", faults="malformed=1,schema=1",
                         seed="7")


class OtherDetail:
    """The reference server with the detail of its 400/422 texts replaced, as another runtime's
    JSON parser or zod version words it (the stable prefix kept)."""

    def __init__(self) -> None:
        self.app = ReferenceApp()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = 0

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [
                    h for h in message["headers"] if h[0] != b"content-length"]}
            elif message["type"] == "http.response.body" and status in (400, 422):
                body = orjson.loads(message["body"])
                text = f"{wire.stable_prefix(body['error'])}: detail of another runtime"
                message = {**message, "body": orjson.dumps(wire.error_body(text))}
            await send(message)

        await self.app(scope, receive, rewrite)


def test_differing_error_detail_is_a_note_not_a_violation(make_client):
    """An error answer whose text differs only after its stable prefix seals with a note."""
    with ThreadedASGI(OtherDetail()) as srv:
        result = make_client(srv.url).send(FAULTY.batch(0))
    assert result.sealed
    assert result.violations == []
    assert any("error detail differs" in n and "detail of another runtime" in n
               for n in result.notes)
    record = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert "detail of another runtime" in (record.notes or "")
    assert record.violations == 0


def test_reference_detail_leaves_no_note(server, make_client):
    """Against the reference server's own texts a fault batch records no note."""
    result = make_client(server.url).send(FAULTY.batch(0))
    assert result.sealed
    assert result.violations == []
    assert result.to_record(run_id="r", worker_id="w", user_id=0).notes is None


@pytest.mark.parametrize("resend", ["full", "missing"])
def test_reset_after_an_early_error_is_not_a_fault(make_server, make_client, resend):
    """With close_after_error the request after an early error meets a reset: the client
    re-sends it, notes it, and counts no drop, retry or violation for it."""
    srv = make_server(close_after_error=True)
    client = make_client(srv.url, retry=FAST.replace(resend=resend))
    results = [client.send(FAULTY.batch(seq)) for seq in range(4)]
    for result in results:
        assert result.sealed, result.as_dict()
        assert result.violations == []
        assert "dropped" not in result.retry_reasons
        assert result.error is None
    notes = [n for r in results for n in r.notes]
    assert any("connection reset after an early error answer" in n for n in notes)
    assert any(a.reset_resent for r in results for a in r.attempts)


def test_without_close_after_error_no_reset_is_met(server, make_client):
    """The default reference server keeps the connection: no request is re-sent."""
    client = make_client(server.url)
    results = [client.send(FAULTY.batch(seq)) for seq in range(3)]
    assert not any(a.reset_resent for r in results for a in r.attempts)
    assert all(r.sealed and not r.violations for r in results)


def test_record_schema_holds_notes_and_rate_limiter():
    """Schema 4 added notes and rate_limiter, both empty by default."""
    from loadkit.records import BatchRecord  # noqa: PLC0415

    assert SCHEMA_VERSION == 4
    blank = BatchRecord.blank()
    assert (blank.notes, blank.rate_limiter) == (None, None)


def test_record_names_the_limiter_that_answered(make_server, make_client):
    """A 429 of the general API limiter is recorded as rate_limiter 'api', the batch one's
    as 'batch'."""
    policy = FAST.replace(create_attempts=2, rate_limit_max_wait=0.01)
    api_srv = make_server(api_rate_limit="1:1/1h")
    batch_srv = make_server(rate_limit="10:1/1h")
    spec = BatchSpec.parse(items="10", payload_bytes="50")
    for srv, name in ((api_srv, "api"), (batch_srv, "batch")):
        client = make_client(srv.url, retry=policy)
        assert client.send(spec.batch(0)).sealed
        failed = client.send(spec.batch(1))
        assert failed.error_kind == "rate_limited"
        record = failed.to_record(run_id="r", worker_id="w", user_id=0)
        assert (record.rate_limiter, record.rate_limited) == (name, 2)

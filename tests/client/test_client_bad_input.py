"""Bad input and broken targets: each a typed error on the result, never an exception from send."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from loadkit.errors import AuthError, ConnectError, ProtocolError, StatusError, TargetTimeout
from loadkit.generators import BatchSpec
from loadkit.retry import RetryPolicy

from .conftest import FAST, raw_answer

BATCH = BatchSpec.parse(items="50").batch(0)
CREATED = raw_answer(202, b'{"id":"batch_canned","runCount":50,"isCached":false}')


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test and never listened on: a connect there is refused,
    and no other process can take the port while the test runs (a port picked free and
    released could be)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _failed(result, kind, cls):
    assert result.outcome == "failed"
    assert result.error_kind == kind
    assert isinstance(result.error, cls)
    rec = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert rec.error_kind == kind
    assert rec.outcome == "failed"
    assert rec.error


def test_no_key_is_an_auth_error_without_a_request(canned, make_client, monkeypatch):
    """Without any secret key nothing is sent and the result holds an auth error."""
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    url = canned({})  # would hang if anything were sent
    result = make_client(url, key=None).send(BATCH)
    _failed(result, "auth", AuthError)
    assert result.create_attempts == 0
    assert "TRIGGER_SECRET_KEY" in str(result.error)


def test_wrong_key_is_an_auth_error(server, make_client):
    """A key the server rejects (401) is an auth error, not retried."""
    result = make_client(server.url, key="tr_dev_not_a_key").send(BATCH)
    _failed(result, "auth", AuthError)
    assert result.create_attempts == 1


def test_wrong_port_is_a_connect_error(make_client, closed_port):
    """Nothing listening: a connect error after the create retries."""
    result = make_client(f"http://127.0.0.1:{closed_port}").send(BATCH)
    _failed(result, "connect", ConnectError)
    assert result.create_attempts == FAST.create_attempts
    assert "check the URL" in str(result.error)


def test_server_gone_between_batches(make_server, make_client):
    """A server that stops after one batch gives the next batch a connect error."""
    srv = make_server()
    client = make_client(srv.url, retry=FAST.replace(create_attempts=2))
    assert client.send(BATCH).ok
    srv.stop()
    _failed(client.send(BATCH), "connect", ConnectError)


def test_html_answer_is_a_protocol_error(canned, make_client):
    """A web page instead of the API (HTML 200) is a protocol error naming HTML."""
    url = canned({"/": raw_answer(200, b"<!DOCTYPE html><html><body>Hi</body></html>",
                                  "text/html")})
    result = make_client(url).send(BATCH)
    _failed(result, "protocol", ProtocolError)
    assert "HTML" in str(result.error)


def test_html_404_is_a_status_error(canned, make_client):
    """A 404 page (wrong base path) is a status error, not retried."""
    url = canned({"/": raw_answer(404, b"<html>Not Found</html>", "text/html")})
    result = make_client(url).send(BATCH)
    _failed(result, "status", StatusError)
    assert result.create_attempts == 1


def test_truncated_json_stream_answer_is_a_protocol_error(canned, make_client):
    """A stream answer cut off mid-JSON is a protocol error."""
    url = canned({"/api/v3/batches/batch_canned/items":
                  raw_answer(200, b'{"id":"batch_canned","itemsAcc'),
                  "/api/v3/batches": CREATED})
    result = make_client(url).send(BATCH)
    _failed(result, "protocol", ProtocolError)
    assert result.attempts[0].reason == "protocol"
    assert "truncated" in str(result.error)


def test_hanging_server_is_a_timeout(canned, make_client):
    """A server that accepts but never answers gives a timeout error."""
    url = canned({})
    client = make_client(url, timeout=0.3, retry=RetryPolicy.none())
    result = client.send(BATCH)
    _failed(result, "timeout", TargetTimeout)
    assert "0.3 s" in str(result.error)


def test_hanging_stream_is_a_timeout_after_retries(canned, make_client):
    """A stream that never gets an answer is retried, then fails as a timeout."""
    url = canned({"/api/v3/batches/batch_canned/items": None, "/api/v3/batches": CREATED})
    client = make_client(url, timeout=0.2, retry=FAST.replace(attempts=2))
    result = client.send(BATCH)
    _failed(result, "timeout", TargetTimeout)
    assert [a.reason for a in result.attempts] == ["timeout", "timeout"]


@pytest.mark.parametrize("url", ["", "not a url", "ftp://x"])
def test_bad_url_is_a_config_error(url, make_client):
    """A URL that is not http(s) is rejected at construction, naming base_url."""
    from loadkit.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        make_client(url)
    assert info.value.field == "base_url"


def test_unusable_batch_id_is_a_protocol_error(make_client):
    """A create answer whose id cannot be put in a URL path is a protocol error."""
    import httpx  # noqa: PLC0415

    from .conftest import Script  # noqa: PLC0415

    # scripted: the reference server's batch ids are always well formed
    script = Script(create=[(202, {"id": "../../etc", "runCount": 50, "isCached": False}, {})])
    client = make_client("http://scripted.test", transport=httpx.MockTransport(script))
    result = client.send(BATCH)
    _failed(result, "protocol", ProtocolError)
    assert result.status == 202

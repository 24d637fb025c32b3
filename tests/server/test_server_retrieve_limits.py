"""Retrieve v1 and v2, the create maximum and the general API rate limiter, as the real routes."""

from __future__ import annotations

import time

import orjson

from loadkit import wire
from loadkit.server import ReferenceServer

from .conftest import KEY, OTHER_KEY, Api, lines
from .test_server_stream import wait_status

_V1_KEYS = {"id", "status", "createdAt", "updatedAt", "runCount", "runs", "successfulRunCount",
            "failedRunCount"}


def test_v1_retrieve_has_run_counts_and_no_processing(api):
    """GET /api/v1/batches/{id}: the v1 shape, run counts once final, no processing object."""
    bid = api.new_batch(3, idempotencyKey="v1-shape")
    api.stream(bid, lines(range(3)))
    wait_status(api, bid, ("COMPLETED",))
    body = api.client.get(wire.retrieve_v1_path(bid)).json()
    assert set(body) == _V1_KEYS | {"idempotencyKey"}
    assert (body["id"], body["status"], body["runCount"]) == (bid, "COMPLETED", 3)
    assert (body["successfulRunCount"], body["failedRunCount"]) == (3, 0)
    assert body["runs"] == api.retrieve(bid).json()["runs"]


def test_v1_retrieve_of_an_oversized_item_counts_it_a_success(api):
    """An oversized item's pre-failed run is a successful run on v1 too, and no error."""
    bid = api.new_batch(2)
    api.stream(bid, lines([0]) + orjson.dumps({"index": 1, "task": "t", "p": "x" * 5000}))
    wait_status(api, bid, ("COMPLETED",))
    body = api.client.get(wire.retrieve_v1_path(bid)).json()
    assert "errors" not in body
    assert (len(body["runs"]), body["successfulRunCount"], body["failedRunCount"]) == (2, 2, 0)


def test_unknown_or_other_environments_batch_is_a_retryable_404(server, api):
    """v1 and v2 answer an unknown batch, or another environment's, 404 Not found, retryable."""
    bid = api.new_batch(1)
    with Api(server.url, key=OTHER_KEY) as other:
        for path in (wire.retrieve_path, wire.retrieve_v1_path):
            for who, batch_id in ((api, "batch_doesnotexist"), (other, bid)):
                r = who.client.get(path(batch_id))
                assert r.status_code == 404
                assert r.json() == {"error": "Not found"}
                assert r.headers[wire.Header.SHOULD_RETRY] == "true"


def test_create_over_the_maximum_is_a_400_with_the_real_text(api):
    """runCount above max_items: 400 with the real route's text naming the configured maximum."""
    r = api.create(5001)
    assert r.status_code == 400
    assert r.json()["error"] == "Batch runCount of 5001 exceeds maximum allowed of 5000."


def test_api_rate_limiter_problem_json_in_ms_and_the_new_batch_grant():
    """With api_rate_limit the 429 is problem+json with x-ratelimit-reset in ms; a new batch's
    first 10 item requests bypass it; retrieve and create do not."""
    with ReferenceServer(mode="thread", api_rate_limit="2:1/1h") as srv, Api(srv.url) as api:
        bid = api.new_batch(20)  # token 1
        for i in range(10):  # the batch's grant
            assert api.stream(bid, lines([i])).status_code == 200
        assert api.retrieve(bid).status_code == 200  # token 2
        for r in (api.stream(bid, lines([10])), api.retrieve(bid), api.create(1)):
            assert r.status_code == 429
            assert r.headers[wire.Header.CONTENT_TYPE] == wire.PROBLEM_CONTENT_TYPE
            reset = int(r.headers[wire.Header.RATELIMIT_RESET])
            assert reset > 1e11  # epoch milliseconds
            assert reset / 1000 - time.time() > 3000
            assert r.headers[wire.Header.RATELIMIT_LIMIT] == "2"
            assert r.headers[wire.Header.RATELIMIT_REMAINING] == "0"
            body = r.json()
            assert body["title"] == "Rate Limit Exceeded"
            assert body["status"] == 429
            assert body["error"].startswith("Rate limit exceeded 0/2 requests remaining. Retry in ")
            assert wire.rate_limiter_of(r.headers[wire.Header.CONTENT_TYPE], body) == "api"
        assert api.stats()["api_rate_limited"] == 3


def test_api_rate_limiter_is_off_by_default_and_per_environment():
    """Off by default; on, each key (environment) has its own bucket."""
    with ReferenceServer(mode="thread", secret_keys=(KEY, OTHER_KEY),
                         api_rate_limit="1:1/1h") as srv, \
            Api(srv.url) as one, Api(srv.url, key=OTHER_KEY) as two:
        assert one.create(1).status_code == 202
        assert two.create(1).status_code == 202
        assert one.create(1).status_code == 429
    with ReferenceServer(mode="thread") as srv, Api(srv.url) as api:
        assert all(api.create(1).status_code == 202 for _ in range(30))

"""Tests that the generators' expected outcomes are exactly what the reference server answers."""

from __future__ import annotations

import httpx
import pytest

from loadkit import wire
from loadkit.generators import BatchSpec
from loadkit.server import ReferenceServer

LIMIT = 4096


@pytest.fixture(scope="module")
def api():
    with ReferenceServer(mode="process", item_max_bytes=LIMIT) as server:
        headers = {"authorization": f"Bearer {wire.DEFAULT_LOCAL_SECRET_KEY}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            yield client


def first_stream(api: httpx.Client, batch) -> tuple[str, httpx.Response]:
    created = api.post(wire.CREATE_PATH, json={
        "runCount": batch.run_count, "taskIdentifiers": list(batch.task_identifiers)})
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    answer = api.post(wire.stream_path(batch_id), content=batch.chunks(),
                      headers={"content-type": wire.NDJSON_CONTENT_TYPE})
    return batch_id, answer


@pytest.mark.parametrize(
    "faults",
    ["", "duplicate=0.2", "gap=0.1", "shuffle=1", "malformed=1", "schema=1", "out_of_range=1",
     "oversized=1",
     "duplicate=0.3,gap=0.2,shuffle=1,malformed=0.4,schema=0.4,out_of_range=0.4,oversized=0.5"],
)
def test_first_stream_answer_equals_expected(api, faults):
    """For every fault kind and a mix of all, the server's answer is one the expected outcome
    allows (exactly the expected 200; an error by status and the line or index it names)."""
    spec = BatchSpec.parse(items="uniform:1:300", payload_bytes="lognormal:200:1",
                           faults=faults, item_max_bytes=LIMIT, seed=11)
    for seq in range(12):
        batch = spec.batch(seq)
        batch_id, answer = first_stream(api, batch)
        expected = batch.expected
        body = answer.json()
        if expected.status == 200:
            assert answer.status_code == 200
            assert body.pop("runCount") == batch.run_count
            assert body == expected.response(batch_id)
        else:
            assert expected.allows_error(answer.status_code, body["error"]), body


def test_missing_indices_complete_the_batch(api):
    """Resending expected.missing as clean lines seals a batch whose first stream failed."""
    spec = BatchSpec.parse(items="200", faults="gap=0.2,malformed=1,duplicate=0.1",
                           item_max_bytes=LIMIT, seed=5)
    batch = spec.batch(0)
    batch_id, answer = first_stream(api, batch)
    assert answer.status_code == 400
    missing = batch.expected.missing
    resent = api.post(wire.stream_path(batch_id), content=batch.clean_chunks(missing),
                      headers={"content-type": wire.NDJSON_CONTENT_TYPE})
    body = resent.json()
    assert body["sealed"] is True
    expected = batch.expected
    assert len(missing) - expected.slack <= body["itemsAccepted"] <= len(missing)
    assert body["itemsAccepted"] + body["itemsDeduplicated"] == len(missing)

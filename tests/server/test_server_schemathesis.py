"""schemathesis against the live server's /openapi.json: no 500s, answers conform to the spec."""

from __future__ import annotations

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from loadkit import wire
from loadkit.server import ReferenceServer

from .conftest import KEY

AUTH = {"authorization": f"Bearer {KEY}"}
# Auth itself (401 for missing/wrong keys) is tested in test_server_create/_stream: schemathesis'
# ignored_auth check cannot tell the fixed valid key given here from a generated one.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

_item = st.fixed_dictionaries(
    {"index": st.integers(-2, 5), "task": st.text(max_size=5)},
    optional={
        "payload": st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
        "options": st.dictionaries(
            st.sampled_from(["tags", "concurrencyKey", "ttl"]),
            st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3),
            max_size=2,
        ),
    },
)
_ndjson = st.one_of(
    st.lists(_item.map(orjson.dumps), max_size=6).map(b"\n".join),
    st.binary(max_size=80),
)
for media in wire.NDJSON_CONTENT_TYPES:
    schemathesis.openapi.media_type(media, _ndjson)


@pytest.fixture(scope="module")
def api_schema():
    with ReferenceServer(mode="thread", item_max_bytes=64, max_items=50) as server:
        yield schemathesis.openapi.from_url(server.url + wire.OPENAPI_PATH), server.url


def _operations():
    return ["createBatch", "streamBatchItems", "retrieveBatch"]


@pytest.mark.parametrize("operation_id", _operations())
def test_openapi_conformance(api_schema, operation_id):
    """Generated requests for each operation never get a 500 and every answer matches the spec."""
    schema, base = api_schema
    operation = schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case):
        case.headers = {**(case.headers or {}), **AUTH}
        if operation_id != "createBatch" and len(case.path_parameters["batchId"]) % 2 == 0:
            # half of the time a real batch, so that fuzzed bodies reach the NDJSON parser
            created = httpx.post(base + wire.CREATE_PATH, json={"runCount": 5}, headers=AUTH)
            case.path_parameters["batchId"] = created.json()["id"]
        case.call_and_validate(checks=CHECKS)

    check()
    if operation_id == "streamBatchItems":
        assert httpx.get(base + wire.STATS_PATH).json()["bytes_read"] > 0

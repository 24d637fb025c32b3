"""The batch API's contract pinned with literal values, independent of ``loadkit/wire.py``.

The server, the generators' expected outcomes and most tests take their paths, texts and
schema rules from ``wire.py``, so a mistake there would go unseen: every side would agree.
This module never imports ``wire`` (nor a module for its constants): each status code, error
text, field name, type and header below is written out as docs/batch-api.md (the real API,
in our words) states it, and checked against the running reference server over raw HTTP, the
generator's expected outcomes and the headers the client puts on the wire.
"""

from __future__ import annotations

import ast
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from loadkit.client import BatchClient
from loadkit.generators import BatchSpec
from loadkit.server import ReferenceServer

KEY = "tr_dev_loadkit_local"
"""The reference server's key when none is configured (docs: Deliberate deviations)."""
CREATE = "/api/v3/batches"
NDJSON = {"content-type": "application/x-ndjson"}
LIMIT = 3_145_728
"""Bytes per NDJSON line (docs 5.5)."""
BATCH_ID = re.compile(r"batch_[A-Za-z0-9]+")


def items(batch_id: str) -> str:
    return f"/api/v3/batches/{batch_id}/items"


def line(index: Any, task: Any = "t", **extra: Any) -> bytes:
    return json.dumps({"index": index, "task": task, "payload": {"n": 1}, **extra}).encode() + b"\n"


@pytest.fixture
def server(reference_server: ReferenceServer) -> str:
    """The session's reference server (default knobs, its own process)."""
    assert reference_server.url is not None
    return reference_server.url


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    """Raw HTTP to the reference server, with the local key."""
    with httpx.Client(base_url=server, headers={"authorization": f"Bearer {KEY}"},
                      timeout=30) as client:
        yield client


def create(api: httpx.Client, run_count: int) -> str:
    answer = api.post(CREATE, json={"runCount": run_count})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def error_of(answer: httpx.Response, status: int) -> str:
    """The error text of a JSON error answer with ``status`` (docs 10: an ``error`` string)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body["error"], str)
    return body["error"]


# --- this module stands on its own --------------------------------------------------------


def test_this_module_does_not_import_wire():
    """The pinned tests import neither loadkit.wire nor the name wire from anywhere."""
    tree = ast.parse(Path(__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{a.name}" for a in node.names} | {node.module or ""}
    assert not {name for name in imported if "wire" in name.split(".")}, imported
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "wire" not in names
    assert imported >= {"loadkit.server.ReferenceServer", "loadkit.generators.BatchSpec",
                        "loadkit.client.BatchClient"}


# --- phase 1: POST /api/v3/batches --------------------------------------------------------


def test_create_answers_202_with_id_runcount_and_iscached(api):
    """A new batch is 202 {id: batch_…, runCount, isCached: false}, JSON."""
    answer = api.post(CREATE, json={"runCount": 5, "taskIdentifiers": ["a", "b"]})
    assert answer.status_code == 202
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"id", "runCount", "isCached"}
    assert BATCH_ID.fullmatch(body["id"])
    assert (body["runCount"], body["isCached"]) == (5, False)


def test_create_replay_of_an_idempotency_key_is_200_cached_with_the_same_id(api):
    """A key's first create is 202 echoing the key; its replay is 200 isCached: true, same id."""
    first = api.post(CREATE, json={"runCount": 3, "idempotencyKey": "pinned-replay"})
    assert first.status_code == 202
    assert first.json()["idempotencyKey"] == "pinned-replay"
    assert first.json()["isCached"] is False
    again = api.post(CREATE, json={"runCount": 3, "idempotencyKey": "pinned-replay"})
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "runCount": 3, "isCached": True}


@pytest.mark.parametrize(("body", "why"), [
    (b"", "empty body"),
    (b"{not json", "not JSON"),
    (b'{"runCount": 0}', "runCount below 1"),
    (b'{"runCount": "5"}', "runCount not an integer"),
    (b'{"runCount": 1, "taskIdentifiers": []}', "no task identifier"),
    (b'{"runCount": 1, "idempotencyKey": "' + b"k" * 2049 + b'"}', "key of 2,049 characters"),
])
def test_create_refuses_bad_bodies_with_400(api, body, why):
    """Each create body the schema refuses is answered 400 with an error text."""
    assert error_of(api.post(CREATE, content=body,
                             headers={"content-type": "application/json"}), 400), why


def test_create_limits_are_inclusive(api):
    """runCount 1,000 and a 2,048-character key pass; 1,001 is a 400 naming both numbers."""
    assert api.post(CREATE, json={"runCount": 1000}).status_code == 202
    assert api.post(CREATE, json={"runCount": 1, "idempotencyKey": "k" * 2048}).status_code == 202
    text = error_of(api.post(CREATE, json={"runCount": 1001}), 400)
    assert "1001" in text
    assert "1000" in text


def test_create_body_over_131072_bytes_is_413(api):
    """A create body of 131,072 bytes is read; one byte more is 413."""
    head, tail = b'{"runCount": 1, "parentRunId": "', b'"}'
    for size, status in ((131_072, 202), (131_073, 413)):
        body = head + b"p" * (size - len(head) - len(tail)) + tail
        assert len(body) == size
        answer = api.post(CREATE, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == status, answer.text
        if status == 413:
            error_of(answer, 413)


def test_create_without_a_valid_key_is_401(server):
    """No Authorization header, or an unknown key, is 401 on create."""
    for headers in ({}, {"authorization": "Bearer tr_dev_not_a_key"}):
        error_of(httpx.post(server + CREATE, json={"runCount": 1}, headers=headers), 401)


def test_batch_rate_limit_429_and_its_headers():
    """A create over the batch bucket is 429 with x-ratelimit-* (reset in epoch s), retry-after."""
    with ReferenceServer(mode="thread", rate_limit="20:10/10s") as srv, httpx.Client(
            base_url=str(srv.url), headers={"authorization": f"Bearer {KEY}"}) as api:
        assert api.post(CREATE, json={"runCount": 5, "idempotencyKey": "rl"}).status_code == 202
        assert api.post(CREATE, json={"runCount": 5, "idempotencyKey": "rl"}).status_code == 200
        assert api.post(CREATE, json={"runCount": 5}).status_code == 202
        now = time.time()
        refused = api.post(CREATE, json={"runCount": 15})
        error_of(refused, 429)
        h = refused.headers
        assert h["x-ratelimit-limit"] == "20"
        assert h["x-ratelimit-remaining"] == "10"  # the replay and this refusal cost nothing
        assert now <= int(h["x-ratelimit-reset"]) <= now + 11  # seconds, not milliseconds
        assert 1 <= int(h["retry-after"]) <= 10
        error_of(api.post(CREATE, json={"runCount": 21}), 429)  # never fits: the same status


# --- phase 2: POST /api/v3/batches/{batchId}/items ----------------------------------------


def test_stream_sealed_answer_fields_and_types(api):
    """A stream completing the batch is 200 {id, itemsAccepted, itemsDeduplicated, sealed,
    runCount}: no enqueuedCount or expectedCount."""
    batch_id = create(api, 3)
    answer = api.post(items(batch_id), content=line(0) + line(1) + line(2), headers=NDJSON)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body == {"id": batch_id, "itemsAccepted": 3, "itemsDeduplicated": 0, "sealed": True,
                    "runCount": 3}
    assert [type(body[k]) for k in ("itemsAccepted", "itemsDeduplicated", "sealed")] == [
        int, int, bool]


def test_stream_not_sealed_answer_adds_enqueued_and_expected_count(api):
    """An incomplete batch's answer is sealed: false with enqueuedCount and expectedCount."""
    batch_id = create(api, 4)
    answer = api.post(items(batch_id), content=line(0) + line(2) + line(0), headers=NDJSON)
    assert answer.status_code == 200
    assert answer.json() == {"id": batch_id, "itemsAccepted": 2, "itemsDeduplicated": 1,
                             "sealed": False, "enqueuedCount": 2, "expectedCount": 4,
                             "runCount": 4}


def test_stream_empty_body_is_200_not_sealed(api):
    """An empty or whitespace-only body holds no items: 200, enqueuedCount 0."""
    batch_id = create(api, 2)
    for body in (b"", b"  \n\n"):
        answer = api.post(items(batch_id), content=body, headers=NDJSON)
        assert answer.status_code == 200
        assert (answer.json()["sealed"], answer.json()["enqueuedCount"],
                answer.json()["expectedCount"]) == (False, 0, 2)


def test_stream_to_a_sealed_batch_is_200_zero_counts(api):
    """A stream to a sealed batch is 200 with 0 accepted, 0 deduplicated, sealed: true."""
    batch_id = create(api, 1)
    assert api.post(items(batch_id), content=line(0), headers=NDJSON).json()["sealed"] is True
    body = api.post(items(batch_id), content=line(0), headers=NDJSON).json()
    assert (body["itemsAccepted"], body["itemsDeduplicated"], body["sealed"]) == (0, 0, True)
    assert "enqueuedCount" not in body
    assert "expectedCount" not in body


@pytest.mark.parametrize("content_type", ["application/ndjson",
                                          "application/x-ndjson; charset=utf-8"])
def test_stream_accepts_either_ndjson_type(api, content_type):
    """application/ndjson and a Content-Type with parameters are both NDJSON."""
    batch_id = create(api, 1)
    answer = api.post(items(batch_id), content=line(0), headers={"content-type": content_type})
    assert answer.status_code == 200


def test_stream_wrong_content_type_is_415_before_auth(api, server):
    """Any other Content-Type is 415 with the documented text, checked before the key."""
    batch_id = create(api, 1)
    text = "Content-Type must be application/x-ndjson or application/ndjson"
    plain = {"content-type": "text/plain"}
    assert error_of(api.post(items(batch_id), content=line(0), headers=plain), 415) == text
    assert error_of(httpx.post(server + items(batch_id), content=line(0), headers=plain),
                    415) == text


def test_stream_without_a_valid_key_is_401(server):
    """An NDJSON stream without a valid key is 401."""
    for headers in (NDJSON, {**NDJSON, "authorization": "Bearer tr_dev_not_a_key"}):
        error_of(httpx.post(server + items("batch_abc"), content=line(0), headers=headers), 401)


@pytest.mark.parametrize("bad_id", ["nounderscore", "batch_a_b", "_abc"])
def test_stream_malformed_batch_id_is_400(api, bad_id):
    """A batch id not of the friendly-id form is 400 'Invalid batchFriendlyId: <id>'."""
    text = error_of(api.post(items(bad_id), content=line(0), headers=NDJSON), 400)
    assert text == f"Invalid batchFriendlyId: {bad_id}"


def test_stream_unknown_batch_is_422_not_found(api):
    """A well-formed id nobody created is 422 'Batch <id> not found' (not 404)."""
    text = error_of(api.post(items("batch_pinnednope"), content=line(0), headers=NDJSON), 422)
    assert text == "Batch batch_pinnednope not found"


def test_stream_bad_json_is_400_naming_the_physical_line(api):
    """A line that is not JSON is 400 'Invalid JSON at line N: …'; blank lines count in N."""
    batch_id = create(api, 5)
    body = line(0) + b"\n" + b'{"index":1,"task"\n' + line(2)
    text = error_of(api.post(items(batch_id), content=body, headers=NDJSON), 400)
    assert text.startswith("Invalid JSON at line 3: ")
    assert len(text) > len("Invalid JSON at line 3: ")


@pytest.mark.parametrize(("bad", "prefix", "path"), [
    (line(2, task=5), "Invalid item at index 2: ", ["task"]),
    (line(-1), "Invalid item at index -1: ", ["index"]),
    (line(1.5), "Invalid item at index 1.5: ", ["index"]),
    (b"[1, 2]\n", "Invalid item at unknown index: ", []),
    (b'{"index": "0", "task": "t"}\n', "Invalid item at unknown index: ", ["index"]),
])
def test_stream_schema_failure_is_422_with_the_issue_list(api, bad, prefix, path):
    """A JSON line that is not an item is 422 'Invalid item at index N: ' + zod's issue list."""
    batch_id = create(api, 5)
    text = error_of(api.post(items(batch_id), content=line(0) + bad, headers=NDJSON), 422)
    assert text.startswith(prefix)
    issues = json.loads(text.removeprefix(prefix))
    assert isinstance(issues, list)
    assert path in [issue["path"] for issue in issues]
    assert all(isinstance(issue["message"], str) for issue in issues)


def test_stream_index_out_of_range_is_422(api):
    """An index at or above runCount is 422 'Item index N exceeds batch runCount M'."""
    batch_id = create(api, 5)
    for index in (5, 7):
        text = error_of(api.post(items(batch_id), content=line(index), headers=NDJSON), 422)
        assert text == f"Item index {index} exceeds batch runCount 5"


def test_stream_first_bad_line_leaves_the_batch_open(api):
    """After an error the batch is not sealed: a later stream completes it."""
    batch_id = create(api, 2)
    error_of(api.post(items(batch_id), content=line(0) + line(9), headers=NDJSON), 422)
    body = api.post(items(batch_id), content=line(0) + line(1), headers=NDJSON).json()
    assert body["sealed"] is True
    assert body["itemsAccepted"] + body["itemsDeduplicated"] == 2


def _line_of(size: int, index: int) -> bytes:
    head = b'{"index":%d,"task":"t","payload":"' % index
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_line_of_3_mib_passes_one_byte_more_is_a_pre_failed_run(api):
    """A 3,145,728-byte line is an item; one byte more is no error, the batch still seals."""
    batch_id = create(api, 2)
    for size in (LIMIT, LIMIT + 1):
        assert len(_line_of(size, 0)) == size
    before = api.get("/api/loadkit/stats").json()["items_oversized"]
    answer = api.post(items(batch_id), content=_line_of(LIMIT, 0) + b"\n" + line(1),
                      headers=NDJSON)
    assert answer.json()["sealed"] is True
    assert api.get("/api/loadkit/stats").json()["items_oversized"] == before
    other = create(api, 2)
    answer = api.post(items(other), content=_line_of(LIMIT + 1, 0) + b"\n" + line(1),
                      headers=NDJSON)
    assert answer.status_code == 200
    assert (answer.json()["itemsAccepted"], answer.json()["sealed"]) == (2, True)
    assert api.get("/api/loadkit/stats").json()["items_oversized"] == before + 1


def test_stream_to_an_aborted_batch_is_422():
    """A batch left unsealed past the seal timeout becomes ABORTED; a stream to it is 422."""
    with ReferenceServer(mode="thread", seal_timeout=0.2) as srv, httpx.Client(
            base_url=str(srv.url), headers={"authorization": f"Bearer {KEY}"}) as api:
        batch_id = create(api, 2)
        api.post(items(batch_id), content=line(0), headers=NDJSON)
        deadline = time.monotonic() + 10
        while api.get(f"/api/v2/batches/{batch_id}").json()["status"] != "ABORTED":
            assert time.monotonic() < deadline, "never aborted"
            time.sleep(0.05)
        error_of(api.post(items(batch_id), content=line(1), headers=NDJSON), 422)


def test_retrieve_unknown_batch_is_404_should_retry(api):
    """GET /api/v2/batches/{id} of an unknown batch is 404 {"error": "Not found"}, retryable."""
    answer = api.get("/api/v2/batches/batch_pinnednope")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not found"}
    assert answer.headers["x-should-retry"] == "true"


def test_retrieve_batch_fields(api):
    """A sealed batch is retrieved with id, status, runCount, runs and processing.errors."""
    batch_id = create(api, 2)
    api.post(items(batch_id), content=line(0) + line(1), headers=NDJSON)
    body = api.get(f"/api/v2/batches/{batch_id}").json()
    assert body["id"] == batch_id
    assert body["status"] in ("PENDING", "PROCESSING", "COMPLETED", "PARTIAL_FAILED")
    assert body["runCount"] == 2
    assert isinstance(body["runs"], list)
    assert isinstance(body["processing"]["errors"], list)


# --- the generator's expected outcomes, and the server's answers to its batches -----------


GENERATED = [
    # (faults, seed, the first stream's status, its 200 answer or its error text's start)
    ("", "0", 200, {"itemsAccepted": 20, "itemsDeduplicated": 0, "sealed": True,
                    "runCount": 20}),
    ("gap=0.1", "0", 200, {"itemsAccepted": 18, "itemsDeduplicated": 0, "sealed": False,
                           "enqueuedCount": 18, "expectedCount": 20, "runCount": 20}),
    ("duplicate=0.1", "2", 200, {"itemsAccepted": 20, "itemsDeduplicated": 1, "sealed": True,
                                 "runCount": 20}),
    ("malformed=1", "1", 400, "Invalid JSON at line 8: Unexpected end of JSON input"),
    ("out_of_range=1", "1", 422, "Item index 24 exceeds batch runCount 20"),
    ("schema=1", "1", 422, "Invalid item at index 7: "),
]
"""Literal outcomes of 20-item batches, read once from the generated bodies (parsed line by
line with ``json``): the gap seed leaves out indices 6 and 19, the duplicate seed sends index
4 twice, the malformed line is the 8th (index 7, cut short), the out-of-range 8th line names
index 24, the schema fault is index 7's line (its task a number)."""
STABLE = {"malformed=1": "Invalid JSON at line 8", "schema=1": "Invalid item at index 7",
          "out_of_range=1": "Item index 24 exceeds batch runCount 20"}
"""The part of each error text that does not depend on the server's parser (docs 5.4)."""


@pytest.mark.parametrize(("faults", "seed", "status", "answer"), GENERATED,
                         ids=[g[0] or "clean" for g in GENERATED])
def test_generated_first_stream_outcome_is_the_literal_one(api, faults, seed, status, answer):
    """The generator's expected outcome and the server's answer both equal the literal one."""
    batch = BatchSpec.parse(items="20", faults=faults, seed=seed).batch(0)
    exp = batch.expected
    assert exp.status == status
    batch_id = create(api, 20)
    got = api.post(items(batch_id), content=b"".join(batch.chunks()), headers=NDJSON)
    assert got.status_code == status
    if isinstance(answer, dict):
        assert got.json() == {"id": batch_id, **answer}
        assert (exp.items_accepted, exp.items_deduplicated, exp.sealed) == (
            answer["itemsAccepted"], answer["itemsDeduplicated"], answer["sealed"])
        assert (exp.enqueued_count, exp.expected_count) == (
            answer.get("enqueuedCount"), answer.get("expectedCount"))
    else:
        assert error_of(got, status).startswith(answer)
        assert (exp.error_message or "").startswith(answer)
        assert exp.errors == ((status, STABLE[faults]),)
        if faults == "schema=1":
            issues = json.loads(got.json()["error"].removeprefix(answer))
            assert [i["path"] for i in issues] == [["task"]]


def test_generated_lines_are_items_of_the_documented_shape():
    """A clean generated line is a JSON object with an integer index, a string task, a payload."""
    batch = BatchSpec.parse(items="20", seed="0").batch(0)
    body = b"".join(batch.chunks())
    assert body.endswith(b"\n")
    parsed = [json.loads(raw) for raw in body.split(b"\n")[:-1]]
    assert [p["index"] for p in parsed] == list(range(20))
    assert all(isinstance(p["task"], str) and "payload" in p for p in parsed)
    assert {p["task"] for p in parsed} == {"loadkit-task"}


# --- what the client puts on the wire ----------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    """Records each request's path and headers; answers as a server sealing every batch."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append((self.path, headers))
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if size == 0:
                    break
        else:
            self.rfile.read(int(headers.get("content-length", "0")))
        if self.path == CREATE:
            reply: dict[str, Any] = {"id": "batch_capture", "runCount": 2, "isCached": False}
            status = 202
        else:
            reply = {"id": "batch_capture", "itemsAccepted": 2, "itemsDeduplicated": 0,
                     "sealed": True, "runCount": 2}
            status = 200
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_client_request_headers_are_the_documented_ones():
    """Create and stream carry the SDK's headers (x-trigger-source: loadkit) and content types."""
    _Capture.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with BatchClient(url, KEY) as client:
            result = client.send(BatchSpec.parse(items="2").batch(0))
        assert result.sealed
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    (create_path, create_h), (stream_path, stream_h) = _Capture.seen
    assert (create_path, stream_path) == (CREATE, "/api/v3/batches/batch_capture/items")
    for h in (create_h, stream_h):
        assert h["authorization"] == f"Bearer {KEY}"
        assert h["trigger-version"] == "4.8.3"
        assert h["x-trigger-api-version"] == "2025-07-16"
        assert h["x-trigger-source"] == "loadkit"
        assert h["x-trigger-realtime-streams-version"] == "v2"
    assert create_h["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        create_h["x-trigger-request-idempotency-key"])
    assert stream_h["content-type"] == "application/x-ndjson"
    assert stream_h["transfer-encoding"] == "chunked"
    assert "x-trigger-request-idempotency-key" not in stream_h

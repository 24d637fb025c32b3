"""Phase 2 and retrieve: each rule of docs/batch-api.md (sections 5-6) against a live server."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from loadkit import wire
from loadkit.server import ReferenceServer

from .conftest import OTHER_KEY, Api, lines


def wait_status(api: Api, batch_id: str, statuses: tuple[str, ...], timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api.retrieve(batch_id).json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_full_stream_seals(api):
    """Every index once → 200 {itemsAccepted: runCount, itemsDeduplicated: 0, sealed: true}."""
    bid = api.new_batch(3)
    r = api.stream(bid, lines(range(3)))
    assert r.status_code == 200
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 3,
        "itemsDeduplicated": 0,
        "sealed": True,
        "runCount": 3,
    }


def test_partial_stream_is_unsealed_with_counts(api):
    """Missing indices → sealed: false with enqueuedCount and expectedCount; a retry seals."""
    bid = api.new_batch(4)
    r = api.stream(bid, lines([0, 2]))
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 2,
        "itemsDeduplicated": 0,
        "sealed": False,
        "enqueuedCount": 2,
        "expectedCount": 4,
        "runCount": 4,
    }
    r = api.stream(bid, lines(range(4)))
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 2,
        "itemsDeduplicated": 2,
        "sealed": True,
        "runCount": 4,
    }


def test_duplicates_in_one_stream_first_wins(api):
    """A repeated index is counted in itemsDeduplicated, never an error; the first copy wins."""
    bid = api.new_batch(2)
    r = api.stream(bid, lines([0, 0, 1, 0, 1]))
    assert r.json()["itemsAccepted"] == 2
    assert r.json()["itemsDeduplicated"] == 3
    assert r.json()["sealed"] is True


def test_sealed_batch_answers_zero_without_reading(api):
    """Streaming to a sealed batch answers 200 {0, 0, sealed: true}, even with a garbage body."""
    bid = api.new_batch(1)
    api.stream(bid, lines([0]))
    r = api.stream(bid, b"this is not json\n")
    assert r.status_code == 200
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 0,
        "itemsDeduplicated": 0,
        "sealed": True,
        "runCount": 1,
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"index":0,"task":"t"}\r\n{"index":1,"task":"t"}\r\n',
        b'\n\n{"index":0,"task":"t"}\n   \n\t\n{"index":1,"task":"t"}\n\n',
        b'{"index":0,"task":"t"}\n{"index":1,"task":"t"}',
        b'  {"index":0,"task":"t"}  \n{"index":1,"task":"t","payload":"a\\nb"}',
    ],
    ids=["crlf", "blank-lines", "no-final-newline", "spaces-and-escaped-newline"],
)
def test_line_framing(api, body):
    """CRLF, blank and whitespace lines, no final newline and escaped \\n all parse as expected."""
    bid = api.new_batch(2)
    r = api.stream(bid, body)
    assert r.json()["itemsAccepted"] == 2
    assert r.json()["sealed"] is True


def test_whitespace_only_body_holds_no_items(api):
    """A body of only whitespace is accepted with no items (batch stays unsealed)."""
    bid = api.new_batch(2)
    r = api.stream(bid, b" \n\r\n\t\n")
    assert r.status_code == 200
    assert r.json()["itemsAccepted"] == 0
    assert r.json()["sealed"] is False


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/x-ndjson", 200),
        ("application/ndjson", 200),
        ("application/x-ndjson; charset=utf-8", 200),
        ("application/json", 415),
        ("text/plain", 415),
        ("", 415),
    ],
)
def test_content_type(api, content_type, status):
    """Only content types containing application/x-ndjson or application/ndjson are accepted."""
    bid = api.new_batch(1)
    r = api.stream(bid, lines([0]), content_type=content_type)
    assert r.status_code == status
    if status == 415:
        assert r.json()["error"] == wire.msg.unsupported_media_type()


def test_stream_without_key_answers_401(server):
    """A stream without a valid key answers 401."""
    r = httpx.post(
        server.url + wire.stream_path("batch_x"),
        content=lines([0]),
        headers={"content-type": wire.NDJSON_CONTENT_TYPE},
    )
    assert r.status_code == 401


def test_empty_body_answers_200_not_sealed(api):
    """A stream with an empty body is no error: 200, not sealed, nothing enqueued, runCount."""
    bid = api.new_batch(2)
    r = api.stream(bid, b"")
    assert r.status_code == 200
    assert r.json() == {"id": bid, "itemsAccepted": 0, "itemsDeduplicated": 0, "sealed": False,
                        "enqueuedCount": 0, "expectedCount": 2, "runCount": 2}


@pytest.mark.parametrize("batch_id", ["batch_doesnotexist", "run_elsewhere", "batch_unknown123"])
def test_unknown_batch_answers_422(api, batch_id):
    """A well-formed but unknown batch id answers 422 'Batch <id> not found', not 404."""
    r = api.stream(batch_id, lines([0]))
    assert r.status_code == 422
    assert r.json()["error"] == wire.msg.batch_not_found(batch_id)


@pytest.mark.parametrize("batch_id", ["x", "b" * 300, "batch_a_b", "_abc", "batch_"])
def test_malformed_batch_id_answers_400(api, batch_id):
    """An id not of the ``<entity>_<id>`` form answers 400 'Invalid batchFriendlyId: <id>'."""
    r = api.stream(batch_id, lines([0]))
    assert r.status_code == 400
    assert r.json()["error"] == wire.msg.invalid_batch_id(batch_id)


def test_content_type_is_checked_before_the_key(server):
    """A wrong content type without any key answers 415, not 401."""
    r = httpx.post(server.url + wire.stream_path("batch_x"), content=b"{}\n",
                   headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_batches_are_invisible_across_environments(server, api):
    """A batch made with one key is 'not found' (422 / 404) with another key."""
    bid = api.new_batch(1)
    with Api(server.url, OTHER_KEY) as other:
        assert other.stream(bid, lines([0])).status_code == 422
        assert other.retrieve(bid).status_code == 404
    assert api.retrieve(bid).status_code == 200


def test_invalid_json_names_the_physical_line(api):
    """Invalid JSON answers 400 'Invalid JSON at line N: <reason>' counting blank lines; of the
    items in its chunk only the first stays enqueued."""
    bid = api.new_batch(5)
    r = api.stream(bid, lines([0]) + b"\n" + lines([1]) + b"{nope\n" + lines([2]))
    assert r.status_code == 400
    assert r.json()["error"].startswith(wire.msg.invalid_json(4) + ": ")
    r = api.stream(bid, lines(range(5)))
    assert r.json()["itemsAccepted"] == 4
    assert r.json()["itemsDeduplicated"] == 1


def test_invalid_utf8_answers_400_not_500(api):
    """Invalid UTF-8 on a line answers 400 naming the line."""
    bid = api.new_batch(2)
    r = api.stream(bid, lines([0]) + b'{"index":1,"task":"\xff\xfe"}\n')
    assert r.status_code == 400
    assert r.json()["error"] == wire.msg.invalid_utf8(2)


@pytest.mark.parametrize(
    "item",
    [
        [1, 2],
        "x",
        3,
        None,
        {"task": "t"},
        {"index": -1, "task": "t"},
        {"index": "0", "task": "t"},
        {"index": 0},
        {"index": 0, "task": 5},
        {"index": 0.5, "task": "t"},
        {"index": True, "task": "t"},
        {"index": 0, "task": "t", "options": {"concurrencyKey": {"a": 1}}},
        {"index": 0, "task": "t", "options": "x"},
    ],
)
def test_schema_failures_answer_422(api, item):
    """Non-object lines and items that are not BatchItemNDJSON answer 422 'Invalid item …'."""
    bid = api.new_batch(2)
    r = api.stream(bid, orjson.dumps(item) + b"\n")
    assert r.status_code == 422
    label = wire.item_index_label(item)
    assert r.json()["error"] == wire.msg.invalid_item(label, wire.item_schema_error(item))
    assert r.json()["error"].startswith("Invalid item at unknown index" if label is None
                                        else f"Invalid item at index {wire.js_number_str(label)}")


def test_unknown_fields_and_numeric_concurrency_key_are_accepted(api):
    """Unknown fields are ignored and options.concurrencyKey may be a number."""
    bid = api.new_batch(2)
    body = lines([0], extra={"x": 1}) + lines([1], options={"concurrencyKey": 7, "tags": ["a"]})
    assert api.stream(bid, body).json()["sealed"] is True


def test_index_at_or_over_run_count_answers_422(api):
    """index >= runCount answers 422 and the batch stays unsealed."""
    bid = api.new_batch(2)
    r = api.stream(bid, lines([0, 1, 2]))
    assert r.status_code == 422
    assert r.json()["error"] == wire.msg.index_out_of_range(2, 2)
    assert api.stream(bid, lines([0, 1])).json()["itemsDeduplicated"] == 2


def test_oversized_line_becomes_pre_failed_run(api):
    """A line over item_max_bytes becomes a pre-failed run counted as a success, as on the real
    server: the batch seals and completes, its run listed and no batch error."""
    bid = api.new_batch(3)
    big = orjson.dumps({"index": 1, "task": "big", "payload": "x" * 5000}) + b"\n"
    r = api.stream(bid, lines([0]) + big + lines([2]))
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 3,
        "itemsDeduplicated": 0,
        "sealed": True,
        "runCount": 3,
    }
    body = wait_status(api, bid, ("COMPLETED",))
    assert body["status"] == "COMPLETED"
    assert body["runs"] == [f"run_{bid[6:]}_{i}" for i in range(3)]
    assert body["processing"]["errors"] == []
    assert api.stats()["items_oversized"] == 1


def test_oversized_limit_counts_bytes_not_characters(api):
    """A line of fewer characters than the limit but more bytes (multi-byte UTF-8) is oversized."""
    bid = api.new_batch(1)
    line = orjson.dumps({"index": 0, "task": "t", "payload": "é" * 2100})  # ~4,230 bytes
    assert len(line.decode()) < 4096 < len(line)
    api.stream(bid, line)
    assert api.stats()["items_oversized"] >= 1
    body = wait_status(api, bid, ("COMPLETED",))
    assert body["status"] == "COMPLETED"  # its one run pre-failed, counted as a success
    assert len(body["runs"]) == 1


def test_oversized_line_without_index_takes_its_position(api):
    """An oversized line with no readable index takes its position among the item lines."""
    bid = api.new_batch(3)
    big = b'{"task":"t","payload":"' + b"x" * 5000 + b'","index":2}\n'
    r = api.stream(bid, lines([1]) + b"\n" + big + lines([0]))
    assert r.json()["sealed"] is False
    assert r.json()["itemsAccepted"] == 2
    assert api.stream(bid, lines([0, 1, 2])).json()["itemsDeduplicated"] == 2


def test_oversized_line_with_index_over_run_count_answers_422(api):
    """An oversized line whose index is >= runCount answers 422 like any other."""
    bid = api.new_batch(2)
    big = orjson.dumps({"index": 7, "task": "t", "payload": "x" * 5000})
    r = api.stream(bid, big)
    assert r.status_code == 422
    assert r.json()["error"] == wire.msg.index_out_of_range(7, 2)


def test_growing_50mb_line_is_cut_off_and_skipped(server, api):
    """A 50 MB line in 64 KiB chunks is skipped through its newline; later lines parse; RSS flat."""
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    bid = api.new_batch(3)
    rss_before = proc.memory_info().rss

    def body():
        yield lines([0])
        yield b'{"index":1,"task":"t","payload":"'
        block = b"y" * 65536
        for _ in range(50 * 16):
            yield block
        yield b'"}\n'
        yield lines([2])

    r = api.stream(bid, body())
    assert r.json() == {
        "id": bid,
        "itemsAccepted": 3,
        "itemsDeduplicated": 0,
        "sealed": True,
        "runCount": 3,
    }
    assert proc.memory_info().rss - rss_before < 20 * 2**20
    body = wait_status(api, bid, ("COMPLETED",))
    assert len(body["runs"]) == 3
    assert body["processing"]["errors"] == []


def test_concurrent_streams_dedupe_exactly_and_seal_once():
    """Eight threads streaming overlapping halves of one batch: each index once, sealed once."""
    run_count = 3000
    with ReferenceServer(mode="thread", max_items=run_count) as s, Api(s.url) as api:
        bid = api.new_batch(run_count)
        answers: list[dict] = []
        lock = threading.Lock()

        def server_has_all_eight() -> None:
            # A yielded chunk may still sit in a socket buffer: release the streams only once
            # the server has begun all eight, so none of them finds the batch already sealed.
            deadline = time.monotonic() + 30
            while api.stats()["stream_requests"] < 8 and time.monotonic() < deadline:
                time.sleep(0.01)

        barrier = threading.Barrier(8, action=server_has_all_eight)

        def worker(k: int) -> None:
            order = list(range(run_count))[k % 2 :: 2] + list(range(run_count))[(k + 1) % 2 :: 2]
            chunks = [lines(order[i : i + 50]) for i in range(0, run_count, 50)]

            def body():
                yield chunks[0]
                barrier.wait(30)  # every stream is in progress before any ends
                yield from chunks[1:]

            with Api(s.url) as mine:
                r = mine.stream(bid, body())
            with lock:
                answers.append(r.json())

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 8
        assert sum(a["itemsAccepted"] for a in answers) == run_count
        assert sum(a["itemsAccepted"] + a["itemsDeduplicated"] for a in answers) == 8 * run_count
        assert any(a["sealed"] for a in answers)
        stats = api.stats()
        assert stats["streams_to_sealed"] == 0
        assert stats["batches_sealed"] == 1
        assert stats["items_enqueued"] == run_count
        body = wait_status(api, bid, ("COMPLETED",))
        assert body["status"] == "COMPLETED"
        assert len(set(body["runs"])) == run_count


def test_retrieve_moves_through_statuses_at_run_rate():
    """With run_rate 200/s a 100-item batch goes PENDING → PROCESSING → COMPLETED in ~0.5 s."""
    with ReferenceServer(mode="thread", run_rate=200, engine_tick=0.02) as s, Api(s.url) as api:
        bid = api.new_batch(100, idempotencyKey="ret")
        body = api.retrieve(bid).json()
        assert body["status"] == "PENDING"
        assert body["runs"] == []
        assert body["idempotencyKey"] == "ret"
        t0 = time.perf_counter()
        api.stream(bid, lines(range(100)))
        assert wait_status(api, bid, ("PROCESSING",))["status"] == "PROCESSING"
        done = wait_status(api, bid, ("COMPLETED",))
        elapsed = time.perf_counter() - t0
        assert done["status"] == "COMPLETED"
        assert len(done["runs"]) == 100
        assert "completedAt" in done["processing"]
        assert 0.3 <= elapsed <= 1.5


def test_runs_start_before_the_batch_seals(api):
    """Enqueued items of an unsealed batch already become runs (status PROCESSING)."""
    bid = api.new_batch(3)
    api.stream(bid, lines([0, 1]))
    body = wait_status(api, bid, ("PROCESSING",))
    assert body["status"] == "PROCESSING"
    assert len(body["runs"]) == 2


def test_unsealed_batch_is_aborted_after_seal_timeout_and_then_422():
    """An unsealed batch is reaped as ABORTED after seal_timeout; streams to it then answer 422."""
    with ReferenceServer(mode="thread", seal_timeout=0.3) as s, Api(s.url) as api:
        bid = api.new_batch(2)
        api.stream(bid, lines([0]))
        body = wait_status(api, bid, ("ABORTED",), timeout=5)
        assert body["status"] == "ABORTED"
        r = api.stream(bid, lines([1]))
        assert r.status_code == 422
        assert r.json()["error"] == wire.msg.batch_aborted(bid)


def test_completed_batches_answer_sealed(api):
    """Streams to COMPLETED batches, with or without a pre-failed run, answer 200 sealed."""
    ok, partial = api.new_batch(1), api.new_batch(2)
    api.stream(ok, lines([0]))
    api.stream(partial, lines([0]) + orjson.dumps({"index": 1, "task": "t", "p": "x" * 5000}))
    assert wait_status(api, ok, ("COMPLETED",))["status"] == "COMPLETED"
    assert wait_status(api, partial, ("COMPLETED",))["status"] == "COMPLETED"
    for bid in (ok, partial):
        assert api.stream(bid, b"garbage").json()["sealed"] is True


def test_stats_count_what_happened(server):
    """The truth endpoint counts lines, enqueued, dupes, rejects and bytes; DELETE resets."""
    with Api(server.url) as api:
        api.client.delete(wire.STATS_PATH)
        bid = api.new_batch(3)
        body = lines([0, 0, 1]) + b"\n{bad\n"
        api.stream(bid, body)
        s = api.stats()
        assert s["batches_created"] == 1
        assert s["stream_requests"] == 1
        assert s["lines_read"] == 3
        assert s["items_enqueued"] == 1  # the bad line dropped the rest of its chunk
        assert s["items_deduplicated"] == 1
        assert s["items_rejected"] == 1
        assert s["rejected_by_reason"] == {"invalid_json": 1}
        assert s["bytes_read"] == len(body)
        assert s["ingest_series"][-1][1] == 1
        assert s["responses_by_status"] == {"202": 1, "400": 1}


def test_wire_texts_in_answers_and_openapi(server, api):
    """Answers carry wire's JSON content type; the OpenAPI 415 text is wire's own message."""
    r = api.stream(api.new_batch(1), lines([0]), content_type="text/plain")
    assert r.status_code == 415
    assert r.headers[wire.Header.CONTENT_TYPE] == wire.JSON_CONTENT_TYPE
    assert int(r.headers[wire.Header.CONTENT_LENGTH]) == len(r.content)
    doc = httpx.get(server.url + wire.OPENAPI_PATH).json()
    stream = doc["paths"][wire.STREAM_PATH.replace("{batch_id}", "{batchId}")]["post"]
    assert stream["responses"]["415"]["description"] == wire.msg.unsupported_media_type()
    assert sorted(stream["requestBody"]["content"]) == sorted(wire.NDJSON_CONTENT_TYPES)

"""Tests for loadkit.generators: determinism, encoding, sizes, chunks and expected outcomes."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadkit import wire
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec, Faults

SMALL_LIMIT = 4096  # a small per-item limit keeps oversized lines cheap in tests


def simulate(lines: list[bytes], run_count: int, item_max_bytes: int) -> dict:
    """An independent model of the server's phase-2 rules, applied to the bytes sent."""
    seen: set[int] = set()
    dedup = 0
    too_large: list[int] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\n")
        if len(line) > item_max_bytes:
            index, _ = wire.index_from_prefix(line)
            assert index is not None
            if index >= run_count:
                return {"status": 422, "line": number, "enqueued": len(seen),
                    "message": wire.msg.index_out_of_range(index, run_count)}
            if index in seen:
                dedup += 1
            else:
                seen.add(index)
                too_large.append(index)
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            return {"status": 400, "line": number, "enqueued": len(seen),
                    "message": wire.msg.invalid_json(number)}
        problem = wire.item_schema_error(item)
        if problem is not None:
            return {"status": 422, "line": number, "enqueued": len(seen),
                    "message": wire.msg.invalid_item(wire.item_index_label(item), problem)}
        if item["index"] >= run_count:
            return {"status": 422, "line": number, "enqueued": len(seen),
                    "message": wire.msg.index_out_of_range(item["index"], run_count)}
        if item["index"] in seen:
            dedup += 1
        else:
            seen.add(item["index"])
    return {"status": 200, "accepted": len(seen), "dedup": dedup, "enqueued": len(seen),
            "sealed": len(seen) == run_count, "too_large": sorted(too_large)}


def test_same_seed_and_seq_give_same_bytes():
    """A batch regenerated from the same seed and sequence is identical byte for byte."""
    spec = BatchSpec.parse(items="uniform:1:500", payload_bytes="lognormal:300:1", seed=9,
                           faults="duplicate=0.05,gap=0.05,shuffle=0.5,malformed=0.3")
    for seq in range(5):
        a = b"".join(spec.batch(seq).chunks())
        b = b"".join(BatchSpec.parse(**spec.as_settings()).batch(seq).chunks())
        assert a == b


def test_different_seq_or_seed_give_different_batches():
    """Different sequence numbers or seeds make different batches."""
    spec = BatchSpec.parse(items="100", payload_bytes="200")
    bodies = {b"".join(spec.batch(seq).chunks()) for seq in range(20)}
    assert len(bodies) == 20
    other = BatchSpec.parse(items="100", payload_bytes="200", seed=1)
    assert b"".join(other.batch(0).chunks()) not in bodies


@pytest.mark.parametrize("shape", ["flat", "nested:4", "array:12", "mixed"])
def test_every_line_is_a_valid_item(shape):
    """Without faults every line parses as JSON and satisfies the item schema."""
    spec = BatchSpec.parse(items="300", payload_bytes="uniform:0:2000", shape=shape,
                           tasks="a:3,b:1", options="all", options_rate=0.3)
    batch = spec.batch(1)
    lines = list(batch.lines())
    assert len(lines) == batch.run_count
    for number, line in enumerate(lines):
        assert line.endswith(b"\n")
        item = orjson.loads(line)
        assert wire.item_schema_error(item) is None
        assert item["index"] == number
        assert item["task"] in batch.task_identifiers


def test_payloads_have_the_drawn_size_exactly():
    """The encoded payload of every item is exactly the size drawn for it."""
    spec = BatchSpec.parse(items="1000", payload_bytes="lognormal:512:1.2")
    batch = spec.batch(3)
    drawn = batch._sizes.tolist()
    for line in batch.lines():
        item = orjson.loads(line)
        size = len(orjson.dumps(item["payload"])) if "payload" in item else 0
        assert size == drawn[item["index"]]


def test_payload_sizes_follow_the_distribution():
    """The mean encoded payload size is within 5% of the distribution's mean."""
    spec = BatchSpec.parse(items="1000", payload_bytes="uniform:100:900")
    sizes = [len(orjson.dumps(orjson.loads(line)["payload"]))
             for seq in range(5) for line in spec.batch(seq).lines()]
    assert abs(sum(sizes) / len(sizes) - 500) / 500 < 0.05


def test_payloads_are_varied_and_structured():
    """Payloads of one size differ from each other and carry realistic structure."""
    spec = BatchSpec.parse(items="500", payload_bytes="300", shape="mixed")
    payloads = [orjson.loads(line)["payload"] for line in spec.batch(0).lines()]
    assert len({orjson.dumps(p) for p in payloads}) > 0.9 * len(payloads)
    text = b"".join(orjson.dumps(p) for p in payloads)
    assert b"@" in text  # emails
    assert b'T12:' in text or b"T13:" in text  # timestamps
    assert any(isinstance(v, dict) for p in payloads for v in p.values())
    assert any(isinstance(v, list) for p in payloads for v in p.values())


def test_task_mix_follows_weights():
    """Tasks are drawn with their weights and the identifiers are sorted and unique."""
    spec = BatchSpec.parse(items="1000", tasks="b-task:3,a-task:1")
    batch = spec.batch(0)
    tasks = [orjson.loads(line)["task"] for line in batch.lines()]
    assert batch.task_identifiers == ("a-task", "b-task")
    assert 0.70 < tasks.count("b-task") / len(tasks) < 0.80


@pytest.mark.parametrize("chunk_bytes", [1, 1000, 65536])
def test_chunks_are_coalesced_lines(chunk_bytes):
    """Chunks join to the lines, end on line boundaries and are about chunk_bytes each."""
    spec = BatchSpec.parse(items="1000", payload_bytes="200")
    batch = spec.batch(0)
    chunks = list(batch.chunks(chunk_bytes))
    assert b"".join(chunks) == b"".join(batch.lines())
    assert all(c.endswith(b"\n") for c in chunks)
    if chunk_bytes >= 1000:
        assert len(chunks) < batch.run_count / 3
        assert all(len(c) < chunk_bytes + 1000 for c in chunks)
        assert all(len(c) >= chunk_bytes - 1000 for c in chunks[:-1])


@pytest.mark.parametrize(
    "settings",
    [{"payload_bytes": "64"}, {"payload_bytes": "uniform:8:300"},
     {"payload_bytes": "choice:10,80", "tasks": "a%b:2,c"},
     {"payload_bytes": "lognormal:100:1", "tasks": "x,y,z"}],
)
def test_fast_chunks_equal_line_by_line_encoding(settings):
    """The chunk encoder gives the same bytes as line-by-line encoding, beyond the head cache."""
    spec = BatchSpec.parse(items="40000", max_items="40000", **settings)
    batch = spec.batch(1)
    joined = b"".join(batch.chunks())
    assert joined == b"".join(batch.lines())
    last = orjson.loads(joined[joined.rindex(b"\n", 0, -1) + 1:])
    assert last["index"] == 39_999


def test_default_chunks_are_64_kib():
    """By default chunks are about 64 KiB, never one line per chunk."""
    batch = BatchSpec.parse(items="1000", payload_bytes="500").batch(0)
    sizes = [len(c) for c in batch.chunks()]
    assert len(sizes) < 12
    assert all(60_000 < s < 70_000 for s in sizes[:-1])


def test_clean_chunks_for_a_subset():
    """clean_chunks sends exactly the valid lines of the indices asked for, in index order."""
    spec = BatchSpec.parse(items="200", faults="gap=0.3,duplicate=0.3,malformed=1,shuffle=1")
    batch = spec.batch(2)
    lines = b"".join(batch.clean_chunks([150, 3, 3, 77])).splitlines()
    assert [orjson.loads(x)["index"] for x in lines] == [3, 77, 150]
    full = [orjson.loads(x)["index"] for x in batch.clean_lines()]
    assert full == list(range(batch.run_count))
    with pytest.raises(ConfigError):
        list(batch.clean_chunks([200]))


def test_no_faults_expect_a_sealed_batch():
    """A fault-free batch is expected to be accepted whole and sealed."""
    batch = BatchSpec.parse(items="250").batch(0)
    exp = batch.expected
    assert (exp.status, exp.items_accepted, exp.items_deduplicated, exp.sealed) == (
        200, 250, 0, True)
    assert exp.response("batch_x") == {"id": "batch_x", "itemsAccepted": 250,
                                       "itemsDeduplicated": 0, "sealed": True}


@pytest.mark.parametrize(
    ("faults", "status"),
    [("duplicate=0.2", 200), ("gap=0.2", 200), ("shuffle=1", 200), ("malformed=1", 400),
     ("schema=1", 422), ("out_of_range=1", 422), ("oversized=1", 200)],
)
def test_each_fault_kind_matches_the_model(faults, status):
    """Each fault kind's expected outcome equals an independent model of the server."""
    spec = BatchSpec.parse(items="300", faults=faults, item_max_bytes=SMALL_LIMIT, seed=4)
    for seq in range(10):
        batch = spec.batch(seq)
        check_expected(batch)
        assert batch.expected.status == status


def test_oversized_item_stays_oversized_on_retry():
    """An oversized item is an item property: its clean line is oversized too."""
    spec = BatchSpec.parse(items="50", faults="oversized=1", item_max_bytes=SMALL_LIMIT)
    batch = spec.batch(0)
    (index,) = batch.expected.too_large
    line = next(batch.clean_lines([index]))
    assert len(line) > SMALL_LIMIT
    assert wire.index_from_prefix(line)[0] == index


def check_expected(batch):
    lines = list(batch.lines())
    model = simulate(lines, batch.run_count, batch.spec.item_max_bytes)
    exp = batch.expected
    low = exp.enqueued if exp.enqueued_low is None else exp.enqueued_low
    assert exp.lines == len(lines)
    assert len(exp.missing) == batch.run_count - low
    if model["status"] != 200:  # the model is one cut (a line per chunk): one allowed outcome
        assert exp.status != 200
        assert low <= model["enqueued"] <= exp.enqueued
        assert exp.allows_error(model["status"], model.get("message", ""))
        return
    assert exp.status == model["status"]
    assert exp.enqueued == model["enqueued"]
    if exp.status == 200:
        assert exp.items_accepted == model["accepted"]
        assert exp.items_deduplicated == model["dedup"]
        assert exp.sealed == model["sealed"]
        # too_large is the final state (an item property); the first stream shows the sent ones
        assert sorted(set(exp.too_large) - set(exp.missing)) == model["too_large"]
        assert (exp.enqueued_count, exp.expected_count) == (
            (None, None) if exp.sealed else (model["enqueued"], batch.run_count))
    else:
        assert exp.error_line == model["line"]
        if "message" in model:
            assert exp.error_message == model["message"]
    # the indices the first stream's lines (up to a rejected line) hold are exactly those not
    # missing; the missing ones, sent clean afterwards, complete the batch
    sent = lines if exp.status == 200 else lines[: exp.error_line - 1]
    present = {_line_index(raw) for raw in sent if raw.strip()}
    assert present == set(range(batch.run_count)) - set(exp.missing)
    assert len(set(exp.missing)) == len(exp.missing)


def _line_index(raw: bytes) -> int:
    try:
        return orjson.loads(raw)["index"]
    except orjson.JSONDecodeError:  # only an oversized line may be cut: read its prefix
        index, _ = wire.index_from_prefix(raw)
        assert index is not None
        return index


fault_rates = st.fixed_dictionaries({
    name: st.sampled_from([0.0, 0.05, 0.5, 1.0])
    for name in ("duplicate", "gap", "shuffle", "malformed", "schema", "out_of_range",
                 "oversized")
})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rates=fault_rates, items=st.integers(1, 400), seed=st.integers(0, 2**16),
       seq=st.integers(0, 1000))
def test_expected_outcome_matches_the_model_for_any_fault_mix(rates, items, seed, seq):
    """For any combination of fault rates the expected outcome equals the server model."""
    spec = BatchSpec.parse(items=str(items), payload_bytes="uniform:0:300", seed=seed,
                           faults=Faults(**rates), item_max_bytes=SMALL_LIMIT)
    check_expected(spec.batch(seq))


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"items": "uniform:a:b"}, "items"),
        ({"items": "0"}, "items"),
        ({"items": "1001"}, "items"),
        ({"items": "2000", "max_items": "5000"}, None),
        ({"payload_bytes": "-5"}, "payload_bytes"),
        ({"faults": "gap=1.5"}, "faults.gap"),
        ({"faults": "gap"}, "faults"),
        ({"faults": "typo=0.1"}, "faults"),
        ({"options_rate": "-0.1"}, "options_rate"),
        ({"options": "color"}, "options"),
        ({"shape": "cube"}, "shape"),
        ({"tasks": "a:0"}, "tasks"),
        ({"seed": "x"}, "seed"),
        ({"chunk_bytes": "0"}, "chunk_bytes"),
        ({"idempotency": "maybe"}, "idempotency"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_raise_config_errors_naming_the_field(settings, field):
    """Bad settings raise ConfigError naming the field; good ones parse."""
    if field is None:
        BatchSpec.parse(**settings)
        return
    with pytest.raises(ConfigError) as info:
        BatchSpec.parse(**settings)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_settings_round_trip():
    """as_settings gives back strings that parse to an equal spec."""
    spec = BatchSpec.parse(items="choice:1,5*2", payload_bytes="pareto:100:2", shape="array:3",
                           tasks="x:2,y", options="tags,ttl", options_rate="0.25",
                           idempotency="yes", faults="gap=0.1", seed=5, chunk_bytes=1000)
    assert BatchSpec.parse(**spec.as_settings()) == spec


def test_idempotency_key_is_derived_from_seed_and_seq():
    """With idempotency on, each batch's key is stable and distinct per batch."""
    spec = BatchSpec.parse(idempotency=True, seed=3)
    assert spec.batch(7).idempotency_key == "loadkit-3-7"
    assert BatchSpec.parse().batch(7).idempotency_key is None


@pytest.mark.parametrize("payload_bytes", ["100", "uniform:50:150"])
def test_memory_stays_flat_however_large_the_batch(payload_bytes):
    """Streaming a 100,000-item batch allocates at most a few MB beyond one chunk at a time."""
    spec = BatchSpec.parse(items="100000", max_items="100000", payload_bytes=payload_bytes)
    batch = spec.batch(0)
    list(spec.batch(1).chunks())  # warm the spec's pools outside the measurement
    tracemalloc.start()
    for _ in batch.chunks():
        pass
    for _ in batch.clean_chunks(range(0, 100_000, 2)):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 6_000_000  # the lines alone are ~15 MB


def test_empty_subset_sends_nothing():
    """clean_chunks of no indices yields no chunk at all."""
    assert list(BatchSpec.parse().batch(0).clean_chunks([])) == []


def test_large_batch_regenerates_without_holding_lines():
    """A 100,000-item batch is generated lazily: chunks come out in order, once each."""
    spec = BatchSpec.parse(items="100000", max_items="100000", payload_bytes="100")
    batch = spec.batch(0)
    count = sum(c.count(b"\n") for c in batch.chunks())
    assert count == 100_000
    assert batch.expected.sealed

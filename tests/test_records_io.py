"""Run directories: crash-safe JSONL appends, atomic run.json and Parquet, readers."""

import os
import stat
import subprocess
import sys
import typing

import pytest

from loadkit.errors import RecordsError
from loadkit.records import (
    ARROW_SCHEMA,
    RECORDS_JSONL,
    SCHEMA_VERSION,
    BatchRecord,
    RecordWriter,
    atomic_write,
    create_run_dir,
    read_jsonl,
    read_records,
    read_run_meta,
    records_table,
    write_parquet,
    write_run_meta,
)
from tests.test_thresholds import row


def test_writer_reader_round_trip_via_jsonl_and_parquet(tmp_path):
    run_dir = create_run_dir(tmp_path, "run1")
    with RecordWriter(run_dir / RECORDS_JSONL) as writer:
        writer.write_many([row(seq=i) for i in range(5)])
        writer.write(row(seq=5, error="boom", intended_at=99.5, total_from_intended_ms=1.5))
    table = read_records(run_dir)  # from JSONL
    assert table.schema.equals(ARROW_SCHEMA, check_metadata=False)
    assert table.column("seq").to_pylist() == list(range(6))
    write_parquet(run_dir)
    assert read_records(run_dir).to_pylist() == table.to_pylist()  # from Parquet
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    run_dir = create_run_dir(tmp_path, "torn")
    with RecordWriter(run_dir / RECORDS_JSONL) as writer:
        writer.write_many([row(seq=0), row(seq=1)])
    path = run_dir / RECORDS_JSONL
    with open(path, "ab") as fh:
        fh.write(b'{"run_id": "r", "seq": 2, "tot')
    assert [r["seq"] for r in read_jsonl(path)] == [0, 1]
    assert read_records(run_dir).num_rows == 2
    path.write_bytes(b'{"seq": 0}\nnot json\n{"seq": 1}\n')
    with pytest.raises(RecordsError, match="line 2"):
        read_jsonl(path)


def test_writer_flushes_within_the_interval_without_close(tmp_path):
    path = tmp_path / RECORDS_JSONL
    writer = RecordWriter(path, flush_interval=0.0)
    writer.write(row(seq=0))
    assert len(read_jsonl(path)) == 1  # on disk before close
    writer.close()


def test_killed_writer_leaves_readable_records(tmp_path):
    """A process SIGKILLed while appending leaves only complete lines (plus a torn one)."""
    code = (
        "import sys, time\n"
        "from loadkit.records import RecordWriter\n"
        "from tests.test_thresholds import row\n"
        "w = RecordWriter(sys.argv[1], flush_interval=0.05)\n"
        "i = 0\n"
        "while True:\n"
        "    w.write(row(seq=i)); i += 1\n"
        "    if i == 50: print('go', flush=True)\n"
        "    time.sleep(0.001)\n"
    )
    path = tmp_path / RECORDS_JSONL
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            cwd=os.getcwd(), text=True)
    assert proc.stdout.readline().strip() == "go"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    rows = read_jsonl(path)
    assert len(rows) >= 1
    assert [r["seq"] for r in rows] == list(range(len(rows)))


def test_run_meta_is_atomic_and_versioned(tmp_path):
    run_dir = create_run_dir(tmp_path, "meta")
    write_run_meta(run_dir, {"run_id": "meta", "options": {"items": "10"}})
    meta = read_run_meta(run_dir)
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["options"] == {"items": "10"}
    write_run_meta(run_dir, {**meta, "ended_at": 5.0})
    assert read_run_meta(run_dir)["ended_at"] == 5.0
    assert sorted(os.listdir(run_dir)) == ["run.json"]


def test_unwritable_or_existing_results_dir_fails_clearly(tmp_path, read_only_dir):
    create_run_dir(tmp_path, "taken")
    with pytest.raises(RecordsError, match="already exists"):
        create_run_dir(tmp_path, "taken")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with pytest.raises(RecordsError, match="cannot write to results directory"):
        create_run_dir(a_file, "r")
    locked = tmp_path / "locked"
    why = read_only_dir(locked)  # mode 0555, or for root a read-only mount
    with pytest.raises(RecordsError, match="cannot write to results directory") as info:
        create_run_dir(locked, "r")
    assert why in str(info.value)


def test_readers_say_what_is_missing(tmp_path):
    with pytest.raises(RecordsError, match="not found"):
        read_run_meta(tmp_path)
    with pytest.raises(RecordsError, match="holds no"):
        read_records(tmp_path)


def test_blank_record_is_blank_by_field_type_and_takes_overrides():
    """BatchRecord.blank gives None to optional fields, zero values to required ones."""
    blank = BatchRecord.blank(outcome="dropped", seq=7)
    hints = typing.get_type_hints(BatchRecord)
    for name, value in blank.as_dict().items():
        if name in ("outcome", "seq"):
            continue
        if type(None) in typing.get_args(hints[name]):
            assert value is None, name
        else:
            assert value == hints[name](), name
            assert type(value) is hints[name], name
    assert (blank.outcome, blank.seq) == ("dropped", 7)
    assert records_table([blank]).num_rows == 1  # valid against the Arrow schema
    with pytest.raises(TypeError):
        BatchRecord.blank(no_such_field=1)


def test_atomic_write_syncs_the_folder_and_keeps_the_old_file_on_failure(tmp_path,
                                                                         monkeypatch):
    """atomic_write fsyncs file and folder; a failed write raises RecordsError, old file kept."""
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = atomic_write(tmp_path / "out.txt", "first\n")
    assert path.read_text() == "first\n"
    assert synced == [False, True]  # the file, then its folder
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(RecordsError, match=r"cannot write .*out\.txt: full"):
        atomic_write(path, b"second\n")
    assert path.read_text() == "first\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_schema_3_run_loads_with_notes_and_rate_limiter_empty(tmp_path):
    """A schema-3 run (no notes, no rate_limiter) loads from JSONL and Parquet with them null."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = [{k: v for k, v in row(seq=i).items()
             if k not in ("notes", "rate_limiter")} for i in range(3)]
    jsonl_dir, parquet_dir = tmp_path / "jsonl", tmp_path / "parquet"
    jsonl_dir.mkdir()
    parquet_dir.mkdir()
    with RecordWriter(jsonl_dir / RECORDS_JSONL) as writer:
        writer.write_many(rows)
    old = records_table(rows).drop_columns(["notes", "rate_limiter"])
    pq.write_table(old, parquet_dir / "records.parquet")
    for run_dir in (jsonl_dir, parquet_dir):
        table = read_records(run_dir)
        assert table.column("notes").to_pylist() == [None] * 3
        assert table.column("rate_limiter").to_pylist() == [None] * 3
        assert table.column("seq").to_pylist() == [0, 1, 2]

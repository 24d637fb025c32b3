"""Internal: ``loadkit export`` and ``Run.to_csv/to_parquet/to_jsonl``: a run's rows as files.

The records (one row per batch, the columns of :data:`loadkit.records.ARROW_SCHEMA`, in its
order, documented in ``docs/records.md``) and, with ``chunks``, the per-chunk timing rows
(:data:`loadkit.records.CHUNK_FIELDS`) where the run kept them. CSV is for spreadsheets and
tools that read no Parquet: a header row of column names, empty cells for nulls,
``true``/``false`` for booleans, numbers in full precision and never in scientific
notation, epoch seconds for times. Reading is :func:`loadkit.records.read_records`, so a
killed run's ``records.jsonl`` exports up to its torn last line, and the result says so.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadkit import records as rec
from loadkit.errors import ConfigError, RecordsError

__all__ = ["FORMATS", "Exported", "export_run", "schema_markdown"]

FORMATS = ("csv", "parquet", "jsonl")


@dataclass
class Exported:
    """What an export wrote."""

    paths: list[Path] = field(default_factory=list)
    rows: int = 0
    chunk_rows: int = 0
    notes: list[str] = field(default_factory=list)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        text = repr(value)
        return text if "e" not in text else f"{value:.17f}".rstrip("0").rstrip(".")
    return value


def _write(rows: list[dict[str, Any]], columns: list[str], fmt: str, path: Path) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            with open(path, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(columns)
                for row in rows:
                    writer.writerow([_cell(row.get(c)) for c in columns])
        elif fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as out:
                for row in rows:
                    out.write(json.dumps({c: row.get(c) for c in columns}) + "\n")
        else:
            pq.write_table(pa.Table.from_pylist(rows), path)
    except OSError as exc:
        raise RecordsError(f"cannot write {path}: {exc.strerror or exc}") from None


def export_run(run_dir: str | Path, fmt: str = "csv", output: str | Path | None = None, *,
               chunks: bool = False) -> Exported:
    """Write the run's records (and with ``chunks`` its chunk rows) as ``fmt`` files.

    ``output``: a file for the records (the chunk rows go beside it, ``<stem>.chunks.<ext>``)
    or a directory; default ``RUN_DIR/export/records.<ext>``. Raises :class:`ConfigError`
    for an unknown format and :class:`RecordsError` for a directory without records.
    """
    if fmt not in FORMATS:
        raise ConfigError("format", fmt, "one of " + ", ".join(FORMATS))
    run_dir = Path(run_dir).expanduser()
    parquet, jsonl = run_dir / rec.RECORDS_PARQUET, run_dir / rec.RECORDS_JSONL
    if not run_dir.is_dir() or not (parquet.exists() or jsonl.exists()):
        raise RecordsError(f"{run_dir} holds no records ({rec.RECORDS_PARQUET} or "
                           f"{rec.RECORDS_JSONL}); give a run's folder, e.g. results/<run id>")
    result = Exported()
    if not parquet.exists() and rec.torn_tail(jsonl):
        result.notes.append(f"{jsonl}: skipped 1 torn last line (the run was stopped "
                            "mid-write); every line before it is exported")
    table = rec.read_records(run_dir)
    rows = table.to_pylist()
    target = Path(output).expanduser() if output is not None else run_dir / "export"
    if target.suffix == "":
        target = target / f"records.{fmt}"
    _write(rows, list(rec.FIELD_NAMES), fmt, target)
    result.paths.append(target)
    result.rows = len(rows)
    if chunks:
        chunk_file = run_dir / rec.CHUNKS_JSONL
        if not chunk_file.exists():
            result.notes.append("the run kept no chunk timings (--keep-chunk-timings true "
                                "keeps them): no chunk rows exported")
        else:
            chunk_rows = rec.read_jsonl(chunk_file)
            path = target.with_name(f"{target.stem}.chunks.{fmt}")
            _write(chunk_rows, list(rec.CHUNK_FIELDS), fmt, path)
            result.paths.append(path)
            result.chunk_rows = len(chunk_rows)
    return result


def schema_markdown() -> str:
    """``docs/records.md``: every record column, its type, whether it may be empty, and what
    it holds, read from :class:`loadkit.records.BatchRecord` (a test keeps the file equal)."""
    import ast  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    source = inspect.getsource(rec.BatchRecord)
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    statements = body.body
    for k, node in enumerate(statements):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nxt = statements[k + 1] if k + 1 < len(statements) else None
            if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    lines = [
        "# The batch record: one row per batch",
        "",
        "Generated from `loadkit/records.py` (`loadkit.export.schema_markdown()`; a test keeps",
        f"this file equal to it). Record schema version {rec.SCHEMA_VERSION}. The same columns,",
        "in this order, are in `records.jsonl`, `records.parquet` and `loadkit export`'s CSV",
        "(empty cell = null; booleans `true`/`false`; times in epoch seconds; durations in ms).",
        "",
        "| column | type | may be empty | what it holds |",
        "|---|---|---|---|",
    ]
    for f in rec.ARROW_SCHEMA:
        text = docs.get(f.name, "").replace("|", "\\|")
        lines.append(f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {text} |")
    lines += ["", "Chunk rows (`chunks.jsonl`, with `--keep-chunk-timings true`): "
              + ", ".join(f"`{c}`" for c in rec.CHUNK_FIELDS) + ".", ""]
    return "\n".join(lines)

"""Internal: the ``loadkit`` command line (``serve``, ``send``, ``check``, ``report``, ``smoke`` …).

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its flags and
sets ``func`` to ``_cmd_<name>(args) -> int``. Flags are parsed into the same frozen config
objects the Python API uses, by the same ``parse`` functions, so a bad value gives the same
:class:`~loadkit.errors.ConfigError` text everywhere; ``main`` prints it on one line and
exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadkit import __version__, cleanup, wire
from loadkit.errors import ConfigError, LoadkitError
from loadkit.vocabulary import ExitCode

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadkit", description="Load-test Trigger.dev's 2-phase batch API."
    )
    parser.add_argument("--version", action="version", version=f"loadkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_serve(subparsers)
    _add_send(subparsers)
    _add_check(subparsers)
    _add_compare(subparsers)
    _add_report(subparsers)
    _add_smoke(subparsers)
    _add_capacity(subparsers)
    cleanup.add_parser(subparsers)
    _add_export(subparsers)
    _add_options(subparsers)
    _add_locustfile(subparsers)
    _add_notebooks(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"loadkit {args.command}: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except LoadkitError as exc:
        print(f"loadkit {args.command}: error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


# --- serve -------------------------------------------------------------------------------


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the reference batch API server",
        description="Run the reference batch API server (a local copy of Trigger.dev's batch API). "
        "Prints one line with its URL when ready; stops cleanly on SIGINT/SIGTERM.",
    )
    # One flag per ServerConfig knob (loadkit.options.SERVER_KNOBS, the table the embedded
    # server's run options come from too). Values stay strings here: ServerConfig.parse
    # validates them, as it does for Python callers.
    from loadkit.options import SERVER_KNOBS  # noqa: PLC0415

    for knob in SERVER_KNOBS:
        text = knob.help if knob.default is None else f"{knob.help} (default {knob.default})"
        if knob.name == "secret_keys":  # repeatable, one key per flag
            p.add_argument("--secret-key", action="append", dest=knob.name, default=None,
                           metavar=knob.metavar, help=knob.help)
        elif knob.kind == "bool":  # --access-log / --no-access-log, as ServerConfig.to_argv
            p.add_argument(knob.flag, dest=knob.name, action="store_const", const=True,
                           default=None, help=text)
            p.add_argument("--no-" + knob.flag[2:], dest=knob.name, action="store_const",
                           const=False, help="the opposite of " + knob.flag)
        else:
            p.add_argument(knob.flag, dest=knob.name, default=None, metavar=knob.metavar,
                           help=text)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from loadkit.options import SERVER_KNOBS  # noqa: PLC0415
    from loadkit.server import ServerConfig  # noqa: PLC0415 - keep `loadkit --help` fast
    from loadkit.server.serve import run_foreground  # noqa: PLC0415

    given = {k.name: getattr(args, k.name) for k in SERVER_KNOBS
             if getattr(args, k.name) is not None}
    config = ServerConfig.parse(**given)
    return run_foreground(config)


# --- report ------------------------------------------------------------------------------


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write RUN_DIR/report/report.html (summary, thresholds, latency, seals, "
        "dedupe, backpressure, plots embedded; secrets redacted) and the plots as PNG files.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="one run's folder, e.g. results/<run_id>")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the report (default RUN_DIR/report)")
    p.add_argument("--resolution", default=None, metavar="SECONDS",
                   help="time bucket of the plots, e.g. 1 or 500ms (default: about 120 buckets)")
    p.add_argument("--open", action="store_true", help="open the report in your browser")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    import warnings  # noqa: PLC0415

    from loadkit.analysis import parse_resolution  # noqa: PLC0415 - pandas only here
    from loadkit.report import write_report  # noqa: PLC0415

    resolution = None
    if args.resolution is not None:
        try:
            resolution = parse_resolution(args.resolution)
        except ValueError:
            raise ConfigError("--resolution", args.resolution,
                              "a positive duration: seconds (0.5) or '500ms', '1min'") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_report(args.run_dir, args.out, resolution=resolution)
    for w in caught:
        print(f"loadkit report: warning: {w.message}", file=sys.stderr)
    print(path)
    if args.open:
        import webbrowser  # noqa: PLC0415

        if not webbrowser.open(path.resolve().as_uri()):
            print("loadkit report: no browser to open it in; the file is above",
                  file=sys.stderr)
    return 0


# --- check -------------------------------------------------------------------------------


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="evaluate thresholds against a run directory (finished or killed)",
        description="Evaluate threshold expressions against the records of a run directory "
        "(records.parquet, or records.jsonl when the run was killed), print a table and exit "
        "0 when all pass, 3 when any fails, 2 when an expression is malformed or RUN_DIR "
        "does not exist, 1 when its records cannot be read.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. results/<run id>")
    p.add_argument(
        "--threshold",
        action="append",
        default=None,
        metavar="EXPR",
        help="e.g. 'p95(total_ms) < 2000', repeatable (default: the run's own thresholds, "
        "else the CI smoke defaults; with --baseline or --write-baseline: none unless given)",
    )
    _add_baseline_flags(p)
    p.add_argument("--write-baseline", default=None, metavar="FILE",
                   help="write RUN_DIR's baseline.json to FILE (a few kB, to commit) for "
                   "later --baseline FILE")
    p.set_defaults(func=_cmd_check)


def _add_baseline_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default=None, metavar="BASE",
                   help="gate on a known-good run: a baseline.json or a run directory; exit 3 "
                   "when a gated figure is worse beyond its tolerance with 95 %% confidence")
    p.add_argument("--tolerance", action="append", default=None, metavar="FIGURE=VALUE",
                   help="with --baseline: e.g. 'p95(total_ms)=10%%', 'error_rate=0', "
                   "'mb_per_s=5%%' (gates it too) or 'items_per_s=off', repeatable (default: "
                   "p95(total_ms)=10%%, items_per_s=10%%, error_rate=0, seal_rate=0, "
                   "violations=0)")


def _cmd_check(args: argparse.Namespace) -> int:
    from loadkit import records, thresholds  # noqa: PLC0415 - keep `loadkit --help` fast
    from loadkit.errors import ThresholdError  # noqa: PLC0415

    if not Path(args.run_dir).is_dir():
        print(f"loadkit check: error: no run directory at {args.run_dir}; give a "
              "run's folder, e.g. results/<run id>", file=sys.stderr)
        return ExitCode.CONFIG
    regression = args.baseline is not None or args.write_baseline is not None
    if args.tolerance and args.baseline is None:
        print("loadkit check: error: --tolerance needs --baseline BASE", file=sys.stderr)
        return ExitCode.CONFIG
    texts = args.threshold
    if not texts and not regression:
        try:
            texts = records.read_run_meta(args.run_dir).get("options", {}).get("threshold")
        except LoadkitError:
            texts = None
        texts = texts or list(thresholds.DEFAULT_THRESHOLDS)
    try:
        parsed = thresholds.parse_thresholds(thresholds.threshold_texts(texts))
    except ThresholdError as exc:
        print(f"loadkit check: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    baseline = tolerances = None
    if args.baseline is not None:
        loaded = _load_baseline("check", args.baseline, args.tolerance)
        if isinstance(loaded, int):
            return loaded
        baseline, tolerances = loaded
    codes = [ExitCode.OK]
    if args.write_baseline is not None:
        from loadkit.regression import BaselineError, write_baseline  # noqa: PLC0415

        try:
            written = write_baseline(args.run_dir, args.write_baseline)
        except BaselineError as exc:
            print(f"loadkit check: error: {exc}", file=sys.stderr)
            return ExitCode.CONFIG
        size = Path(args.write_baseline).stat().st_size
        print(f"baseline written: {args.write_baseline} ({written.batches:,} batches, "
              f"{written.duration_s:,.1f} s, {size / 1000:,.1f} kB)")
    if parsed:
        table = records.read_records(args.run_dir)
        codes.append(thresholds.check_thresholds(parsed, table, out=sys.stdout).exit_code)
    if baseline is not None:
        from loadkit.regression import gate  # noqa: PLC0415

        result = gate(args.run_dir, baseline, tolerances)
        print(result.table)
        codes.append(result.exit_code)
    return max(codes)


def _load_baseline(command: str, path: str, tolerance: list[str] | None) -> Any:
    """(baseline digest, tolerances), or exit code 2 after one line on stderr."""
    from loadkit.regression import (  # noqa: PLC0415 - pandas only when asked
        BaselineError,
        ToleranceError,
        load_baseline,
        parse_tolerances,
    )

    try:
        return load_baseline(path), parse_tolerances(tolerance)
    except (BaselineError, ToleranceError) as exc:
        print(f"loadkit {command}: error: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG)


# --- compare -----------------------------------------------------------------------------


def _add_compare(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare run B with baseline A: change, 95 %% interval and verdict per figure",
        description="For each key figure (items/s, MB/s, p50/p95/p99 of total, create and "
        "stream ms, stall share, seal and error rates, retries and 429s per batch, "
        "violations): A, B, the change, its 95 %% bootstrap interval and a verdict (worse, "
        "better, same: whole interval beyond the tolerance or not). A and B are run "
        "directories or baseline.json files. Exit 0 (2 on bad input); to fail on a "
        "regression use loadkit check B --baseline A.",
    )
    p.add_argument("baseline", metavar="A", help="the baseline: a run directory or "
                   "baseline.json")
    p.add_argument("candidate", metavar="B", help="the candidate: a run directory or "
                   "baseline.json")
    p.add_argument("--tolerance", action="append", default=None, metavar="FIGURE=VALUE",
                   help="tolerance of a figure's verdict, e.g. 'p95(total_ms)=10%%' "
                   "(default: 10 %% for rates and latencies, 1 pp for stall share, 0 for the "
                   "rest)")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from loadkit.regression import (  # noqa: PLC0415
        BaselineError,
        ToleranceError,
        compare,
        format_table,
        load_baseline,
        parse_tolerances,
        run_digest,
    )

    try:
        tolerances = parse_tolerances(args.tolerance)
        base = load_baseline(args.baseline)
        cand = run_digest(args.candidate)
    except (BaselineError, ToleranceError) as exc:
        print(f"loadkit compare: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if cand.batches == 0:
        print(f"loadkit compare: error: {args.candidate}: the run has no batches",
              file=sys.stderr)
        return ExitCode.CONFIG
    print(format_table(compare(cand, base, tolerances)))
    return ExitCode.OK


# --- smoke -------------------------------------------------------------------------------

SMOKE_THRESHOLDS_FILE = "thresholds.txt"
SMOKE_REGRESSION_FILE = "regression.txt"


def _add_smoke(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "smoke",
        help="the CI smoke load run: short headless run, report, thresholds, exit code",
        description="A short headless locust run (loadkit.run: the packaged locustfile in a "
        "subprocess) against --host, else $TRIGGER_API_URL, else the embedded reference "
        "server; then RUN_DIR/report/report.html and RUN_DIR/thresholds.txt. Prints the "
        "thresholds table and the paths; with --baseline BASE also the regression table "
        "(RUN_DIR/regression.txt). Exit 0 when every threshold passes (and no gated figure "
        "is worse than the baseline beyond its tolerance), 3 when one fails, 2 on a bad "
        "option, baseline or unwritable results directory, 4 when the target rejects "
        "the key (TRIGGER_SECRET_KEY), 1 when locust could not run. Any further run option "
        "goes after '--', e.g. -- --items 50 --payload-bytes 512.",
    )
    p.add_argument("--host", default=None, help="the API's base URL (default $TRIGGER_API_URL, "
                   "else the embedded reference server)")
    p.add_argument("--run-time", default="20s", help="how long to send load (default 20s)")
    p.add_argument("--users", default="2", help="concurrent users (default 2)")
    p.add_argument("--threshold", action="append", default=None, metavar="EXPR",
                   help="pass/fail expression, repeatable (default: the CI defaults, "
                   "loadkit.thresholds.DEFAULT_THRESHOLDS)")
    p.add_argument("--results-dir", default="results", metavar="DIR",
                   help="where the run directory goes (default results)")
    p.add_argument("--run-id", default=None, metavar="ID", help="name of the run directory")
    p.add_argument("--summary", default="full", choices=("none", "short", "full"),
                   help="the loadkit summary block printed at the end (default full; none "
                   "prints the thresholds table instead)")
    _add_baseline_flags(p)
    p.add_argument("run_options", nargs=argparse.REMAINDER, metavar="-- OPTION ...",
                   help="further run options as locust flags, after '--'")
    p.set_defaults(func=_cmd_smoke)


def _cmd_smoke(args: argparse.Namespace) -> int:
    from loadkit import records, thresholds  # noqa: PLC0415
    from loadkit.errors import RecordsError, ThresholdError  # noqa: PLC0415
    from loadkit.runner import run  # noqa: PLC0415

    try:
        users = int(args.users)
    except ValueError:
        raise ConfigError("--users", args.users, "a whole number >= 1") from None
    texts = args.threshold or list(thresholds.DEFAULT_THRESHOLDS)
    try:
        parsed = thresholds.parse_thresholds(thresholds.threshold_texts(texts))
    except ThresholdError as exc:
        print(f"loadkit smoke: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if args.tolerance and args.baseline is None:
        print("loadkit smoke: error: --tolerance needs --baseline BASE", file=sys.stderr)
        return ExitCode.CONFIG
    baseline = tolerances = None
    if args.baseline is not None:  # a bad baseline stops before any load
        loaded = _load_baseline("smoke", args.baseline, args.tolerance)
        if isinstance(loaded, int):
            return loaded
        baseline, tolerances = loaded
    extra = list(args.run_options or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    result = run(users=users, run_time=args.run_time, host=args.host,
                 progress=sys.stderr.isatty(), locust_args=extra,
                 threshold=[str(t) for t in parsed], results_dir=args.results_dir,
                 run_id=args.run_id, summary=args.summary)
    code = result.exit_code
    run_dir = result.path
    try:
        table = records.read_records(run_dir)
    except LoadkitError as exc:
        print(f"loadkit smoke: error: {exc}; locust's log: {result.log}", file=sys.stderr)
        return code or ExitCode.FAILED
    check = thresholds.check_thresholds(parsed, table)
    text = check.table
    gated = None
    if baseline is not None:
        from loadkit.regression import gate  # noqa: PLC0415

        gated = gate(run_dir, baseline, tolerances)

    import warnings  # noqa: PLC0415

    from loadkit.report import write_report  # noqa: PLC0415

    try:
        path = records.atomic_write(run_dir / SMOKE_THRESHOLDS_FILE, text + "\n")
        if gated is not None:
            records.atomic_write(run_dir / SMOKE_REGRESSION_FILE, gated.table + "\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = write_report(run_dir)
    except RecordsError as exc:  # a full or read-only disk: as unwritable results, exit 2
        print(text)
        print(f"loadkit smoke: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    for w in caught:
        print(f"loadkit smoke: warning: {w.message}", file=sys.stderr)
    if args.summary == "none":
        print(text)
    else:
        from loadkit.summary import summary_text, threshold_lines  # noqa: PLC0415

        print(summary_text(table, {**result.meta, "run_id": result.run_id},
                           thresholds=threshold_lines(check.results), mode=args.summary))
    if gated is not None:
        print(gated.table)
    print(f"run directory: {run_dir}")
    print(f"report:        {report}")
    print(f"thresholds:    {path}")
    if gated is not None:
        print(f"regression:    {run_dir / SMOKE_REGRESSION_FILE}")
    print(f"locust log:    {result.log}")
    if code not in (ExitCode.OK, ExitCode.FAILED, ExitCode.THRESHOLDS_FAILED):
        print(f"loadkit smoke: locust exited with code {code}; see {result.log}", file=sys.stderr)
        return int(code) if code else ExitCode.FAILED
    return max(check.exit_code, gated.exit_code if gated is not None else ExitCode.OK)


# --- capacity ----------------------------------------------------------------------------

_CAPACITY_FLAGS = {"start": "capacity_start", "max": "capacity_max",
                   "step_seconds": "step_seconds", "resolution": "resolution",
                   "latency_bound": "latency_bound", "max_seconds": "capacity_max_seconds"}
"""``loadkit capacity``'s own flags → the run options (locust flags) they set."""
_NOT_FOR_CAPACITY = ("arrival_rate", "wait", "threshold")
"""Run options a capacity search sets itself or that do not apply to it."""


def _add_capacity(subparsers: argparse._SubParsersAction) -> None:
    from loadkit.capacity_search.run import DEFAULT_USERS  # noqa: PLC0415
    from loadkit.options import OPTIONS, add_flags  # noqa: PLC0415

    p = subparsers.add_parser(
        "capacity",
        help="find how much the target takes, and what limits it (capacity search)",
        description="Step the offered load (items/s, open model) up from --start by a factor "
        "of 2 while steps hold, then bisect between the last step that held and the first "
        "that failed, to --resolution; one locust run against --host, else $TRIGGER_API_URL, "
        "else the embedded reference server. A step holds when achieved items/s >= 95 %% of "
        "offered, p95 latency from the intended start <= --latency-bound, drops <= 1 %%, "
        "failed batches <= 1 %% and no contract violation. Prints a line per step, then the "
        "knee and what limited it (target_ingest, rate_limit, errors, client, max); the run "
        "directory holds every step's records and capacity.json. Every run option "
        "(--items, --payload-bytes, --server-ingest-rate …) is taken as locust takes it.",
    )
    p.add_argument("--host", default=None, help="the API's base URL (default $TRIGGER_API_URL, "
                   "else the embedded reference server)")
    p.add_argument("--start", default="1000", metavar="ITEMS_PER_S",
                   help="offered items/s of the first step (default 1000)")
    p.add_argument("--max", default=None, metavar="ITEMS_PER_S",
                   help="highest offered items/s to try (default: no limit)")
    p.add_argument("--step-seconds", default="10", metavar="S",
                   help="seconds of load per step (default 10)")
    p.add_argument("--resolution", default="0.05", metavar="F",
                   help="bisect until held and failed rates are this close (default 0.05)")
    p.add_argument("--latency-bound", default="auto", metavar="MS",
                   help="a step fails when its p95 latency from the intended start exceeds "
                   "this (default auto: the larger of 1,000 ms and 5 x the first step's p95)")
    p.add_argument("--max-seconds", default="600", metavar="S",
                   help="the whole search ends after this many seconds (default 600)")
    p.add_argument("--users", default=str(DEFAULT_USERS), metavar="N",
                   help=f"locust users (default {DEFAULT_USERS}; the open model drops starts "
                   "no user is free for)")
    p.add_argument("--json", action="store_true",
                   help="print capacity.json's content as the last line of stdout")
    run_options = p.add_argument_group("run options (as locust takes them)")
    add_flags(run_options, (o for o in OPTIONS if o.group in ("spec", "client", "run", "server")
                            and o.name not in _NOT_FOR_CAPACITY))
    p.set_defaults(func=_cmd_capacity)


def _cmd_capacity(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from loadkit._parse import parse_int  # noqa: PLC0415
    from loadkit.capacity_search.result import answer_text  # noqa: PLC0415
    from loadkit.capacity_search.run import capacity  # noqa: PLC0415
    from loadkit.options import OPTIONS  # noqa: PLC0415

    users = parse_int("users", args.users, 1)
    options = {o.name: getattr(args, o.name) for o in OPTIONS
               if hasattr(args, o.name) and o.group != "capacity"
               and getattr(args, o.name) is not None}
    search = {own: getattr(args, own) for own in _CAPACITY_FLAGS}
    try:
        result = capacity(users=users, host=args.host, progress=sys.stderr.isatty(),
                          out=sys.stdout, **search, **options)
    except LoadkitError as exc:
        if isinstance(exc, ConfigError):
            raise
        print(f"loadkit capacity: error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    mode = getattr(args, "summary", None) or "full"
    if mode != "none":
        print(result.run.summary_text(mode))
    print(f"loadkit capacity: {answer_text(result.answer)}")
    print(f"run directory: {result.path}")
    if args.json:
        print(json.dumps(result.answer, separators=(",", ":")))
    code = result.run.exit_code
    return ExitCode.ABORTED if code == ExitCode.ABORTED else ExitCode.OK


# --- export ------------------------------------------------------------------------------


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a run's records (and chunk rows) as CSV, Parquet or JSON lines",
        description="Export RUN_DIR's records, one row per batch with the columns of "
        "docs/records.md, as csv (for spreadsheets), parquet or jsonl; with --chunks also "
        "the per-chunk timing rows the run kept. Exit 0, or 2 for an unknown format or a "
        "directory without records.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. results/<run id>")
    p.add_argument("--format", default="csv", metavar="csv|parquet|jsonl",
                   help="the file format (default csv)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="a file or folder (default RUN_DIR/export/records.<format>)")
    p.add_argument("--chunks", action="store_true",
                   help="also the chunk rows (--keep-chunk-timings true runs)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from loadkit.errors import RecordsError  # noqa: PLC0415
    from loadkit.export import export_run  # noqa: PLC0415

    try:
        done = export_run(args.run_dir, args.format, args.output, chunks=args.chunks)
    except RecordsError as exc:
        print(f"loadkit export: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    for note in done.notes:
        print(f"loadkit export: {note}", file=sys.stderr)
    print(f"{done.rows:,} records" + (f", {done.chunk_rows:,} chunk rows"
                                      if done.chunk_rows else "") + " written:")
    for path in done.paths:
        print(f"  {path}")
    return ExitCode.OK


# --- send --------------------------------------------------------------------------------


_SEND_GROUPS = {"spec": "batch spec", "client": "client and retries"}
"""Run-option groups ``loadkit send`` takes: the same flags, defaults and parser as locust's."""
_SEND_RUN = ("tag_runs", "run_id")
"""The run options ``loadkit send`` takes too: its items' tags name the run id."""


def _add_send(subparsers: argparse._SubParsersAction) -> None:
    from loadkit.options import OPTIONS, add_flags  # noqa: PLC0415 - keep `loadkit --help` fast

    p = subparsers.add_parser(
        "send",
        help="send one generated batch and print the result as JSON",
        description="Create and stream one generated batch with the loadkit client (retries, "
        "truth checks) and print everything measured as JSON. The target is --url, else "
        "$TRIGGER_API_URL, else a reference server started for the duration; the secret key "
        "comes from $TRIGGER_SECRET_KEY (never a flag: command lines are visible to other "
        "users). The batch spec, client and retry flags are the run options of locust and "
        "loadkit.run() (`loadkit options --group spec|client`), parsed by the same function. "
        "Against a target other than that server, the items carry the tags loadkit and "
        "loadkit:<run id> (--tag-runs false: none; the run id is in the JSON, for `loadkit "
        "cleanup` or the dashboard). "
        "Exit code 0 when the batch sealed (or was cached) without violations, else 1.",
    )
    p.add_argument("--url", default=None, help="the API's base URL (default $TRIGGER_API_URL, "
                   "else a local reference server)")
    p.add_argument("--seq", default="0", metavar="N",
                   help="which batch of the spec to send (default 0)")
    for group, title in _SEND_GROUPS.items():
        add_flags(p.add_argument_group(title), (o for o in OPTIONS if o.group == group))
    add_flags(p.add_argument_group("tags"), (o for o in OPTIONS if o.name in _SEND_RUN))
    p.set_defaults(func=_cmd_send)


def _cmd_send(args: argparse.Namespace) -> int:
    import contextlib  # noqa: PLC0415
    import os  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    from loadkit._parse import parse_int  # noqa: PLC0415
    from loadkit.options import OPTIONS, new_run_id, parse_options  # noqa: PLC0415
    from loadkit.server import ReferenceServer  # noqa: PLC0415

    opts = parse_options(**{o.name: getattr(args, o.name) for o in OPTIONS
                            if o.group in _SEND_GROUPS or o.name in _SEND_RUN})
    seq = parse_int("seq", args.seq, 0)
    client_options = opts.client
    url = args.url or os.environ.get("TRIGGER_API_URL")
    run_id = opts.run.run_id or new_run_id()
    spec = opts.spec_for(run_id, embedded=not url)
    batch = spec.batch(seq)
    key = None
    with contextlib.ExitStack() as stack:
        if not url:
            server = stack.enter_context(ReferenceServer(
                max_items=spec.max_items, item_max_bytes=spec.item_max_bytes,
                secret_keys=(wire.DEFAULT_LOCAL_SECRET_KEY,)))
            url, key = server.url, wire.DEFAULT_LOCAL_SECRET_KEY
            print(f"loadkit send: no --url or TRIGGER_API_URL; started a reference server at "
                  f"{url}", file=sys.stderr)
        client = stack.enter_context(client_options.make_client(url, key, spec.chunk_bytes))
        result = client.send(batch)
    out = {"target": url, "run_id": run_id,
           "tags": list(spec.options.run_tags) if spec.options.run_tags else [],
           "spec": spec.as_settings(),
           "retry": client_options.retry.as_settings(),
           **result.as_dict(chunk_timings=client_options.keep_chunk_timings)}
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    return ExitCode.OK if result.ok else ExitCode.FAILED


# -- options ------------------------------------------------------------------------------


def _add_options(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "options",
        help="list every run option (locust flag, config key, notebook keyword)",
        description="Every option of `locust -f \"$(loadkit locustfile)\"` and `loadkit.run()`: "
        "the flag, its default and what it does. (locust's own --help does not load the "
        "locustfile, so it cannot list them.) Each option is also a locust.conf / "
        "[tool.locust] key without the dashes and a LOCUST_<NAME> environment variable.",
    )
    p.add_argument("--group", choices=("spec", "client", "run", "capacity", "server"),
                   help="only the options of one group")
    p.set_defaults(func=_cmd_options)


def _cmd_options(args: argparse.Namespace) -> int:
    from loadkit.options import OPTIONS  # noqa: PLC0415 - keep `loadkit --help` fast

    titles = {"spec": "batches (generator)", "client": "client and retries",
              "run": "run", "capacity": "capacity search (loadkit capacity)",
              "server": "embedded reference server (no --host)"}
    for group, title in titles.items():
        if args.group not in (None, group):
            continue
        print(f"{title}:")
        for opt in (o for o in OPTIONS if o.group == group):
            default = "" if opt.default in (None, "") else f" (default {opt.default})"
            print(f"  {opt.flag}{default}")
            print(f"      {opt.help}")
        print()
    return 0


# -- locustfile, notebooks: what ships in the package -------------------------------------


def _add_locustfile(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "locustfile",
        help="print the path of the locustfile that ships in the package",
        description='Print the path of loadkit\'s locustfile, installed with the package: '
        'locust -f "$(loadkit locustfile)" --headless -u 4 -r 4 -t 20s works from any folder.',
    )
    p.set_defaults(func=_cmd_locustfile)


def _cmd_locustfile(args: argparse.Namespace) -> int:
    from loadkit.locustfiles import STREAM  # noqa: PLC0415

    print(STREAM)
    return ExitCode.OK


def _add_notebooks(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "notebooks",
        help="copy the notebooks (quickstart, analyze_run, capacity) into a folder",
        description="Copy the notebooks that ship in the package (quickstart.ipynb, "
        "analyze_run.ipynb, capacity.ipynb) into DIR, made if missing. A file already there "
        "is kept as it is, never overwritten. Exit 2 when DIR cannot be written to.",
    )
    p.add_argument("dir", metavar="DIR", help="the folder to copy them into")
    p.set_defaults(func=_cmd_notebooks)


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from loadkit import notebooks  # noqa: PLC0415

    try:
        done = notebooks.copy_to(args.dir)
    except OSError as exc:
        print(f"loadkit notebooks: error: cannot write to {args.dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return ExitCode.CONFIG
    for path, copied in done:
        print(f"{'copied' if copied else 'kept  '} {path}"
              + ("" if copied else "  (already there: not overwritten)"))
    return ExitCode.OK

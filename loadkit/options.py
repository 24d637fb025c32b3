"""Run options: the one parser of everything a load run is configured with.

A run is configured by four groups of settings, each parsed into a small frozen value object:

==========  ===============================================================================
group       settings
==========  ===============================================================================
``spec``    what batches look like: every :data:`~loadkit.generators.SPEC_FIELDS` setting
            (``items``, ``payload_bytes``, ``faults``, ``seed``, ``chunk_bytes`` …) →
            :class:`~loadkit.generators.BatchSpec`
``client``  how they are sent: ``client`` (the mode: ``loadkit`` or ``sdk``), ``timeout``,
            every retry setting of :data:`~loadkit.retry.RETRY_FIELDS` prefixed ``retry_``
            (``retry_attempts``, ``retry_resend`` …), ``send_buffer_bytes``,
            ``keep_chunk_timings``, ``verify``, ``verify_timeout``
            → :class:`~loadkit.client.ClientConfig`
``run``     how the run goes: ``results_dir``, ``threshold``, ``arrival_rate``, ``wait``,
            ``drop_after``, ``run_id``, ``baseline`` → :class:`RunSettings`
``server``  knobs of the embedded reference server (used only when no target is given):
            ``server_enqueue_delay``, ``server_error_rate`` … →
            :class:`~loadkit.server.ServerConfig`
==========  ===============================================================================

:data:`OPTIONS` is the table of every setting (name, default, help, type, group). The locust
adapter turns each row into a ``--flag`` (``payload_bytes`` → ``--payload-bytes``), the CLI
does the same, and notebooks pass the names as keywords: all three call
:func:`parse_options`, so a bad value gives the same :class:`~loadkit.errors.ConfigError`
(or :class:`~loadkit.errors.ThresholdError`) text everywhere.

The secret key is deliberately **not** an option: it is read from ``TRIGGER_SECRET_KEY``
where it is needed and never stored in an options object, so it cannot leak into
``run.json``.

This module never imports locust.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadkit import wire
from loadkit._parse import parse_bool, parse_float
from loadkit.capacity_search.settings import SearchSettings
from loadkit.client.config import DEFAULT_TIMEOUT, DEFAULT_VERIFY_TIMEOUT, ClientConfig
from loadkit.client.retry import RETRY_FIELDS, RetryPolicy
from loadkit.errors import ConfigError
from loadkit.generators import SPEC_FIELDS, BatchSpec
from loadkit.server.config import ServerConfig
from loadkit.thresholds import Threshold, parse_thresholds, threshold_texts

__all__ = [
    "EMBEDDED_KNOBS",
    "OPTIONS",
    "OPTION_NAMES",
    "SERVER_KNOBS",
    "ClientOptions",
    "OptionDef",
    "RunOptions",
    "RunSettings",
    "add_flags",
    "new_run_id",
    "parse_options",
]


@dataclass(frozen=True, slots=True)
class OptionDef:
    """One run setting: its keyword name, default (as a string, or None), help and type.

    ``kind`` is ``str``, ``int``, ``float``, ``bool`` or ``list`` (repeatable);
    ``group`` is ``spec``, ``client``, ``run`` or ``server``.
    """

    name: str
    default: str | None
    help: str
    kind: str = "str"
    group: str = "run"
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The command-line flag: ``payload_bytes`` → ``--payload-bytes``."""
        return "--" + self.name.replace("_", "-")


def add_flags(parser: Any, options: Iterable[OptionDef], **extra: Any) -> None:
    """Add one ``--flag VALUE`` per option to an argparse parser or group (locust's parser
    too, whose own keywords come in ``extra``): values stay strings (or lists, for ``list``
    options) for :func:`parse_options`."""
    for opt in options:
        kwargs: dict[str, Any] = {**extra,
            "dest": opt.name,
            "help": f"{opt.help} (default: {opt.default})" if opt.default not in (None, "")
            else opt.help,
            "metavar": opt.metavar or opt.kind.upper() if opt.kind != "list" else "EXPR",
        }
        if opt.kind == "list":
            kwargs.update(action="append", default=None)
        else:
            kwargs.update(default=opt.default)
        parser.add_argument(opt.flag, **kwargs)


_SPEC_KINDS = {"idempotency": "bool", "seed": "int", "max_items": "int",
               "item_max_bytes": "int", "chunk_bytes": "int", "options_rate": "float"}

def _retry_option(name: str) -> str:
    return name if name.startswith("retry_") else "retry_" + name


_CLIENT_DEFS = (
    OptionDef("client", "loadkit", "how the client streams: loadkit (coalesced ~64 KiB chunks) "
              "or sdk (as the official SDK: one line per write, the whole stream re-sent on "
              "retry, the SDK's backoff, x-ratelimit-reset read as epoch ms)", "str", "client",
              "MODE"),
    OptionDef("timeout", f"{DEFAULT_TIMEOUT:g}", "seconds the client waits for any one "
              "request's answer (longer than the server's own 300 s request timeout)",
              "float", "client", "SECONDS"),
    *(OptionDef(_retry_option(f.name), f.default, "retry: " + f.help,
                "int" if f.name.endswith("attempts") else "str", "client")
      for f in RETRY_FIELDS),
    OptionDef("send_buffer_bytes", None, "SO_SNDBUF for the client's sockets (default: the "
              "system's)", "int", "client", "BYTES"),
    OptionDef("keep_chunk_timings", "false", "keep every chunk write's timing on the result "
              "(memory grows with batch size)", "bool", "client"),
    OptionDef("verify", "false", "after a batch seals, retrieve it and check its run count",
              "bool", "client"),
    OptionDef("verify_timeout", f"{DEFAULT_VERIFY_TIMEOUT:g}", "verify: seconds to wait for "
              "the target's engine to make the runs (not checked in time: verified empty, not "
              "a violation)", "float", "client", "SECONDS"),
)
_RETRY_OPTIONS = {_retry_option(f.name): f.name for f in RETRY_FIELDS}

_RUN_DEFS = (
    OptionDef("results_dir", "results", "directory that gets one folder per run "
              "(run.json, records.jsonl, records.parquet)", "str", "run", "DIR"),
    OptionDef("threshold", None, "pass/fail expression over the records, repeatable, e.g. "
              "'p95(total_ms) < 2000', 'seal_rate >= 0.999', 'error_rate < 0.01'; any failure "
              "sets exit code 3", "list", "run", "EXPR"),
    OptionDef("arrival_rate", "0", "open model: batch starts per second across the whole run "
              "(split over workers) on a fixed timetable; 0 = closed model (users send back "
              "to back)", "float", "run", "BATCHES_PER_S"),
    OptionDef("wait", "0", "closed model: seconds a user waits between batches: S or LO:HI "
              "(uniform)", "str", "run", "SECONDS"),
    OptionDef("drop_after", "1", "open model: a scheduled start not served within this many "
              "seconds is recorded as outcome 'dropped'", "float", "run", "SECONDS"),
    OptionDef("run_id", None, "name of the run's results folder (default: UTC time + random "
              "suffix)", "str", "run", "ID"),
    OptionDef("tag_runs", "true", "against a target other than the embedded server, every "
              "item carries the tags loadkit and loadkit:<run id> (its own tags after them, "
              "at most 10), so that loadkit cleanup or the dashboard can find its runs",
              "bool", "run", "BOOL"),
    OptionDef("summary", "full", "the loadkit summary block printed at the end of the run: "
              "full, short or none", "str", "run", "none|short|full"),
    OptionDef("baseline", None, "gate the run against a known-good one at its end: a "
              "baseline.json (loadkit check RUN --write-baseline FILE) or a run directory; a "
              "gated figure worse beyond its tolerance sets exit code 3", "str", "run", "BASE"),
)

_CAPACITY_DEFS = (
    OptionDef("capacity", "false", "run a capacity search instead of a fixed load: offered "
              "items/s stepped up on the open model's timetable until a step fails, then "
              "bisected; the answer goes to capacity.json (loadkit capacity)", "bool",
              "capacity"),
    OptionDef("capacity_start", "1000", "capacity: the first step's offered items/s",
              "float", "capacity", "ITEMS_PER_S"),
    OptionDef("capacity_max", None, "capacity: the highest offered items/s to try (default: "
              "no limit)", "float", "capacity", "ITEMS_PER_S"),
    OptionDef("step_seconds", "10", "capacity: seconds of load per step", "float",
              "capacity", "SECONDS"),
    OptionDef("resolution", "0.05", "capacity: stop bisecting when the rates that held and "
              "failed are this close (0.05 = 5 %)", "float", "capacity", "FRACTION"),
    OptionDef("latency_bound", "auto", "capacity: a step fails when its p95 latency from the "
              "intended start exceeds this many ms (auto: the larger of 1,000 ms and 5 × the "
              "first step's p95)", "str", "capacity", "MS"),
    OptionDef("capacity_max_seconds", "600", "capacity: the whole search ends after this "
              "many seconds", "float", "capacity", "SECONDS"),
)


def _default_text(value: Any) -> str | None:
    if value is None or value is dataclasses.MISSING:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


_SERVER_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerConfig)}


def _knob(name: str, kind: str, text: str, metavar: str | None = None) -> OptionDef:
    return OptionDef(name, _default_text(_SERVER_FIELD_DEFAULTS[name]), text, kind, "server",
                     metavar)


SERVER_KNOBS: tuple[OptionDef, ...] = (
    _knob("host", "str", "address to bind"),
    _knob("port", "int", "port to bind; 0 picks a free one", "PORT"),
    _knob("secret_keys", "list", "accepted API key, repeatable; each key is its own "
          "environment (default: $TRIGGER_SECRET_KEY, comma-separated keys allowed, else "
          f"{wire.DEFAULT_LOCAL_SECRET_KEY})", "KEY"),
    _knob("max_items", "int", "largest runCount", "N"),
    _knob("item_max_bytes", "int", "per-line limit in bytes", "BYTES"),
    _knob("ingest_concurrency", "int", "items of one stream enqueued at once", "N"),
    _knob("enqueue_delay", "float", "seconds each item's enqueue takes (backpressure)",
          "SECONDS"),
    _knob("ingest_rate", "float", "server-wide cap on items enqueued per second (0 = uncapped)",
          "ITEMS_PER_S"),
    _knob("run_rate", "float", "runs made per second per environment (0 = as fast as "
          "enqueued)", "RUNS_PER_S"),
    _knob("rate_limit", "str", "batch token bucket per environment, e.g. 1200:100/10s, or off "
          "(default off)", "MAX:REFILL/INTERVAL"),
    _knob("api_rate_limit", "str", "general API limiter per environment, e.g. 750:250/10s, "
          "or off (default off): 429 application/problem+json, x-ratelimit-reset in ms; a new "
          "batch's first 10 item requests bypass it", "MAX:REFILL/INTERVAL"),
    _knob("rate_limit_reset_unit", "str", "unit of x-ratelimit-reset: s (epoch seconds, as "
          "the real server) or ms", "s|ms"),
    _knob("error_rate", "float", "fraction of streams answered with an injected error",
          "FRACTION"),
    _knob("error_status", "int", "HTTP status of the injected errors, 500-599", "STATUS"),
    _knob("error_should_retry", "float", "fraction of injected errors sent with "
          "x-should-retry: true", "FRACTION"),
    _knob("drop_rate", "float", "fraction of streams whose connection is dropped part-way",
          "FRACTION"),
    _knob("request_timeout", "float", "answer 408 after this many seconds (0 = never)",
          "SECONDS"),
    _knob("create_delay", "float", "seconds added to every create answer", "SECONDS"),
    _knob("stream_delay", "float", "seconds a stream waits before its body is read",
          "SECONDS"),
    _knob("answer_delay", "float", "seconds a stream waits after reading its body, before "
          "answering", "SECONDS"),
    _knob("seal_timeout", "float", "seconds before an unsealed batch is aborted", "SECONDS"),
    _knob("engine_tick", "float", "run engine step interval in seconds", "SECONDS"),
    _knob("recv_buffer_bytes", "int", "SO_RCVBUF of the server's connections (0 = the "
          "system's, grown by the kernel as a connection goes)", "BYTES"),
    _knob("close_after_error", "bool", "after a stream's error answer close that connection, "
          "as the real server does when it answers before reading the whole body (the "
          "client's next request on it meets a reset)", "BOOL"),
    _knob("seed", "int", "seed for the server's fault decisions (default off)", "N"),
    _knob("access_log", "bool", "log every request"),
)
"""Every :class:`~loadkit.server.ServerConfig` knob: name, default (taken from the dataclass),
help, kind. ``loadkit serve`` makes one flag of each; the embedded-server run options are the
:data:`EMBEDDED_KNOBS` among them, prefixed ``server_``."""

EMBEDDED_KNOBS = tuple(k for k in SERVER_KNOBS if k.name not in (
    "port", "secret_keys", "max_items", "item_max_bytes", "access_log"))
"""Knobs an embedded run exposes: port and key are chosen by the run itself, and
max_items / item_max_bytes come from the spec settings of the same name (one number for
both sides). ``host`` is ``--server-bind``: the address the embedded server listens on
(127.0.0.1 unless given), which workers on other hosts must reach."""

_EMBEDDED_NAMES = {"host": "server_bind"}
"""Run-option names of embedded knobs that are not ``server_`` + the knob's name."""
_EMBEDDED_HELP = {"host": "address the embedded server listens on and hands to the workers "
                  "(default 127.0.0.1: this machine only); give one that workers on other "
                  "hosts reach, never a public one"}


def _embedded_name(knob: str) -> str:
    return _EMBEDDED_NAMES.get(knob, "server_" + knob)


_SERVER_DEFS = tuple(
    dataclasses.replace(k, name=_embedded_name(k.name),
                        help="embedded reference server (no --host): "
                        + _EMBEDDED_HELP.get(k.name, k.help),
                        metavar="ADDRESS" if k.name == "host" else k.metavar)
    for k in EMBEDDED_KNOBS
)
_KNOB_OF = {_embedded_name(k.name): k.name for k in EMBEDDED_KNOBS}
"""Run-option name → the server knob it sets."""

OPTIONS: tuple[OptionDef, ...] = (
    *(OptionDef(f.name, f.default, f.help, _SPEC_KINDS.get(f.name, "str"), "spec")
      for f in SPEC_FIELDS),
    *_CLIENT_DEFS,
    *_RUN_DEFS,
    *_CAPACITY_DEFS,
    *_SERVER_DEFS,
)
"""Every run setting, in the order flags are listed."""

OPTION_NAMES: frozenset[str] = frozenset(o.name for o in OPTIONS)
_BY_NAME = {o.name: o for o in OPTIONS}


# --- small parsers -----------------------------------------------------------------------


def _wait(value: object) -> tuple[float, float]:
    text = str(value).strip()
    lo_text, colon, hi_text = text.partition(":")
    try:
        lo = float(lo_text)
        hi = float(hi_text) if colon else lo
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise ConfigError("wait", value, "seconds S or a range LO:HI with 0 <= LO <= HI")
    return lo, hi


# --- value objects -----------------------------------------------------------------------


ClientOptions = ClientConfig
"""The ``client`` group of the run options is :class:`~loadkit.client.ClientConfig` (the old
name stays for code that used it)."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How the run goes: where records go, thresholds, closed or open model."""

    results_dir: Path = Path("results")
    thresholds: tuple[Threshold, ...] = ()
    arrival_rate: float = 0.0
    """Batches per second across the whole run; 0 = closed model."""
    wait: tuple[float, float] = (0.0, 0.0)
    drop_after: float = 1.0
    run_id: str | None = None
    baseline: Path | None = None
    """A baseline.json or run directory to gate the run against at its end (None: no gate)."""
    summary: str = "full"
    """The end-of-run summary block: ``full``, ``short`` or ``none``."""
    tag_runs: bool = True
    """Against a real target, tag every item ``loadkit`` and ``loadkit:<run id>``."""
    capacity: bool = False
    """A capacity search sets the open model's rate step by step (``arrival_rate`` is 0)."""

    @property
    def open_model(self) -> bool:
        return self.arrival_rate > 0 or self.capacity


@dataclass(frozen=True)
class RunOptions:
    """Every setting of a run, parsed. Build with :func:`parse_options`."""

    spec: BatchSpec
    client: ClientOptions
    run: RunSettings
    server: dict[str, Any]
    """Embedded-server knobs given (parsed lazily into a ServerConfig by :meth:`server_config`)."""
    settings: Mapping[str, Any]
    """Every option as given or defaulted, in its text form (what run.json records)."""
    capacity: SearchSettings | None = None
    """The capacity search's settings when ``capacity`` is on, else None."""

    def server_config(self, secret_key: str) -> Any:
        """The embedded reference server's :class:`~loadkit.server.ServerConfig`."""
        from loadkit.server.config import ServerConfig  # noqa: PLC0415

        knobs = {"host": "127.0.0.1", **self.server}
        return ServerConfig.parse(
            port=0,
            secret_keys=(secret_key,),
            max_items=self.spec.max_items,
            item_max_bytes=self.spec.item_max_bytes,
            **knobs,
        )

    def spec_for(self, run_id: str, embedded: bool) -> BatchSpec:
        """The batches' spec for run ``run_id``: with the run's tags on every item
        (:func:`loadkit.wire.run_tags`) when ``tag_runs`` is on and the target is not the
        embedded reference server."""
        if not self.run.tag_runs or embedded:
            return self.spec
        options = dataclasses.replace(self.spec.options, run_tags=wire.run_tags(run_id))
        return dataclasses.replace(self.spec, options=options)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings for run.json (there is no key among them to redact)."""
        out = dict(self.settings)
        out["threshold"] = [str(t) for t in self.run.thresholds]
        return out


def parse_options(**settings: object) -> RunOptions:
    """Parse run settings (strings as flags give them, or Python values) into :class:`RunOptions`.

    Names are those of :data:`OPTIONS`; ``None`` means "use the default". Unknown names and
    bad values raise :class:`~loadkit.errors.ConfigError`; a malformed threshold raises
    :class:`~loadkit.errors.ThresholdError`.
    """
    unknown = sorted(set(settings) - OPTION_NAMES)
    if unknown:
        raise ConfigError(unknown[0], settings[unknown[0]],
                          "a run setting: " + ", ".join(o.name for o in OPTIONS))
    raw: dict[str, Any] = {o.name: o.default for o in OPTIONS}
    raw.update({k: v for k, v in settings.items() if v is not None})

    spec = BatchSpec.parse(**{f.name: raw[f.name] for f in SPEC_FIELDS})

    try:
        retry = RetryPolicy.parse(**{field: raw[opt] for opt, field in _RETRY_OPTIONS.items()})
    except ConfigError as exc:  # name the option as the user wrote it
        raise ConfigError(_retry_option(exc.field), exc.value, exc.expected) from None
    client = ClientConfig.parse(
        mode=raw["client"], timeout=raw["timeout"], retry=retry,
        send_buffer_bytes=raw["send_buffer_bytes"],
        keep_chunk_timings=raw["keep_chunk_timings"], verify=raw["verify"],
        verify_timeout=raw["verify_timeout"],
    )

    results_dir = str(raw["results_dir"]).strip()
    if not results_dir:
        raise ConfigError("results_dir", raw["results_dir"], "a directory path")
    run_id = raw["run_id"]
    if run_id is not None:
        run_id = str(run_id).strip()
        if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
            raise ConfigError("run_id", raw["run_id"], "a folder name (no slashes)")
    baseline = None
    if raw["baseline"] is not None and str(raw["baseline"]).strip():
        baseline = Path(str(raw["baseline"]).strip()).expanduser()
        if not baseline.exists():
            raise ConfigError("baseline", raw["baseline"], "an existing baseline.json or run "
                              "directory (loadkit check RUN --write-baseline FILE)")
    summary = str(raw["summary"]).strip().lower()
    if summary not in ("none", "short", "full"):
        raise ConfigError("summary", raw["summary"], "none, short or full")
    run = RunSettings(
        results_dir=Path(results_dir),
        thresholds=parse_thresholds(threshold_texts(raw["threshold"])),
        arrival_rate=parse_float("arrival_rate", raw["arrival_rate"], 0.0),
        wait=_wait(raw["wait"]),
        drop_after=parse_float("drop_after", raw["drop_after"], 0.0, above=True),
        run_id=run_id or None,
        baseline=baseline,
        capacity=parse_bool("capacity", raw["capacity"], empty=False),
        summary=summary,
        tag_runs=parse_bool("tag_runs", raw["tag_runs"], empty=False),
    )

    server = {_KNOB_OF[o.name]: settings[o.name] for o in _SERVER_DEFS
              if settings.get(o.name) is not None}
    if str(server.get("host", "")).strip() in ("0.0.0.0", "::", "[::]", "*"):
        # its URL is handed to the workers, which cannot connect to "any address"
        raise ConfigError("server_bind", server["host"],
                          "one address of this host that the workers reach, not 0.0.0.0")
    if server:  # validate now, at start-up, with the same parser the server uses
        from loadkit.server.config import ServerConfig  # noqa: PLC0415

        try:
            ServerConfig.parse(**server)
        except ConfigError as exc:
            raise ConfigError(_embedded_name(exc.field), exc.value, exc.expected) from None

    text: dict[str, Any] = {**spec.as_settings()}
    text.update(client.as_settings())
    text.update({opt: str(raw[opt]) for opt in _RETRY_OPTIONS})
    if client.mode == "sdk":
        text["retry_rate_limit_reset"] = client.retry.rate_limit_reset
    text.update(
        results_dir=str(run.results_dir), arrival_rate=run.arrival_rate,
        wait=str(raw["wait"]), drop_after=run.drop_after, run_id=run.run_id,
        baseline=str(run.baseline) if run.baseline is not None else None,
        summary=run.summary, tag_runs=run.tag_runs,
    )
    text.update({_embedded_name(k): str(v) for k, v in server.items()})
    capacity = None
    if run.capacity:
        if run.arrival_rate > 0:
            raise ConfigError("arrival_rate", raw["arrival_rate"], "0 (unset) in a capacity "
                              "search: the search sets the offered rate step by step")
        capacity = SearchSettings.parse(
            start=raw["capacity_start"], max=raw["capacity_max"],
            step_seconds=raw["step_seconds"], resolution=raw["resolution"],
            latency_bound=raw["latency_bound"], max_seconds=raw["capacity_max_seconds"])
        text.update(capacity=True, **{f"capacity_{k}" if k in ("start", "max", "max_seconds")
                                      else k: v for k, v in capacity.as_dict().items()
                                      if k != "growth"},
                    latency_bound=str(raw["latency_bound"]))
    return RunOptions(spec=spec, client=client, run=run, server=server, settings=text,
                      capacity=capacity)


def new_run_id() -> str:
    """A sortable, unique run id: ``20250101T120000Z-1a2b3c``."""
    import time  # noqa: PLC0415

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]

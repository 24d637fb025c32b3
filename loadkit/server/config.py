"""Internal: the reference server's knobs: one frozen value object, from flags or keywords alike.

``ServerConfig.parse(**kwargs)`` takes Python values or the strings a command line gives
(``"0.25"``, ``"1200:100/10s"``) and raises :class:`loadkit.errors.ConfigError` naming the
field, the value and the accepted form. ``to_argv()`` turns a config back into
``loadkit serve`` flags (secret keys excepted: they travel in the environment).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any

from loadkit import wire
from loadkit._parse import parse_bool
from loadkit.errors import ConfigError

__all__ = ["RateLimit", "ServerConfig"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_LIMIT_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The batch token bucket: at most ``max_tokens``; ``refill`` more every ``interval_s``."""

    max_tokens: int
    refill: int
    interval_s: float

    @classmethod
    def parse(cls, text: str, field: str = "rate_limit") -> RateLimit:
        """Parse the real server's form ``MAX:REFILL/INTERVAL`` (``1200:100/10s``, ms/s/m/h)."""
        m = _RATE_LIMIT_RE.match(text)
        expected = (
            "MAX:REFILL/INTERVAL such as '1200:100/10s' (interval unit ms, s, m or h), or 'off'"
        )
        if not m:
            raise ConfigError(field, text, expected)
        max_tokens, refill = int(m.group(1)), int(m.group(2))
        interval = float(m.group(3)) * _UNITS[m.group(4) or "s"]
        if max_tokens < 1 or refill < 1 or interval <= 0:
            raise ConfigError(field, text, expected + " with every number above 0")
        return cls(max_tokens, refill, interval)

    def __str__(self) -> str:
        return f"{self.max_tokens}:{self.refill}/{self.interval_s:g}s"


PARENT_PID_ENV = "LOADKIT_SERVER_PARENT_PID"
"""Environment variable ``ReferenceServer`` sets for its ``loadkit serve`` subprocess: the pid
of the process whose death makes the server shut down (see ``loadkit.server.serve``)."""


def _default_secret_keys() -> tuple[str, ...]:
    """``TRIGGER_SECRET_KEY`` (several keys may be separated by commas), else the local dev key."""
    env = os.environ.get("TRIGGER_SECRET_KEY", "")
    keys = tuple(k.strip() for k in env.split(",") if k.strip())
    return keys or (wire.DEFAULT_LOCAL_SECRET_KEY,)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Every knob of the reference server; defaults match Trigger.dev's server where it has one.

    Rates and fractions of 0 switch the matching behaviour off.
    """

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    secret_keys: tuple[str, ...] = dataclasses.field(
        default_factory=_default_secret_keys, repr=False
    )
    """Accepted ``Authorization: Bearer`` keys; each key is its own environment."""
    max_items: int = wire.MAX_RUN_COUNT
    item_max_bytes: int = wire.ITEM_MAX_BYTES
    ingest_concurrency: int = 10
    """Items of one stream enqueued at the same time (matters with ``enqueue_delay``)."""
    enqueue_delay: float = 0.0
    """Seconds each item's enqueue takes; one stream then ingests ≤ concurrency/delay items/s."""
    ingest_rate: float = 0.0
    """Server-wide cap on items enqueued per second (0 = uncapped)."""
    run_rate: float = 0.0
    """Runs the simulated engine creates per second per environment (0 = as fast as enqueued)."""
    rate_limit: RateLimit | None = None
    """Batch token bucket per environment; None = off (the real default is 1200:100/10s)."""
    api_rate_limit: RateLimit | None = None
    """The general API limiter per environment (authenticated requests; a new batch's first
    item requests bypass it); None = off (the real default is 750:250/10s)."""
    rate_limit_reset_unit: str = "s"
    """Unit of ``x-ratelimit-reset``: ``s`` (epoch seconds, as the real batch limiter) or ``ms``."""
    error_rate: float = 0.0
    """Fraction of stream requests answered ``error_status`` (body read and discarded, nothing
    enqueued)."""
    error_status: int = 500
    """Status of the injected errors: 500 (the real server's own error answer) or another 5xx,
    e.g. 503 as a proxy or load balancer in front of it answers."""
    error_should_retry: float = 1.0
    """Fraction of injected errors that carry ``x-should-retry: true`` (the rest say false)."""
    drop_rate: float = 0.0
    """Fraction of stream requests whose connection is dropped part-way through the body."""
    request_timeout: float = 300.0
    """Seconds a request may take before it is answered 408 (0 = never; Node's default is 300)."""
    create_delay: float = 0.0
    """Seconds added before every create answer."""
    stream_delay: float = 0.0
    """Seconds a stream request waits before its body is read (as a route that first looks
    its batch up does); meanwhile the body fills the buffers and then its writer waits."""
    answer_delay: float = 0.0
    """Seconds between reading a stream's whole body and answering it (the route's work at
    the end); its writer has nothing left to write, so this is response time, not stall."""
    seal_timeout: float = 1800.0
    """Seconds an unsealed batch lives before it is reaped as ABORTED."""
    engine_tick: float = 0.05
    """Seconds between run-engine steps."""
    recv_buffer_bytes: int = 0
    """SO_RCVBUF of the server's connections (0 = the system's, which Linux grows as a
    connection goes). A fixed size fixes the bytes a slow server holds unread, so the share
    of a stream its client must wait can be derived (the backpressure truth tests)."""
    close_after_error: bool = False
    """After a stream's error answer, close that connection as the real server's HTTP adapter
    does when it answers before reading the whole body: the client's next request on it meets
    a reset (off: the connection stays usable)."""
    seed: int | None = None
    """Seeds fault decisions so that a sequential client sees the same faults every run."""
    access_log: bool = False

    def __post_init__(self) -> None:
        _check(self)

    # -- parsing --------------------------------------------------------------------------

    @classmethod
    def parse(cls, **kwargs: Any) -> ServerConfig:
        """Build a config from keywords whose values may be strings (as flags give them)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in kwargs.items():
            if name not in fields:
                raise ConfigError(name, raw, "one of " + ", ".join(sorted(fields)))
            if raw is None and name not in ("rate_limit", "api_rate_limit", "seed"):
                continue
            values[name] = _convert(name, raw)
        return cls(**values)

    def replace(self, **kwargs: Any) -> ServerConfig:
        """A copy with some fields parsed and replaced."""
        merged = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        merged.update(kwargs)
        return ServerConfig.parse(**merged)

    def to_argv(self) -> list[str]:
        """The ``loadkit serve`` flags for this config, except secret keys (pass those by env)."""
        argv: list[str] = []
        default = ServerConfig(secret_keys=self.secret_keys)
        for f in dataclasses.fields(self):
            if f.name == "secret_keys":
                continue
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + flag[2:])
            elif value is None:
                argv += [flag, "off"]
            else:
                argv += [flag, str(value)]
        return argv

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secret keys replaced by their count (safe to log)."""
        out = dataclasses.asdict(self)
        out["secret_keys"] = f"<{len(self.secret_keys)} key(s)>"
        out["rate_limit"] = str(self.rate_limit) if self.rate_limit else None
        out["api_rate_limit"] = str(self.api_rate_limit) if self.api_rate_limit else None
        return out


_INT_FIELDS = {"port", "max_items", "item_max_bytes", "ingest_concurrency", "error_status",
               "recv_buffer_bytes"}
_FLOAT_FIELDS = {
    "enqueue_delay",
    "ingest_rate",
    "run_rate",
    "error_rate",
    "error_should_retry",
    "drop_rate",
    "request_timeout",
    "create_delay",
    "stream_delay",
    "answer_delay",
    "seal_timeout",
    "engine_tick",
}
_FRACTIONS = {"error_rate", "error_should_retry", "drop_rate"}


def _convert(name: str, raw: Any) -> Any:
    if name in _INT_FIELDS:
        if isinstance(raw, bool):
            raise ConfigError(name, raw, "an integer")
        if isinstance(raw, int):
            return raw
        try:
            return int(str(raw).replace("_", ""))
        except ValueError:
            raise ConfigError(name, raw, "an integer") from None
    if name in _FLOAT_FIELDS:
        if isinstance(raw, bool):
            raise ConfigError(name, raw, "a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, raw, "a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, raw, "a finite number")
        return value
    if name == "seed":
        if raw is None or (isinstance(raw, str) and raw.lower() in ("", "none", "off")):
            return None
        if isinstance(raw, bool):
            raise ConfigError(name, raw, "an integer or 'off'")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, raw, "an integer or 'off'") from None
    if name in ("rate_limit", "api_rate_limit"):
        if raw is None or isinstance(raw, RateLimit):
            return raw
        if isinstance(raw, str):
            if raw.strip().lower() in ("", "off", "none"):
                return None
            return RateLimit.parse(raw, name)
        raise ConfigError(name, raw, "MAX:REFILL/INTERVAL such as '1200:100/10s', or 'off'")
    if name == "secret_keys":
        keys = (raw,) if isinstance(raw, str) else tuple(raw)
        return tuple(keys)
    if name in ("access_log", "close_after_error"):
        return parse_bool(name, raw)
    return raw


def _check(c: ServerConfig) -> None:
    """Range checks shared by every way of building a config."""
    if not isinstance(c.host, str) or not c.host:
        raise ConfigError("host", c.host, "a host name or address such as 127.0.0.1")
    if not 0 <= c.port <= 65535:
        raise ConfigError("port", c.port, "an integer from 0 (any free port) to 65535")
    if not c.secret_keys or not all(isinstance(k, str) and k.strip() for k in c.secret_keys):
        # never echo the keys themselves
        raise ConfigError("secret_keys", "<redacted>", "one or more non-empty secret keys")
    if any(k != k.strip() or " " in k for k in c.secret_keys):
        raise ConfigError("secret_keys", "<redacted>", "keys without spaces")
    for name, low in (("max_items", 1), ("item_max_bytes", 16), ("ingest_concurrency", 1)):
        if getattr(c, name) < low:
            raise ConfigError(name, getattr(c, name), f"an integer of at least {low}")
    for name in _FLOAT_FIELDS:
        value = getattr(c, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(name, value, "a number of at least 0")
        if name in _FRACTIONS and value > 1:
            raise ConfigError(name, value, "a fraction from 0 to 1")
    if not (c.recv_buffer_bytes == 0 or 1024 <= c.recv_buffer_bytes <= 1 << 30):
        raise ConfigError("recv_buffer_bytes", c.recv_buffer_bytes,
                          "0 (the system's) or a size from 1024 to 1073741824 bytes")
    if not 500 <= c.error_status <= 599:
        raise ConfigError("error_status", c.error_status, "an HTTP status from 500 to 599")
    if c.engine_tick <= 0:
        raise ConfigError("engine_tick", c.engine_tick, "a number of seconds above 0")
    if c.rate_limit_reset_unit not in ("s", "ms"):
        raise ConfigError("rate_limit_reset_unit", c.rate_limit_reset_unit, "'s' or 'ms'")
    for name in ("rate_limit", "api_rate_limit"):
        value = getattr(c, name)
        if value is not None and not isinstance(value, RateLimit):
            raise ConfigError(name, value, "a RateLimit, a string like '1200:100/10s' or None")

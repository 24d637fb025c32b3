"""Internal: the one retry policy of loadkit: a frozen value object, SDK parity by default.

The official SDK (``@trigger.dev/core`` 4.x, see ``docs/batch-api.md``, section 9.4) retries

- a **stream** (phase 2) up to 5 attempts with delay ``min(30 s, rand[1,2) × 1 s × 2^(n−1))``
  after the n-th failed attempt, on ``sealed: false``, connection errors, 408, 409, 429 and
  5xx; a response header ``x-should-retry: true|false`` overrides the status rule;
- a **create** (phase 1) up to 5 attempts with delay ``min(30 s, 1 s × 1.6^(n−1))``, no jitter.

:class:`RetryPolicy` holds those numbers (all settable) plus what loadkit adds:

- ``resend``: ``full`` re-sends every clean line on a retry (what the SDK does, relying on the
  server's dedupe); ``missing`` re-sends only the indices the server lacks when the client
  can know them (see :mod:`loadkit.client`);
- 429 handling that reads ``x-ratelimit-reset`` as epoch **seconds or milliseconds**, told
  apart by magnitude (the SDK always assumes milliseconds and so mis-reads the batch
  limiter's seconds), then ``retry-after``; the unit seen is recorded.
  ``rate_limit_reset="ms"`` reads it as the SDK does: always epoch milliseconds (the client's
  ``sdk`` mode sets it).

``RetryPolicy.parse(**strings)`` is the one parser for flags, CLI arguments and notebook
keywords (names as in :data:`RETRY_FIELDS`); bad values raise
:class:`~loadkit.errors.ConfigError` naming the field, the value and the accepted form.
Tests use tiny delays (``base_delay=0.01``) so that retry paths run in milliseconds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from loadkit import wire
from loadkit._parse import Setting, parse_bool
from loadkit.errors import ConfigError

__all__ = ["RATE_LIMIT_RESET_READINGS", "RESEND_MODES", "RETRY_FIELDS", "RateLimitWait",
           "RetryPolicy"]

RESEND_MODES = ("full", "missing")
RATE_LIMIT_RESET_READINGS = ("auto", "ms")
"""How ``x-ratelimit-reset`` is read: ``auto`` (epoch s or ms by magnitude, or seconds from
now) or ``ms`` (always epoch milliseconds, as the SDK)."""
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 409, 429})
"""Plus every 5xx when ``retry_5xx`` is on (the SDK's rule)."""

_EPOCH_MS_THRESHOLD = 1e11
"""``x-ratelimit-reset`` above this is epoch milliseconds (epoch seconds reach 1e11 in 5138)."""
_EPOCH_S_THRESHOLD = 1e8
"""Below this the value cannot be an epoch (1973); it is read as seconds from now."""


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    """How long a 429 asks the client to wait, and from which header."""

    seconds: float
    source: str
    """``x-ratelimit-reset`` or ``retry-after``."""
    unit: str | None
    """For ``x-ratelimit-reset``: ``s`` (epoch seconds), ``ms`` (epoch milliseconds) or
    ``delta`` (seconds from now); None for ``retry-after``."""


RETRY_FIELDS: tuple[Setting, ...] = (
    Setting("attempts", "5", "stream attempts per batch, the first included (1 = no retry)"),
    Setting("base_delay", "1", "stream retry delay before jitter, seconds (or 250ms)"),
    Setting("factor", "2", "stream delay growth per attempt"),
    Setting("max_delay", "30", "largest stream retry delay, seconds"),
    Setting("jitter", "true", "multiply stream delays by rand[1,2) as the SDK does"),
    Setting("create_attempts", "5", "create attempts per batch, the first included"),
    Setting("create_base_delay", "1", "create retry delay, seconds"),
    Setting("create_factor", "1.6", "create delay growth per attempt"),
    Setting("create_max_delay", "30", "largest create retry delay, seconds"),
    Setting("create_jitter", "false", "jitter create delays (the SDK does not)"),
    Setting("resend", "full", "what a stream retry sends: full (every item, as the SDK) or "
               "missing (only the items the server lacks)"),
    Setting("retry_statuses", "408,409,429,5xx", "HTTP statuses that are retried"),
    Setting("honor_should_retry", "true", "let the x-should-retry header override statuses"),
    Setting("rate_limit_max_wait", "60", "longest single wait on a 429, seconds"),
    Setting("rate_limit_reset", "auto", "how x-ratelimit-reset is read: auto (epoch s or ms "
               "by magnitude) or ms (always epoch ms, as the SDK)"),
)
_FIELD_NAMES = frozenset(f.name for f in RETRY_FIELDS)


def _seconds(name: str, value: object, *, low: float = 0.0) -> float:
    if isinstance(value, bool):
        raise ConfigError(name, value, "seconds, e.g. 1, 0.5 or 250ms")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip().lower()
        scale = 1.0
        if text.endswith("ms"):
            text, scale = text[:-2], 0.001
        elif text.endswith("s"):
            text = text[:-1]
        try:
            number = float(text) * scale
        except ValueError:
            raise ConfigError(name, value, "seconds, e.g. 1, 0.5 or 250ms") from None
    if not math.isfinite(number) or number < low:
        raise ConfigError(name, value, f"seconds of at least {low:g}, e.g. 1, 0.5 or 250ms")
    return number


def _number(name: str, value: object, low: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < low:
        raise ConfigError(name, value, f"a number of at least {low:g}")
    return number


def _count(name: str, value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if isinstance(value, bool) or number < 1 or number > 100:
        raise ConfigError(name, value, "a whole number of attempts from 1 to 100")
    return number


def _statuses(value: object) -> tuple[frozenset[int], bool]:
    form = "comma-separated HTTP statuses and '5xx', e.g. '408,409,429,5xx' (or 'none')"
    if isinstance(value, str):
        parts = [p.strip().lower() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        parts = [str(p).strip().lower() for p in value]
    else:
        raise ConfigError("retry_statuses", value, form)
    if parts == ["none"]:
        return frozenset(), False
    codes: set[int] = set()
    five = False
    for part in parts:
        if part == "5xx":
            five = True
            continue
        if not part.isdigit() or not 100 <= int(part) <= 599:
            raise ConfigError("retry_statuses", value, form)
        codes.add(int(part))
    return frozenset(codes), five


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry numbers for creates and streams, the resend mode and the 429 rules.

    Build with keywords (Python values) or :meth:`parse` (strings). ``RetryPolicy()`` is SDK
    parity; ``RetryPolicy.none()`` makes one attempt of each.
    """

    attempts: int = 5
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True
    create_attempts: int = 5
    create_base_delay: float = 1.0
    create_factor: float = 1.6
    create_max_delay: float = 30.0
    create_jitter: bool = False
    resend: str = "full"
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_5xx: bool = True
    honor_should_retry: bool = True
    rate_limit_max_wait: float = 60.0
    rate_limit_reset: str = "auto"

    def __post_init__(self) -> None:
        _count("attempts", self.attempts)
        _count("create_attempts", self.create_attempts)
        for name in ("base_delay", "max_delay", "create_base_delay", "create_max_delay",
                     "rate_limit_max_wait"):
            _seconds(name, getattr(self, name))
        _number("factor", self.factor, 1.0)
        _number("create_factor", self.create_factor, 1.0)
        if self.resend not in RESEND_MODES:
            raise ConfigError("resend", self.resend, "full or missing")
        if self.rate_limit_reset not in RATE_LIMIT_RESET_READINGS:
            raise ConfigError("rate_limit_reset", self.rate_limit_reset, "auto or ms")
        if not isinstance(self.retry_statuses, frozenset):
            object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    # -- building -------------------------------------------------------------------------

    @classmethod
    def parse(cls, **settings: object) -> RetryPolicy:
        """The one parser of retry settings (strings or values), named as in ``RETRY_FIELDS``.

        ``None`` values are skipped (the default applies), so flags left unset can be passed
        straight through.
        """
        values: dict[str, object] = {}
        for name, raw in settings.items():
            if name not in _FIELD_NAMES:
                raise ConfigError(name, raw, "a retry setting: " + ", ".join(
                    f.name for f in RETRY_FIELDS))
            if raw is None:
                continue
            if name in ("attempts", "create_attempts"):
                values[name] = _count(name, raw)
            elif name in ("factor", "create_factor"):
                values[name] = _number(name, raw, 1.0)
            elif name in ("jitter", "create_jitter", "honor_should_retry"):
                values[name] = parse_bool(name, raw)
            elif name == "resend":
                text = str(raw).strip().lower()
                if text not in RESEND_MODES:
                    raise ConfigError(name, raw, "full or missing")
                values[name] = text
            elif name == "rate_limit_reset":
                text = str(raw).strip().lower()
                if text not in RATE_LIMIT_RESET_READINGS:
                    raise ConfigError(name, raw, "auto or ms")
                values[name] = text
            elif name == "retry_statuses":
                values["retry_statuses"], values["retry_5xx"] = _statuses(raw)
            else:
                values[name] = _seconds(name, raw)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def none(cls) -> RetryPolicy:
        """One attempt of everything: no retries."""
        return cls(attempts=1, create_attempts=1)

    def replace(self, **settings: object) -> RetryPolicy:
        """A copy with some settings (strings or values, as :meth:`parse`) replaced."""
        given = {k: v for k, v in settings.items() if v is not None}
        return RetryPolicy.parse(**{**self.as_settings(), **given})

    def as_settings(self) -> dict[str, str]:
        """The policy as the strings :meth:`parse` takes back (for run.json and flags)."""
        statuses = [str(s) for s in sorted(self.retry_statuses)] + (["5xx"] if self.retry_5xx
                                                                    else [])
        return {
            "attempts": str(self.attempts),
            "base_delay": str(self.base_delay),
            "factor": str(self.factor),
            "max_delay": str(self.max_delay),
            "jitter": str(self.jitter).lower(),
            "create_attempts": str(self.create_attempts),
            "create_base_delay": str(self.create_base_delay),
            "create_factor": str(self.create_factor),
            "create_max_delay": str(self.create_max_delay),
            "create_jitter": str(self.create_jitter).lower(),
            "resend": self.resend,
            "retry_statuses": ",".join(statuses) or "none",
            "honor_should_retry": str(self.honor_should_retry).lower(),
            "rate_limit_max_wait": str(self.rate_limit_max_wait),
            "rate_limit_reset": self.rate_limit_reset,
        }

    # -- decisions ------------------------------------------------------------------------

    def stream_delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempt``-th failed stream (1-based), as the SDK:
        ``min(max_delay, rand[1,2) × base_delay × factor^(attempt−1))``."""
        raw = self.base_delay * self.factor ** max(0, attempt - 1)
        if self.jitter:
            raw *= 1.0 + rng.random()
        return min(self.max_delay, raw)

    def create_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed create (1-based)."""
        raw = self.create_base_delay * self.create_factor ** max(0, attempt - 1)
        if self.create_jitter and rng is not None:
            raw *= 1.0 + rng.random()
        return min(self.create_max_delay, raw)

    def status_retryable(self, status: int, headers: Mapping[str, str] | None = None) -> bool:
        """Whether an HTTP answer with ``status`` is retried; ``x-should-retry`` overrides."""
        if self.honor_should_retry and headers is not None:
            flag = headers.get(wire.Header.SHOULD_RETRY)
            if flag is not None:
                flag = flag.strip().lower()
                if flag == "true":
                    return True
                if flag == "false":
                    return False
        return status in self.retry_statuses or (self.retry_5xx and 500 <= status <= 599)

    def rate_limit_wait(
        self, headers: Mapping[str, str], now: float | None = None
    ) -> RateLimitWait | None:
        """How long a 429 asks to wait: ``x-ratelimit-reset`` (epoch s or ms, told apart by
        magnitude, or seconds from now when too small to be an epoch; with
        ``rate_limit_reset="ms"`` always epoch ms, as the SDK, which reads on when that time
        is past: seconds misread as ms are always past), else ``retry-after``
        (seconds or an HTTP date). None when neither header is usable. Capped at
        ``rate_limit_max_wait``; never negative."""
        now = time.time() if now is None else now
        cap = self.rate_limit_max_wait
        raw = headers.get(wire.Header.RATELIMIT_RESET)
        if raw is not None:
            try:
                value = float(raw.strip())
            except ValueError:
                value = math.nan
            sdk = self.rate_limit_reset == "ms"
            if sdk and math.isfinite(value) and value / 1000.0 <= now:
                value = math.nan  # the SDK: a reset time already past is no wait; read on
            if math.isfinite(value) and value >= 0:
                if sdk or value >= _EPOCH_MS_THRESHOLD:
                    wait, unit = value / 1000.0 - now, "ms"
                elif value >= _EPOCH_S_THRESHOLD:
                    wait, unit = value - now, "s"
                else:
                    wait, unit = value, "delta"
                return RateLimitWait(min(cap, max(0.0, wait)), wire.Header.RATELIMIT_RESET, unit)
        raw = headers.get(wire.Header.RETRY_AFTER)
        if raw is not None:
            text = raw.strip()
            try:
                wait = float(text)
            except ValueError:
                try:
                    wait = parsedate_to_datetime(text).timestamp() - now
                except (TypeError, ValueError, IndexError, OverflowError, OSError):
                    return None  # not a date, or one no clock can hold
            if math.isfinite(wait):
                return RateLimitWait(min(cap, max(0.0, wait)), wire.Header.RETRY_AFTER, None)
        return None

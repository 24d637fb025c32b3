"""Internal: ``ClientConfig``, how a :class:`~loadkit.client.BatchClient` sends, one value object.

Every client setting is checked here and only here: :func:`loadkit.options.parse_options`
(locust flags, ``loadkit send``, notebook keywords) builds a ``ClientConfig`` with
:meth:`ClientConfig.parse`, and ``BatchClient(url, key, timeout=…, retry=…)`` builds the same
object from its keywords, so a bad value gives the same
:class:`~loadkit.errors.ConfigError` text wherever it was given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from loadkit._parse import parse_bool, parse_float, parse_int
from loadkit.client.retry import RetryPolicy
from loadkit.errors import ConfigError

__all__ = [
    "CLIENT_MODES",
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "SDK_VERSION",
    "ClientConfig",
]

SDK_VERSION = "4.8.3"
"""Sent as ``trigger-version``: the SDK release whose wire behaviour loadkit matches."""
DEFAULT_TIMEOUT = 330.0
"""Seconds the client waits for any one request (the one default of ``BatchClient``, the
``timeout`` run option and ``loadkit send``): longer than the real server's own 300 s request
timeout, so its 408 is seen and a slow ingest tail is not cut short and re-sent (the SDK has
no client timeout at all; docs/batch-api.md)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection (at most the request timeout)."""
DEFAULT_VERIFY_TIMEOUT = 10.0
"""Seconds ``verify=True`` polls a sealed batch while the target's engine makes its runs."""
CLIENT_MODES = ("loadkit", "sdk")
"""How the client streams: ``loadkit`` (coalesced ~64 KiB chunks, the policy's resend mode)
or ``sdk`` (as the official SDK: one NDJSON line per write, pulled item by item, the whole
stream re-sent on every retry, the SDK's backoff, ``x-ratelimit-reset`` read as epoch ms)."""
_SDK_FREE = ("rate_limit_max_wait", "rate_limit_reset")
"""Retry settings that may differ from SDK parity in ``sdk`` mode (everything else is the
SDK's there)."""


def _sdk_retry(retry: RetryPolicy) -> RetryPolicy:
    """``retry`` as ``sdk`` mode uses it: the SDK's policy (raises when ``retry`` differs from
    SDK parity in anything but the 429 wait cap), reading ``x-ratelimit-reset`` as epoch ms."""
    parity = RetryPolicy()
    for field in dataclasses.fields(RetryPolicy):
        name = field.name
        if name not in _SDK_FREE and getattr(retry, name) != getattr(parity, name):
            shown = retry.as_settings().get(name, getattr(retry, name))
            raise ConfigError("retry_" + name, shown,
                              f"the SDK's {getattr(parity, name)!s} with client mode sdk (it "
                              "retries as the SDK does; use client mode loadkit to change "
                              "retries)")
    return dataclasses.replace(retry, rate_limit_reset="ms")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How the client sends. Build it with keywords (Python values, checked) or with
    :meth:`parse` (strings as flags give them).

    ``timeout``: seconds for any one request (connect: at most :data:`CONNECT_TIMEOUT`).
    ``retry``: the :class:`~loadkit.client.RetryPolicy` (default: SDK parity).
    ``chunk_bytes``: body chunk size (None: the batch spec's, 64 KiB).
    ``send_buffer_bytes``: ``SO_SNDBUF`` for the client socket (None: the system's).
    ``keep_chunk_timings``: keep every chunk's write timing on each attempt.
    ``verify``: after sealing, retrieve the batch and check its runs, polling up to
    ``verify_timeout`` seconds while the target's engine makes them.
    ``seed``: seeds retry jitter (reproducible delays in tests).
    ``trigger_version``: the ``trigger-version`` header.
    ``trust_env``: read proxy settings and certificates from the environment (httpx's).
    ``mode``: ``loadkit`` or ``sdk`` (:data:`CLIENT_MODES`): ``sdk`` streams as the official
    SDK, one line per write, and retries with the SDK's policy (``retry`` must be SDK parity
    but for ``rate_limit_max_wait``; ``x-ratelimit-reset`` is read as epoch ms).
    """

    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    chunk_bytes: int | None = None
    send_buffer_bytes: int | None = None
    keep_chunk_timings: bool = False
    verify: bool = False
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT
    seed: int | None = None
    trigger_version: str = SDK_VERSION
    trust_env: bool = True
    mode: str = "loadkit"

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("timeout", parse_float("timeout", self.timeout, 0.0, above=True))
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigError("retry", self.retry, "a RetryPolicy")
        for name in ("chunk_bytes", "send_buffer_bytes"):
            value = getattr(self, name)
            if value is not None:
                put(name, parse_int(name, value, 1))
        put("keep_chunk_timings", parse_bool("keep_chunk_timings", self.keep_chunk_timings))
        put("verify", parse_bool("verify", self.verify))
        put("verify_timeout", parse_float("verify_timeout", self.verify_timeout, 0.0))
        if self.seed is not None:
            put("seed", parse_int("seed", self.seed, 0))
        if not str(self.trigger_version).strip():
            raise ConfigError("trigger_version", self.trigger_version, "an SDK version, e.g. "
                              + SDK_VERSION)
        put("trust_env", parse_bool("trust_env", self.trust_env))
        mode = str(self.mode).strip().lower()
        if mode not in CLIENT_MODES:
            raise ConfigError("client", self.mode, " or ".join(CLIENT_MODES))
        put("mode", mode)
        if mode == "sdk":
            put("retry", _sdk_retry(self.retry))

    @classmethod
    def parse(cls, **settings: Any) -> ClientConfig:
        """From settings as flags give them (strings; None or "" = the default).

        ``send_buffer_bytes`` 0 means the system's buffer, as None does.
        """
        given = {k: v for k, v in settings.items() if v is not None and v != ""}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(unknown[0], given[unknown[0]], "a client setting: " + ", ".join(
                f.name for f in dataclasses.fields(cls)))
        if str(given.get("send_buffer_bytes", "")).strip() == "0":
            given.pop("send_buffer_bytes")
        return cls(**given)

    def replace(self, **settings: Any) -> ClientConfig:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **settings)

    @property
    def connect_timeout(self) -> float:
        return min(self.timeout, CONNECT_TIMEOUT)

    def as_settings(self) -> dict[str, Any]:
        """The run options' text of these settings (what run.json records; no secret)."""
        return {"client": self.mode, "timeout": self.timeout,
                "send_buffer_bytes": self.send_buffer_bytes,
                "keep_chunk_timings": self.keep_chunk_timings, "verify": self.verify,
                "verify_timeout": self.verify_timeout}

    def make_client(self, base_url: str | None, secret_key: str | None,
                    chunk_bytes: int | None = None) -> Any:
        """A :class:`~loadkit.client.BatchClient` with these settings (one per user: one
        connection pool). ``chunk_bytes`` overrides this config's (the spec's size)."""
        from loadkit.client.client import BatchClient  # noqa: PLC0415 - client imports us

        config = self if chunk_bytes is None else self.replace(chunk_bytes=chunk_bytes)
        return BatchClient(base_url, secret_key, config=config)

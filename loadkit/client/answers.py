"""Internal: reading what a target sends: redaction, parsing, and the mapping of failures to errors.

Everything the client keeps of an answer passes through here as it is read:

- :class:`Redactor` removes the client's secret key and any ``Bearer <token>`` from text,
  bytes and parsed JSON (a target that echoes the ``Authorization`` header cannot make the
  client store the key);
- :func:`parsed` reads a 200 answer with a :mod:`loadkit.wire` parser, or says what is wrong
  with it as a :class:`~loadkit.errors.ProtocolError`;
- :func:`transport_error` is the one table from httpx's exceptions to loadkit's
  (:data:`TRANSPORT_ERRORS`, as httpx maps httpcore's), and :func:`status_error` the one for
  an unexpected HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import orjson

from loadkit import wire
from loadkit.errors import (
    AuthError,
    ConnectError,
    MalformedAnswer,
    ProtocolError,
    StatusError,
    TargetError,
    TargetTimeout,
)

__all__ = ["REDACTED", "RETRY_HEADERS", "TRANSPORT_ERRORS", "Redactor", "answer_message",
           "error_message", "parsed", "status_error", "transport_error"]

REDACTED = "<redacted>"
_BEARER = r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"
"""``Bearer <token>`` (RFC 6750 token characters); the word and spacing are kept."""
_BEARER_TEXT = re.compile(_BEARER)
_BEARER_RAW = re.compile(_BEARER.encode())
_SNIPPET = 120
_T = TypeVar("_T")
RETRY_HEADERS = (wire.Header.SHOULD_RETRY, wire.Header.RATELIMIT_LIMIT,
                 wire.Header.RATELIMIT_REMAINING, wire.Header.RATELIMIT_RESET,
                 wire.Header.RETRY_AFTER)
"""The answer headers the retry policy reads (kept, cleaned, on a failed attempt)."""


class Redactor:
    """Removes one secret key, and any ``Bearer <token>``, from what a target sent."""

    __slots__ = ("_key", "_key_raw")

    def __init__(self, key: str | None) -> None:
        self._key = key
        self._key_raw = key.encode() if key else None

    def __call__(self, value: Any) -> Any:
        """``value`` (text, raw bytes or parsed JSON) with the key and any ``Bearer <token>``
        replaced by ``<redacted>``."""
        if isinstance(value, str):  # the key first: a Bearer match could stop inside it
            if self._key:
                value = value.replace(self._key, REDACTED)
            return _BEARER_TEXT.sub(r"\1" + REDACTED, value)
        if isinstance(value, bytes):
            if self._key_raw:
                value = value.replace(self._key_raw, REDACTED.encode())
            return _BEARER_RAW.sub(rb"\1" + REDACTED.encode(), value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def read(self, raw: bytes) -> tuple[bytes, Any]:
        """An answer body as read: the body and its parsed JSON (None when it is not JSON),
        both cleaned (the parsed strings again, in case of JSON escapes)."""
        raw = self(raw)
        try:
            value = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            value = None
        if (b"\\" not in raw and raw.isascii()
                and (self._key_raw is None or self._key_raw not in raw)):
            # no escapes, ASCII only, no key left: every parsed string is a slice of the
            # cleaned body, where the text and bytes patterns match alike, so there is
            # nothing left to clean (the walk cost ~20 calls per answer)
            return raw, value
        return raw, self(value)

    def retry_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The answer's retry-related headers, cleaned (what the retry policy reads)."""
        return {k: self(headers[k]) for k in RETRY_HEADERS if k in headers}


# --- describing bodies -------------------------------------------------------------------


def _snippet(raw: bytes) -> str:
    text = raw[:_SNIPPET].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(raw) > _SNIPPET else "")


def _describe(raw: bytes, value: Any = None) -> str:
    head = raw[:200].lstrip().lower()
    if not raw:
        return "an empty body"
    if value is not None:
        return f"a JSON {type(value).__name__}"
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "HTML"
    if head.startswith((b"{", b"[")):
        return "truncated or invalid JSON"
    return "text"


def error_message(raw: bytes, value: Any) -> str:
    """The message of an error answer (as :meth:`Redactor.read` gives it): its ``error`` or
    ``message`` string, else a description and a snippet."""
    message = answer_message(value)
    if message is not None:
        return message
    if value is None:
        return _describe(raw) + ": " + repr(_snippet(raw))
    return repr(_snippet(raw))


def answer_message(value: Any) -> str | None:
    """The ``error`` (else ``message``) string of a JSON error answer, None when absent."""
    if isinstance(value, dict):
        for key in ("error", "message"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return None


def parsed(parse: Callable[[Any], _T], raw: bytes, value: Any, where: str) -> _T:
    """``parse(value)`` (a :mod:`loadkit.wire` parser); ``where`` is ``<url> answered
    <status>``. Raises :class:`ProtocolError` when the answer is not a JSON object,
    :class:`MalformedAnswer` when the object is not the answer ``parse`` reads."""
    if not isinstance(value, dict):
        raise ProtocolError(
            f"{where} with {_describe(raw, value)} instead of the batch API's JSON: "
            f"{_snippet(raw)!r}; check the URL points at a Trigger.dev API")
    try:
        return parse(value)
    except ValueError as exc:
        raise MalformedAnswer(
            f"{where} with JSON that is not the batch API's answer ({exc}): "
            f"{_snippet(raw)!r}; check the URL points at a Trigger.dev API") from None


# --- failures → errors -------------------------------------------------------------------

_TIMEOUTS: dict[type[httpx.TimeoutException], tuple[str, str]] = {
    httpx.ConnectTimeout: ("connect", "connecting"),
    httpx.ReadTimeout: ("read", "waiting for the answer"),
    httpx.WriteTimeout: ("write", "writing the body"),
    httpx.PoolTimeout: ("pool", "waiting for a free connection"),
}


def _timeout(exc: Exception, where: str, detail: str, sent: int,
             timeout: httpx.Timeout) -> TargetError:
    name, what = _TIMEOUTS.get(type(exc), ("read", "waiting"))  # type: ignore[arg-type]
    seconds = getattr(timeout, name, None)
    limit = f"{seconds:g} s" if isinstance(seconds, (int, float)) else "the timeout"
    return TargetTimeout(f"{where}: no progress within {limit} while {what} ({detail}); "
                         "raise the client timeout or check the server")


def _connect(exc: Exception, where: str, detail: str, sent: int,
             timeout: httpx.Timeout) -> TargetError:
    return ConnectError(f"cannot connect to {where}: {detail}; check the URL "
                        "(TRIGGER_API_URL) and that the server is running")


def _dropped(exc: Exception, where: str, detail: str, sent: int,
             timeout: httpx.Timeout) -> TargetError:
    return ConnectError(f"{where}: the connection was dropped after {sent} body bytes "
                        f"({detail})")


def _protocol(exc: Exception, where: str, detail: str, sent: int,
              timeout: httpx.Timeout) -> TargetError:
    return ProtocolError(f"{where}: {detail}")


_Maker = Callable[[Exception, str, str, int, httpx.Timeout], TargetError]
TRANSPORT_ERRORS: tuple[tuple[type[Exception], _Maker], ...] = (
    (httpx.TimeoutException, _timeout),
    (httpx.ConnectError, _connect),
    (httpx.LocalProtocolError, _protocol),
    (httpx.UnsupportedProtocol, _protocol),
    (httpx.ProxyError, _protocol),
    (httpx.TransportError, _dropped),
    (httpx.HTTPError, _protocol),
    (httpx.InvalidURL, _protocol),
)
"""httpx's exceptions → loadkit's, first match wins (subclasses before their bases): a
timeout is a :class:`TargetTimeout`; a failed connect a :class:`ConnectError`; any other
broken transport a ``ConnectError`` naming the body bytes sent (*dropped*); what the client
itself cannot send (a bad URL, an unsupported scheme) a :class:`ProtocolError`."""


def transport_error(exc: Exception, where: str, sent: int, timeout: httpx.Timeout,
                    clean: Callable[[Any], Any]) -> TargetError:
    """The loadkit error for an httpx exception raised while talking to ``where``."""
    detail = clean(str(exc) or type(exc).__name__)
    for kind, make in TRANSPORT_ERRORS:
        if isinstance(exc, kind):
            return make(exc, where, detail, sent, timeout)
    return ProtocolError(f"{where}: {detail}")


def status_error(status: int, raw: bytes, value: Any, where: str) -> TargetError:
    """The error of an unexpected status (``raw``/``value`` as :meth:`Redactor.read` gives
    them)."""
    message = error_message(raw, value)
    if status == 401:
        return AuthError(f"{where} answered 401 ({message}): check that the secret key "
                         "(TRIGGER_SECRET_KEY) is one this target accepts")
    return StatusError(f"{where} answered {status}: {message}")

"""The batch API's wire contract, shared by the client, the generators and the reference server.

One definition of paths, headers, limits, item schema, response shapes and error texts, so
that the two sides of the wire cannot drift. Behaviour follows Trigger.dev's v4 server and the
published phase-2 OpenAPI, as recorded in ``docs/batch-api.md`` (deliberate deviations are
listed there).

Line numbers in error texts are 1-based physical lines of the request body: every ``\\n``
starts a new line, skipped empty lines included, so the number is what an editor shows.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, overload

__all__ = [
    "API_LIMIT_BATCH_GRANT",
    "API_LIMIT_GRANT_TTL_S",
    "API_VERSION",
    "CANCEL_RUN_PATH",
    "CREATE_BODY_MAX_BYTES",
    "CREATE_PATH",
    "DEFAULT_LOCAL_SECRET_KEY",
    "IDEMPOTENCY_KEY_MAX_CHARS",
    "ITEM_MAX_BYTES",
    "JSON_CONTENT_TYPE",
    "MAX_RUN_COUNT",
    "NDJSON_CONTENT_TYPE",
    "NDJSON_CONTENT_TYPES",
    "OPENAPI_PATH",
    "PAYLOAD_TOO_LARGE",
    "PROBLEM_CONTENT_TYPE",
    "RETRIEVE_PATH",
    "RETRIEVE_V1_PATH",
    "RUN_TAG",
    "SOURCE",
    "STATS_PATH",
    "STREAM_PATH",
    "TAGS_MAX_PER_RUN",
    "TAG_MAX_CHARS",
    "BatchStatus",
    "CreateAnswer",
    "Header",
    "ProcessingError",
    "RetrieveAnswer",
    "StreamAnswer",
    "api_rate_limit_body",
    "batch_id_well_formed",
    "cancel_run_path",
    "create_body_error",
    "create_path",
    "error_body",
    "index_from_prefix",
    "is_ndjson_content_type",
    "item_index",
    "item_index_label",
    "item_issues",
    "item_schema_error",
    "js_int",
    "js_number",
    "js_number_str",
    "js_trim",
    "json_parse",
    "merge_tags",
    "msg",
    "parse_create_response",
    "parse_retrieve_response",
    "parse_stream_response",
    "rate_limiter_of",
    "retrieve_path",
    "retrieve_v1_path",
    "run_tags",
    "stable_prefix",
    "stream_path",
    "stream_response",
]

# --- paths -------------------------------------------------------------------------------

CREATE_PATH = "/api/v3/batches"
STREAM_PATH = "/api/v3/batches/{batch_id}/items"
RETRIEVE_PATH = "/api/v2/batches/{batch_id}"
RETRIEVE_V1_PATH = "/api/v1/batches/{batch_id}"
"""The older SDKs' retrieve: top-level ``errors`` and run counts, no ``processing``."""
CANCEL_RUN_PATH = "/api/v2/runs/{run_id}/cancel"
OPENAPI_PATH = "/openapi.json"
STATS_PATH = "/api/loadkit/stats"
"""The reference server's truth counters (not part of Trigger.dev's API)."""


def create_path() -> str:
    return CREATE_PATH


def batch_id_well_formed(batch_id: str) -> bool:
    """The friendly-id form the stream route requires (``<entity>_<id>``: exactly one ``_``
    with text on both sides); another id answers 400 ``Invalid batchFriendlyId``."""
    entity, sep, rest = batch_id.partition("_")
    return bool(sep and entity and rest and "_" not in rest)


def stream_path(batch_id: str) -> str:
    return STREAM_PATH.format(batch_id=batch_id)


def retrieve_path(batch_id: str) -> str:
    return RETRIEVE_PATH.format(batch_id=batch_id)


def retrieve_v1_path(batch_id: str) -> str:
    return RETRIEVE_V1_PATH.format(batch_id=batch_id)


def cancel_run_path(run_id: str) -> str:
    return CANCEL_RUN_PATH.format(run_id=run_id)


# --- content types and headers -----------------------------------------------------------

NDJSON_CONTENT_TYPE = "application/x-ndjson"
NDJSON_CONTENT_TYPES = ("application/x-ndjson", "application/ndjson")
JSON_CONTENT_TYPE = "application/json"
PROBLEM_CONTENT_TYPE = "application/problem+json"
"""The general API rate limiter's 429 (RFC 9457 problem details)."""


def is_ndjson_content_type(value: str | None) -> bool:
    """True when a Content-Type header *contains* one of the NDJSON types (as the server checks)."""
    if not value:
        return False
    lowered = value.lower()
    return any(t in lowered for t in NDJSON_CONTENT_TYPES)


class Header:
    """Header names, lower-case as they travel in HTTP/1.1 through httpx and ASGI."""

    AUTHORIZATION = "authorization"
    CONTENT_TYPE = "content-type"
    CONTENT_LENGTH = "content-length"
    TRIGGER_VERSION = "trigger-version"
    API_VERSION = "x-trigger-api-version"
    SOURCE = "x-trigger-source"
    REALTIME_STREAMS_VERSION = "x-trigger-realtime-streams-version"
    REQUEST_IDEMPOTENCY_KEY = "x-trigger-request-idempotency-key"
    SHOULD_RETRY = "x-should-retry"
    RATELIMIT_LIMIT = "x-ratelimit-limit"
    RATELIMIT_REMAINING = "x-ratelimit-remaining"
    RATELIMIT_RESET = "x-ratelimit-reset"
    RETRY_AFTER = "retry-after"


API_VERSION = "2025-07-16"
SOURCE = "loadkit"
"""What loadkit sends as ``x-trigger-source`` (the SDK sends ``sdk``)."""

# --- limits (server defaults) ------------------------------------------------------------

MAX_RUN_COUNT = 1_000
ITEM_MAX_BYTES = 3_145_728
CREATE_BODY_MAX_BYTES = 131_072
IDEMPOTENCY_KEY_MAX_CHARS = 2_048

DEFAULT_LOCAL_SECRET_KEY = "tr_dev_loadkit_local"
"""The key the reference server accepts when none is configured (documented, not a secret)."""

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
"""Error code of the pre-failed run an oversized item becomes."""


class BatchStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    PARTIAL_FAILED = "PARTIAL_FAILED"
    ABORTED = "ABORTED"


# --- error texts -------------------------------------------------------------------------


class msg:
    """Error texts, one function each, so server answers and client checks agree."""

    @staticmethod
    def invalid_json(line: int, reason: str = "") -> str:
        """``Invalid JSON at line N: <the parser's reason>`` (the reason varies by runtime)."""
        text = f"Invalid JSON at line {line}"
        return f"{text}: {reason}" if reason else text

    @staticmethod
    def invalid_utf8(line: int) -> str:
        return f"Invalid UTF-8 at line {line}"

    @staticmethod
    def invalid_item(index: int | float | str | None, detail: str) -> str:
        """``Invalid item at index N: …``, or ``… at unknown index: …`` when the line held no
        numeric ``index`` (``index`` None); a number is written as JavaScript writes it."""
        if index is None:
            return f"Invalid item at unknown index: {detail}"
        label = index if isinstance(index, str) else js_number_str(index)
        return f"Invalid item at index {label}: {detail}"

    @staticmethod
    def index_out_of_range(index: int, run_count: int) -> str:
        return f"Item index {index} exceeds batch runCount {run_count}"

    @staticmethod
    def invalid_batch_id(batch_id: str) -> str:
        return f"Invalid batchFriendlyId: {batch_id}"

    @staticmethod
    def batch_not_found(batch_id: str) -> str:
        return f"Batch {batch_id} not found"

    @staticmethod
    def batch_aborted(batch_id: str) -> str:
        return f"Batch {batch_id} is not in PENDING status (current: ABORTED)"

    @staticmethod
    def run_count_over(run_count: int, maximum: int) -> str:
        return f"Batch runCount of {run_count} exceeds maximum allowed of {maximum}."

    @staticmethod
    def unsupported_media_type() -> str:
        return "Content-Type must be application/x-ndjson or application/ndjson"

    @staticmethod
    def unauthorized() -> str:
        return "Invalid API key: send 'Authorization: Bearer <secret key>'"

    @staticmethod
    def no_body() -> str:
        return "Request body is empty"

    @staticmethod
    def body_too_large(size: int, maximum: int) -> str:
        return f"Request body of {size} bytes exceeds the maximum of {maximum} bytes"

    @staticmethod
    def rate_limited() -> str:
        return "Batch rate limit exceeded"

    @staticmethod
    def rate_limit_over_bucket(run_count: int, max_tokens: int) -> str:
        """The 429 of a create whose runCount exceeds what the token bucket can ever hold."""
        return (
            f"Batch rate limit exceeded: runCount {run_count} costs {run_count} tokens but the "
            f"batch rate limit bucket holds at most {max_tokens}, so this create can never "
            f"succeed; create batches of at most {max_tokens} items"
        )

    @staticmethod
    def request_timeout() -> str:
        return "Request timed out"

    @staticmethod
    def payload_too_large(size: int, maximum: int) -> str:
        """The error of an oversized item's pre-failed run (sizes in KB with one decimal)."""
        return (f"Batch item payload is too large ({size / 1024:.1f} KB). Maximum allowed size "
                f"is {maximum / 1024:.1f} KB. Reduce the payload size or offload large data to "
                "external storage.")

    @staticmethod
    def invalid_body(detail: str) -> str:
        """A create body that is not JSON or not a CreateBatchRequestBody (400)."""
        return f"Invalid request body: {detail}"

    @staticmethod
    def batch_not_found_retrieve() -> str:
        return "Not found"

    @staticmethod
    def run_not_found() -> str:
        """A cancel of a run the route's lookup does not find (the route builder's 404)."""
        return "Resource not found"

    @staticmethod
    def route_not_found(method: str, path: str) -> str:
        return f"No route for {method} {path}"

    @staticmethod
    def method_not_allowed(method: str, allowed: str) -> str:
        return f"Method {method} not allowed here; use {allowed}"

    @staticmethod
    def injected_error() -> str:
        """The 500 a reference server sends when told to inject server errors."""
        return "Something went wrong (injected by the loadkit reference server)"


# --- the general API rate limiter ---------------------------------------------------------

API_LIMIT_BATCH_GRANT = 10
"""Item requests of a new batch that bypass the general API limiter (its stream grant)."""
API_LIMIT_GRANT_TTL_S = 1800.0
"""How long after its creation a batch's stream grant can be spent."""


def api_rate_limit_body(remaining: int, limit: int, reset_ms: int, now_ms: float
                        ) -> dict[str, object]:
    """The general API limiter's 429 body (``application/problem+json``)."""
    seconds = max(0.0, (reset_ms - now_ms) / 1000.0)
    text = (f"Rate limit exceeded {max(0, remaining)}/{limit} requests remaining. "
            f"Retry in {js_number_str(seconds)} seconds.")
    return {"title": "Rate Limit Exceeded", "status": 429,
            "type": "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/429",
            "detail": text, "reset": reset_ms, "limit": limit, "remaining": remaining,
            "secondsUntilReset": seconds, "error": text}


def rate_limiter_of(content_type: str | None, body: object) -> str:
    """Which limiter sent a 429: ``api`` (the general API limiter: a problem+json body or its
    ``title``), else ``batch`` (the create's token bucket, a JSON ``error`` body)."""
    if content_type and PROBLEM_CONTENT_TYPE in content_type.lower():
        return "api"
    if isinstance(body, dict) and body.get("title") == "Rate Limit Exceeded":
        return "api"
    return "batch"


# --- run tags ----------------------------------------------------------------------------

TAG_MAX_CHARS = 128
"""A tag's longest length (the item schema's limit)."""
TAGS_MAX_PER_RUN = 10
"""Tags a run may carry (the trigger service refuses more)."""
RUN_TAG = "loadkit"
"""The tag every item of a load test against a real target carries (with ``loadkit:<run>``)."""


def run_tags(run_id: str) -> tuple[str, str]:
    """The tags of a load test's items: ``loadkit`` and ``loadkit:<run id>`` (cut to
    :data:`TAG_MAX_CHARS`)."""
    return RUN_TAG, f"{RUN_TAG}:{run_id}"[:TAG_MAX_CHARS]


def merge_tags(first: Iterable[str], then: Iterable[str]) -> list[str]:
    """``first`` then ``then``, without repeats, at most :data:`TAGS_MAX_PER_RUN`."""
    return list(dict.fromkeys([*first, *then]))[:TAGS_MAX_PER_RUN]


def error_body(message: str) -> dict[str, str]:
    """The JSON of an error answer: the real server's ``error`` and the published OpenAPI's
    ``message`` (docs/batch-api.md, "Error bodies")."""
    return {"error": message, "message": message}


# --- responses ---------------------------------------------------------------------------


def stream_response(
    batch_id: str,
    *,
    items_accepted: int,
    items_deduplicated: int,
    sealed: bool,
    run_count: int | None = None,
    enqueued_count: int | None = None,
    expected_count: int | None = None,
) -> dict[str, Any]:
    """A phase-2 200 answer; ``enqueuedCount``/``expectedCount`` only when not sealed,
    ``runCount`` in every answer (when given)."""
    body: dict[str, Any] = {
        "id": batch_id,
        "itemsAccepted": items_accepted,
        "itemsDeduplicated": items_deduplicated,
        "sealed": sealed,
    }
    if not sealed:
        body["enqueuedCount"] = enqueued_count
        body["expectedCount"] = expected_count
    if run_count is not None:
        body["runCount"] = run_count
    return body


# --- reading answers (the client's side of the shapes above) -----------------------------
# Each parser takes parsed JSON and returns a frozen value with the types checked, or raises
# ValueError naming the first field that is missing or of the wrong type (the client turns
# that into a ProtocolError or a named violation). Unknown fields are ignored.


@overload
def _int_field(body: dict[str, Any], name: str, *, required: Literal[True]) -> int: ...
@overload
def _int_field(body: dict[str, Any], name: str, *, required: Literal[False]) -> int | None: ...
def _int_field(body: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        got = "nothing" if name not in body else _type_name(value)
        if isinstance(value, int) and not isinstance(value, bool):
            got = str(value)
        raise ValueError(f"{name}: expected an integer >= 0, received {got}")
    return value


def _object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"{what}: expected an object, received {_type_name(body)}")
    return body


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    """A phase-2 200 answer (:func:`stream_response`), read by :func:`parse_stream_response`."""

    items_accepted: int
    items_deduplicated: int
    sealed: bool
    id: str | None = None
    run_count: int | None = None
    """Sent when sealed."""
    enqueued_count: int | None = None
    """Sent when not sealed."""
    expected_count: int | None = None
    """Sent when not sealed."""


def parse_stream_response(body: object) -> StreamAnswer:
    """Read a phase-2 200 answer; ValueError when it is not one.

    ``itemsAccepted``, ``itemsDeduplicated``: integers >= 0; ``sealed``: boolean; ``id``:
    string; ``runCount``, ``enqueuedCount``, ``expectedCount``: integers >= 0. The last four
    may be absent or null (which of them a correct server sends is checked by the client).
    """
    answer = _object(body, "answer")
    accepted = _int_field(answer, "itemsAccepted", required=True)
    dedup = _int_field(answer, "itemsDeduplicated", required=True)
    sealed = answer.get("sealed")
    if not isinstance(sealed, bool):
        raise ValueError(f"sealed: expected a boolean, received {_type_name(sealed)}")
    batch_id = answer.get("id")
    if batch_id is not None and not isinstance(batch_id, str):
        raise ValueError(f"id: expected a string, received {_type_name(batch_id)}")
    return StreamAnswer(
        items_accepted=accepted,
        items_deduplicated=dedup,
        sealed=sealed,
        id=batch_id,
        run_count=_int_field(answer, "runCount", required=False),
        enqueued_count=_int_field(answer, "enqueuedCount", required=False),
        expected_count=_int_field(answer, "expectedCount", required=False),
    )


@dataclass(frozen=True, slots=True)
class CreateAnswer:
    """A phase-1 answer ``{id, runCount, isCached}``, read by :func:`parse_create_response`."""

    id: str
    run_count: int | None
    is_cached: bool


def parse_create_response(body: object) -> CreateAnswer:
    """Read a phase-1 (create) answer; ValueError when it is not one.

    ``id``: a non-empty printable string without ``/ ? #`` or spaces (it goes into the
    stream path); ``runCount``: integer >= 0 (may be absent); ``isCached``: boolean (absent
    means false).
    """
    answer = _object(body, "answer")
    batch_id = answer.get("id")
    if not (isinstance(batch_id, str) and batch_id and batch_id.isprintable()
            and not any(c in batch_id for c in "/?# ")):
        raise ValueError(f"id: expected a batch id (a non-empty string without / ? # or "
                         f"spaces), received {_type_name(batch_id)}")
    cached = answer.get("isCached", False)
    if not isinstance(cached, bool):
        raise ValueError(f"isCached: expected a boolean, received {_type_name(cached)}")
    return CreateAnswer(id=batch_id, run_count=_int_field(answer, "runCount", required=False),
                        is_cached=cached)


@dataclass(frozen=True, slots=True)
class ProcessingError:
    """One entry of a retrieved batch's ``processing.errors`` (a pre-failed run)."""

    index: int
    error_code: str | None


@dataclass(frozen=True, slots=True)
class RetrieveAnswer:
    """``GET /api/v2/batches/{id}`` (the Batch object), read by :func:`parse_retrieve_response`."""

    status: str
    runs: tuple[str, ...]
    errors: tuple[ProcessingError, ...]
    run_count: int | None = None


def parse_retrieve_response(body: object) -> RetrieveAnswer:
    """Read a retrieved Batch; ValueError when it is not one.

    ``status``: string; ``runs``: array of strings; ``processing``: object whose ``errors``
    is an array of objects with ``index`` (integer >= 0) and ``errorCode`` (string, may be
    absent); ``runCount``: integer >= 0 (may be absent).
    """
    answer = _object(body, "answer")
    status = answer.get("status")
    if not isinstance(status, str):
        raise ValueError(f"status: expected a string, received {_type_name(status)}")
    runs = answer.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        got = _type_name(runs) if not isinstance(runs, list) else "an array with a non-string"
        raise ValueError(f"runs: expected an array of strings, received {got}")
    processing = _object(answer.get("processing"), "processing")
    raw_errors = processing.get("errors")
    if not isinstance(raw_errors, list):
        raise ValueError("processing.errors: expected an array, received "
                         + _type_name(raw_errors))
    errors = []
    for k, entry in enumerate(raw_errors):
        item = _object(entry, f"processing.errors[{k}]")
        try:
            index = _int_field(item, "index", required=True)
        except ValueError as exc:
            raise ValueError(f"processing.errors[{k}].{exc}") from None
        code = item.get("errorCode")
        if code is not None and not isinstance(code, str):
            raise ValueError(f"processing.errors[{k}].errorCode: expected a string, received "
                             + _type_name(code))
        errors.append(ProcessingError(index=index, error_code=code))
    return RetrieveAnswer(status=status, runs=tuple(runs), errors=tuple(errors),
                          run_count=_int_field(answer, "runCount", required=False))


# --- lines: JavaScript's trim and JSON.parse ---------------------------------------------

JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
"""What JavaScript's ``String.prototype.trim`` removes (a BOM yes; ``\\x1c``–``\\x1f`` and
U+0085, which Python's ``str.strip`` also removes, no)."""


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def _no_constant(name: str) -> object:
    raise ValueError(f'Unexpected token \'{name[0]}\', "{name}" is not valid JSON')


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def json_parse(text: str) -> object:
    """Parse one trimmed line as JavaScript's ``JSON.parse`` does, for the lines a strict
    parser refuses: lone surrogate escapes parse, numbers beyond a double become infinite
    (``1e400``), ``NaN``/``Infinity`` do not parse. ValueError names a reason."""
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise ValueError("Unexpected end of JSON input") from None
        raise ValueError(f"Unexpected token '{text[exc.pos]}', \"{text[:32]}\" is not valid "
                         "JSON") from None
    if end != len(text):
        raise ValueError(f"Unexpected non-whitespace character after JSON at position {end}")
    return value


# --- numbers as JavaScript sees them -----------------------------------------------------

_SAFE_INT = 2**53 - 1


def js_number(value: object) -> float | None:
    """The JavaScript number a parsed JSON value is, or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def js_int(value: object) -> int | None:
    """The value as an integer when zod's ``int()`` accepts it (whole-valued, safe), else None:
    ``1.0`` and ``1e0`` are the integer 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -_SAFE_INT <= value <= _SAFE_INT else None
    if isinstance(value, float) and value.is_integer() and abs(value) <= _SAFE_INT:
        return int(value)
    return None


def js_number_str(value: float) -> str:
    """``String(n)`` in JavaScript: ``1``, ``1.5``, ``1e+21``, ``1.5e-7``, ``Infinity``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _SAFE_INT:
        return str(value)
    x = js_number(value)
    if x is None or math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, e = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + ("" if frac == "0" else frac)
    n = len(whole) + (int(e) if e else 0)  # value = 0.<digits> × 10^n
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if n > 0 else '-'}{abs(n - 1)}"


# --- item schema (BatchItemNDJSON) -------------------------------------------------------
# The rules of @trigger.dev/core's BatchItemNDJSON zod schema (4.x), restated: see
# docs/batch-api.md section 5.3. A test checks these decisions against the real schema.


def _type_name(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "Infinity" if value > 0 else "-Infinity"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


MACHINE_PRESETS = ("micro", "small-1x", "small-2x", "medium-1x", "medium-2x", "large-1x",
                   "large-2x")
_CONCURRENCY_NAME = re.compile(r"[a-zA-Z0-9_-]{1,122}")
EXTERNAL_DEPLOYMENT_ID_MAX = 128
_DATE_MAX_MS = 8.64e15

Issue = tuple[str, str]
"""(path, message) of one schema problem."""


def _str(value: object, path: str, max_len: int | None = None, min_len: int = 0) -> list[Issue]:
    if not isinstance(value, str):
        return [(path, f"Invalid input: expected string, received {_type_name(value)}")]
    n = len(value)  # zod 4 counts code points (a lone surrogate is one), as Python does
    if max_len is not None and n > max_len:
        return [(path, f"Too big: expected string to have <={max_len} characters")]
    if n < min_len:
        return [(path, f"Too small: expected string to have >={min_len} characters")]
    return []


def _num(value: object, path: str, *, integer: bool = False,
         nonnegative: bool = False) -> list[Issue]:
    x = js_number(value)
    if x is None or not math.isfinite(x):
        return [(path, f"Invalid input: expected number, received {_type_name(value)}")]
    if integer and js_int(value) is None:
        return [(path, "Invalid input: expected int, received number")]
    if nonnegative and x < 0:
        return [(path, "Too small: expected number to be >=0")]
    return []


def _enum(value: object, path: str, allowed: tuple[str, ...]) -> list[Issue]:
    if value in allowed and isinstance(value, str):
        return []
    return [(path, "Invalid option: expected one of " + "|".join(f'"{a}"' for a in allowed))]


def _obj(value: object, path: str) -> list[Issue]:
    if isinstance(value, dict):
        return []
    return [(path, f"Invalid input: expected object, received {_type_name(value)}")]


def _delay(value: object, path: str) -> list[Issue]:
    """A string, or anything ``new Date(value)`` makes a valid date of (true, null, a number
    within ±8.64e15 ms)."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return []
    x = js_number(value)
    if x is not None and math.isfinite(x) and abs(x) <= _DATE_MAX_MS:
        return []
    return [(path, "Invalid input")]


def _tags(value: object, path: str) -> list[Issue]:
    if isinstance(value, str):
        return _str(value, path, 128)
    if isinstance(value, list):
        found: list[Issue] = []
        for k, tag in enumerate(value):
            found += _str(tag, f"{path}.{k}", 128)
        return [(path, "Invalid input")] if found else []
    return [(path, "Invalid input")]


def _option_issues(options: dict[str, Any]) -> list[Issue]:
    found: list[Issue] = []
    add = found.extend
    for key, value in options.items():
        p = f"options.{key}"
        if key == "concurrencyKey":
            if not isinstance(value, str) and _num(value, p):
                add([(p, "Invalid input")])
        elif key == "delay":
            add(_delay(value, p))
        elif key == "idempotencyKey":
            add(_str(value, p, IDEMPOTENCY_KEY_MAX_CHARS))
        elif key in ("idempotencyKeyTTL", "lockToVersion", "metadataType", "parentAttempt",
                     "payloadType", "region"):
            add(_str(value, p))
        elif key == "idempotencyKeyOptions":
            add(_obj(value, p) or (_str(value.get("key"), p + ".key")
                                   + _enum(value.get("scope"), p + ".scope",
                                           ("run", "attempt", "global"))))
        elif key == "externalDeploymentId":
            if value is not None and not (isinstance(value, str) and not js_trim(value)):
                add(_str(js_trim(value) if isinstance(value, str) else value, p,
                         EXTERNAL_DEPLOYMENT_ID_MAX))
        elif key == "machine":
            add(_enum(value, p, MACHINE_PRESETS))
        elif key == "maxAttempts":
            add(_num(value, p, integer=True))
        elif key in ("maxDuration", "priority"):
            add(_num(value, p))
        elif key == "payloadSize":
            add(_num(value, p, integer=True, nonnegative=True))
        elif key == "queue":
            add(_obj(value, p) or _str(value.get("name"), p + ".name"))
        elif key == "gates":
            if not isinstance(value, list):
                add([(p, f"Invalid input: expected array, received {_type_name(value)}")])
            else:
                if len(value) > 3:
                    add([(p, "Too big: expected array to have <=3 items")])
                for k, gate in enumerate(value):
                    g = f"{p}.{k}"
                    add(_obj(gate, g) or (_str(gate.get("queue"), g + ".queue", 128, 1) + (
                        _str(gate["concurrencyKey"], g + ".concurrencyKey", 128, 1)
                        if "concurrencyKey" in gate else [])))
        elif key == "concurrency":
            if not isinstance(value, list):
                add([(p, f"Invalid input: expected array, received {_type_name(value)}")])
            else:
                if len(value) > 2:
                    add([(p, "Too big: expected array to have <=2 items")])
                for k, name in enumerate(value):
                    add(_str(name, f"{p}.{k}") or ([] if _CONCURRENCY_NAME.fullmatch(name)
                                                   else [(f"{p}.{k}", "Invalid name")]))
        elif key == "tags":
            add(_tags(value, p))
        elif key == "test":
            if not isinstance(value, bool):
                add([(p, f"Invalid input: expected boolean, received {_type_name(value)}")])
        elif key == "ttl":
            if not isinstance(value, str) and _num(value, p, integer=True, nonnegative=True):
                add([(p, "Invalid input")])
        elif key == "debounce":
            if _obj(value, p):
                add(_obj(value, p))
                continue
            assert isinstance(value, dict)
            add(_str(value.get("key"), p + ".key", 512) + _str(value.get("delay"), p + ".delay"))
            if "mode" in value:
                add(_enum(value["mode"], p + ".mode", ("leading", "trailing")))
            if "maxDelay" in value:
                add(_str(value["maxDelay"], p + ".maxDelay"))
        # metadata: any JSON; unknown keys: stripped
    return found


def item_issues(item: object) -> list[Issue]:
    """Every way a parsed NDJSON line fails BatchItemNDJSON, as (path, message); [] when it is
    one. ``index``: a whole number ≥ 0 (``1.0`` counts); ``task``: string; ``payload``: any;
    ``options``: absent or an object whose known fields follow the real schema (``null`` is
    not an object); unknown fields are stripped, not refused."""
    if not isinstance(item, dict):
        return [("", f"Invalid input: expected object, received {_type_name(item)}")]
    found: list[Issue] = []
    if "index" not in item:
        found.append(("index", "Invalid input: expected number, received undefined"))
    else:
        found += _num(item["index"], "index", integer=True, nonnegative=True)
    if "task" not in item:
        found.append(("task", "Invalid input: expected string, received undefined"))
    else:
        found += _str(item["task"], "task")
    if "options" in item:
        options = item["options"]
        found += _obj(options, "options") or _option_issues(options)
    return found


def item_schema_error(item: object) -> str | None:
    """Why a parsed NDJSON line is not a BatchItemNDJSON (a JSON list of issues, as zod writes
    its message), or None when it is one (:func:`item_issues`)."""
    found = item_issues(item)
    if not found:
        return None
    return json.dumps([{"path": [int(p) if p.isdigit() else p for p in path.split(".") if p],
                        "message": message} for path, message in found], indent=2)


def item_index(item: object) -> int | None:
    """The index of a line that passed :func:`item_issues` (``1.0`` → 1)."""
    return js_int(item.get("index")) if isinstance(item, dict) else None


def item_index_label(item: object) -> float | None:
    """What an invalid item's error calls it: its ``index`` when that is a number (any
    number, as JavaScript's ``typeof`` sees it), else None (``unknown index``)."""
    if isinstance(item, dict):
        return js_number(item.get("index"))
    return None


INDEX_PREFIX_BYTES = 512
"""How many leading bytes of an oversized line the server searches for ``index``/``task``."""
UNKNOWN_TASK = "unknown"
"""The task an oversized line gets when its first bytes name none."""


def index_from_prefix(raw: bytes) -> tuple[int | None, str | None]:
    """Read ``index`` and ``task`` from the first bytes of an oversized line, as the server does.

    Only keys of the top-level object count (nesting is tracked by counting brackets, also
    inside strings, as the server's scan does); the index is the unsigned digits after the
    colon (spaces and tabs skipped), so ``-1`` or a nested ``index`` give no index; the task
    is a quoted string that is valid UTF-8. When no index is found the server uses the line's
    position among the non-blank lines of that one request, starting at 0.
    """
    head = raw[:INDEX_PREFIX_BYTES]
    limit = len(head)
    index: int | None = None
    task: str | None = None
    depth = 0
    i = 0
    while i < limit and (index is None or task is None):
        b = head[i]
        if b in (0x7B, 0x5B):
            depth += 1
        elif b in (0x7D, 0x5D):
            depth -= 1
        elif b == 0x22 and depth == 1:
            start = end = i + 1
            while end < limit and head[end] != 0x22:
                end += 2 if head[end] == 0x5C else 1
            key = head[start:end]
            if (key == b"index" and index is None) or (key == b"task" and task is None):
                pos = end + 1
                while pos < limit and head[pos] != 0x3A:
                    pos += 1
                pos += 1
                while pos < limit and head[pos] in (0x20, 0x09):
                    pos += 1
                if key == b"index":
                    digits = pos
                    while digits < limit and 0x30 <= head[digits] <= 0x39:
                        digits += 1
                    if digits > pos:
                        index = int(head[pos:digits])
                elif pos < limit and head[pos] == 0x22:
                    v_end = pos + 1
                    while v_end < limit and head[v_end] != 0x22:
                        v_end += 2 if head[v_end] == 0x5C else 1
                    with contextlib.suppress(UnicodeDecodeError):
                        task = head[pos + 1 : v_end].decode("utf-8")
            i = end + 1
            continue
        i += 1
    return index, task


# --- judging error answers: the stable part of the real texts ----------------------------

_STABLE = re.compile(
    r"(?P<json>Invalid JSON at line (?P<line>\d+))"
    r"|(?P<utf8>Invalid UTF-8 at line (?P<uline>\d+))"
    r"|(?P<item>Invalid item at (?:index (?P<index>[^:]+)|unknown index))"
    r"|(?P<range>Item index (?P<rindex>\d+) exceeds batch runCount (?P<runs>\d+))"
)


def stable_prefix(message: str | None) -> str | None:
    """The part of a stream error text that does not depend on the server's runtime and
    libraries: ``Invalid JSON at line N``, ``Invalid item at index N`` (or ``at unknown
    index``), ``Item index N exceeds batch runCount M``, ``Invalid UTF-8 at line N``; None
    when the text is none of these. The rest (the parser's reason, zod's issue list) is
    detail."""
    if not message:
        return None
    m = _STABLE.match(message)
    return m.group(0) if m else None


# --- create body schema (CreateBatchRequestBody) -----------------------------------------


def create_body_error(body: object) -> str | None:
    """Why a parsed create body is not a CreateBatchRequestBody, or None when it is one.

    ``runCount``: integer > 0 (the server's maximum is checked separately, see
    ``msg.run_count_over``); ``taskIdentifiers``: optional array of ≥ 1 non-empty strings;
    ``parentRunId``: optional string; ``resumeParentOnCompletion``: optional boolean;
    ``idempotencyKey``: optional string of at most ``IDEMPOTENCY_KEY_MAX_CHARS``;
    ``idempotencyKeyOptions``: optional object. Unknown fields are ignored.
    """
    if not isinstance(body, dict):
        return f"expected an object, received {_type_name(body)}"
    if "runCount" not in body:
        return "runCount: Required"
    run_count = body["runCount"]
    if isinstance(run_count, bool) or not isinstance(run_count, int):
        return f"runCount: Expected integer, received {_type_name(run_count)}"
    if run_count < 1:
        return "runCount: Number must be greater than 0"
    tasks = body.get("taskIdentifiers")
    if tasks is not None:
        if not isinstance(tasks, list):
            return f"taskIdentifiers: Expected array, received {_type_name(tasks)}"
        if not tasks:
            return "taskIdentifiers: Array must contain at least 1 element(s)"
        if not all(isinstance(t, str) and t for t in tasks):
            return "taskIdentifiers: Expected an array of non-empty strings"
    for name, kind, label in (
        ("parentRunId", str, "string"),
        ("resumeParentOnCompletion", bool, "boolean"),
        ("idempotencyKey", str, "string"),
        ("idempotencyKeyOptions", dict, "object"),
    ):
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            return f"{name}: Expected {label}, received {_type_name(value)}"
    key = body.get("idempotencyKey")
    if isinstance(key, str) and len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        return (
            f"idempotencyKey: String must contain at most {IDEMPOTENCY_KEY_MAX_CHARS} "
            f"character(s), received {len(key)}"
        )
    return None

"""The batch API's wire contract, shared by the client, the generators and the reference server.

One definition of paths, headers, limits, item schema, response shapes and error texts, so
that the two sides of the wire cannot drift. Behaviour follows Trigger.dev's v4 server and the
published phase-2 OpenAPI, as recorded in ``docs/batch-api.md`` (deliberate deviations are
listed there).

Line numbers in error texts are 1-based physical lines of the request body: every ``\\n``
starts a new line, skipped empty lines included, so the number is what an editor shows.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Literal, overload

__all__ = [
    "API_VERSION",
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
    "RETRIEVE_PATH",
    "SOURCE",
    "STATS_PATH",
    "STREAM_PATH",
    "BatchStatus",
    "CreateAnswer",
    "Header",
    "ProcessingError",
    "RetrieveAnswer",
    "StreamAnswer",
    "create_body_error",
    "create_path",
    "error_body",
    "index_from_prefix",
    "is_ndjson_content_type",
    "item_schema_error",
    "msg",
    "parse_create_response",
    "parse_retrieve_response",
    "parse_stream_response",
    "retrieve_path",
    "stream_path",
    "stream_response",
]

# --- paths -------------------------------------------------------------------------------

CREATE_PATH = "/api/v3/batches"
STREAM_PATH = "/api/v3/batches/{batch_id}/items"
RETRIEVE_PATH = "/api/v2/batches/{batch_id}"
OPENAPI_PATH = "/openapi.json"
STATS_PATH = "/api/loadkit/stats"
"""The reference server's truth counters (not part of Trigger.dev's API)."""


def create_path() -> str:
    return CREATE_PATH


def stream_path(batch_id: str) -> str:
    return STREAM_PATH.format(batch_id=batch_id)


def retrieve_path(batch_id: str) -> str:
    return RETRIEVE_PATH.format(batch_id=batch_id)


# --- content types and headers -----------------------------------------------------------

NDJSON_CONTENT_TYPE = "application/x-ndjson"
NDJSON_CONTENT_TYPES = ("application/x-ndjson", "application/ndjson")
JSON_CONTENT_TYPE = "application/json"


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
    def invalid_json(line: int) -> str:
        return f"Invalid JSON at line {line}"

    @staticmethod
    def invalid_utf8(line: int) -> str:
        return f"Invalid UTF-8 at line {line}"

    @staticmethod
    def invalid_item(index: int | str, detail: str) -> str:
        return f"Invalid item at index {index}: {detail}"

    @staticmethod
    def index_out_of_range(index: int, run_count: int) -> str:
        return f"Invalid item at index {index}: index must be less than runCount ({run_count})"

    @staticmethod
    def batch_not_found(batch_id: str) -> str:
        return f"Batch {batch_id} not found"

    @staticmethod
    def batch_aborted(batch_id: str) -> str:
        return f"Batch {batch_id} was aborted and accepts no more items"

    @staticmethod
    def run_count_over(run_count: int, maximum: int) -> str:
        return f"runCount {run_count} exceeds the maximum of {maximum} items per batch"

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
        return f"Item of {size} bytes exceeds the maximum of {maximum} bytes"

    @staticmethod
    def invalid_body(detail: str) -> str:
        """A create body that is not JSON or not a CreateBatchRequestBody (400)."""
        return f"Invalid request body: {detail}"

    @staticmethod
    def batch_not_found_retrieve() -> str:
        return "Batch not found"

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
    """A phase-2 200 answer; ``enqueuedCount``/``expectedCount`` only when not sealed."""
    body: dict[str, Any] = {
        "id": batch_id,
        "itemsAccepted": items_accepted,
        "itemsDeduplicated": items_deduplicated,
        "sealed": sealed,
    }
    if sealed:
        if run_count is not None:
            body["runCount"] = run_count
    else:
        body["enqueuedCount"] = enqueued_count
        body["expectedCount"] = expected_count
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


# --- item schema (BatchItemNDJSON) -------------------------------------------------------

_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "concurrencyKey": (str, int, float),  # a number is coerced to a string
    "delay": (str, int, float),
    "idempotencyKey": (str,),
    "idempotencyKeyTTL": (str,),
    "machine": (str,),
    "maxAttempts": (int,),
    "maxDuration": (int, float),
    "metadata": (dict,),
    "payloadType": (str,),
    "payloadSize": (int,),
    "queue": (dict,),
    "tags": (str, list),
    "ttl": (str, int, float),
    "priority": (int, float),
    "region": (str,),
    "test": (bool,),
}


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def item_schema_error(item: object) -> str | None:
    """Why a parsed NDJSON line is not a BatchItemNDJSON, or None when it is one.

    ``index``: integer ≥ 0; ``task``: string; ``payload``: any JSON (optional);
    ``options``: optional object whose known fields have the types the real server
    accepts. Unknown fields are ignored, as the real server's schema strips them.
    """
    if not isinstance(item, dict):
        return f"expected an object, received {_type_name(item)}"
    index = item.get("index")
    if "index" not in item:
        return "index: Required"
    if isinstance(index, bool) or not isinstance(index, int):
        return f"index: Expected integer, received {_type_name(index)}"
    if index < 0:
        return "index: Number must be greater than or equal to 0"
    if "task" not in item:
        return "task: Required"
    if not isinstance(item["task"], str):
        return f"task: Expected string, received {_type_name(item['task'])}"
    options = item.get("options")
    if options is None:
        return None
    if not isinstance(options, dict):
        return f"options: Expected object, received {_type_name(options)}"
    for key, value in options.items():
        allowed = _OPTION_TYPES.get(key)
        if allowed is None or value is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            return f"options.{key}: Expected {allowed[0].__name__}, received boolean"
        if not isinstance(value, allowed):
            return f"options.{key}: Invalid type, received {_type_name(value)}"
    queue = options.get("queue")
    if isinstance(queue, dict) and "name" in queue and not isinstance(queue["name"], str):
        return "options.queue.name: Expected string"
    tags = options.get("tags")
    if isinstance(tags, list) and not all(isinstance(t, str) for t in tags):
        return "options.tags: Expected string array"
    return None


_INDEX_RE = re.compile(rb'"index"\s*:\s*(-?\d+)')
_TASK_RE = re.compile(rb'"task"\s*:\s*"((?:[^"\\]|\\.){0,256})"')
INDEX_PREFIX_BYTES = 512
"""How many leading bytes of an oversized line the server searches for ``index``/``task``."""


def index_from_prefix(raw: bytes) -> tuple[int | None, str | None]:
    """Read ``index`` and ``task`` from the first bytes of an oversized line, as the server does.

    When no ``index`` is found, the reference server uses the line's position: its 0-based
    rank among the non-empty lines of that one stream request (empty lines not counted).
    """
    head = raw[:INDEX_PREFIX_BYTES]
    m = _INDEX_RE.search(head)
    index = int(m.group(1)) if m else None
    t = _TASK_RE.search(head)
    task = t.group(1).decode("utf-8", "replace") if t else None
    return index, task


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

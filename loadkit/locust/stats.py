"""Internal: what locust's statistics show of a batch: request events of type ``BATCH``.

Each batch sent fires ``create`` (when a create was tried), ``stream`` (when items were
streamed) and ``batch`` (the whole batch), plus ``batch (from intended start)`` in the open
model, all read from the client's typed :class:`~loadkit.client.BatchResult`. Starts the open
model dropped and batches interrupted at stop have no result: they fire one event directly
(:func:`fire`). A failure's text is its cause, short and of low cardinality so locust's
failure table groups it: ``HTTP 503``, ``not sealed after 5 attempts``,
``contract violation: accepted_mismatch``, ``connect error`` …
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from loadkit.vocabulary import SUCCESS_OUTCOMES, Outcome

if TYPE_CHECKING:
    from loadkit.client import BatchResult

__all__ = ["REQUEST_TYPE", "BatchFailure", "cause", "fire", "report_batch"]

REQUEST_TYPE = "BATCH"

_VIOLATION_NAME = re.compile(r"[A-Za-z_]+")


class BatchFailure(Exception):
    """The cause of a failed create, stream or batch, as locust's failure statistics show it."""


def cause(result: BatchResult) -> str:
    """A short, low-cardinality failure text for locust's statistics."""
    kind = result.error_kind
    if kind == "auth":
        return "HTTP 401: secret key not accepted"
    if kind == "rate_limited":
        return "HTTP 429: rate limited until attempts ran out"
    if kind == "status":
        return f"HTTP {result.status}"
    if kind in ("connect", "timeout"):
        return f"{kind} error"
    if kind == "protocol":
        return "protocol error: the answer is not the batch API's"
    if kind:
        return f"{kind} error"
    if result.outcome == Outcome.NOT_SEALED:
        return f"not sealed after {len(result.attempts)} attempts"
    if result.violations:
        m = _VIOLATION_NAME.match(result.violations[0].name)
        return "contract violation: " + (m.group(0) if m else "unknown")
    return f"outcome {result.outcome}"


def fire(environment: Any, name: str, ms: float | None, length: int,
         failure: str | None) -> None:
    """One locust request event of type ``BATCH`` (a failure when ``failure`` is given)."""
    environment.events.request.fire(
        request_type=REQUEST_TYPE,
        name=name,
        response_time=ms or 0.0,
        response_length=length,
        exception=BatchFailure(failure) if failure else None,
        context={},
    )


def report_batch(environment: Any, result: BatchResult, intended_at: float | None) -> None:
    """Fire the request events of one batch sent (``intended_at``: its open-model start)."""
    succeeded = result.outcome in SUCCESS_OUTCOMES
    created = result.batch_id is not None
    sent = result.bytes_sent
    if result.create_attempts:
        fire(environment, "create", result.create_ms if created else result.total_ms, 0,
             None if created else cause(result))
    if result.attempts:
        fire(environment, "stream", result.stream_ms, sent, None if succeeded else cause(result))
    failure = None if succeeded and not result.violations else cause(result)
    fire(environment, "batch", result.total_ms, sent, failure)
    if intended_at is not None:
        fire(environment, "batch (from intended start)",
             (result.ended_at - intended_at) * 1000.0, sent, failure)

"""Internal: judging answers: the client's truth checks, as pure functions.

Each function takes what the generator knows in advance (the batch's
:class:`~loadkit.generators.ExpectedOutcome`, what a retry sent) and what the target
answered, and returns named :class:`~loadkit.client.result.Violation` objects and what
follows; none of them does I/O or changes its arguments, so each is tested on its own.

- :func:`judge_stream` — one stream attempt's answer: the first stream against the batch's
  expected outcome (status, error message, itemsAccepted, itemsDeduplicated, sealed,
  enqueuedCount, expectedCount); a retry against what the client knows it sent. It also
  says what the server lacks afterwards (what a ``missing`` resend sends), when that can be
  known.
- :func:`check_totals` — a sealed batch's answers summed: accepted never above runCount,
  exactly runCount when every attempt's answer was seen.
- :func:`judge_runs` — a retrieved batch (``verify=True``): runCount distinct runs, an
  oversized item's pre-failed run among them (the real server counts it as a success); a
  ``PAYLOAD_TOO_LARGE`` error in the batch's errors only for an oversized item whose run could
  not be made, in place of that run.

What the real API answers, and why the checks are what they are: docs/batch-api.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadkit import wire
from loadkit.client.answers import answer_message
from loadkit.client.result import Attempt, End, Violation
from loadkit.generators import ExpectedOutcome

__all__ = ["FINAL_STATUSES", "Judgement", "RunsVerdict", "check_totals", "judge_runs",
           "judge_stream"]

_REJECTIONS = frozenset({400, 401, 422})
"""Statuses that end a batch: the target refused the request itself (never retried)."""
_NONE = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one stream attempt's answer means."""

    missing: np.ndarray | None
    """The indices the server lacks now (None: cannot be known)."""
    violations: tuple[Violation, ...] = ()
    sealed: bool = False
    ends_batch: bool = False
    """The attempt's error ends the batch (a rejection, no key, not the batch API)."""
    expected_error: bool = False
    """An injected fault's 400/422, as predicted: retried with clean lines."""
    slack: int = 0
    """How many of ``missing`` the server may hold already (after a predicted error, what a
    parse error dropped depends on how the server received the body in chunks)."""
    note: str | None = None
    """Something worth keeping that is no violation (an error text's detail that differs
    from the reference server's)."""


def _indices(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def judge_stream(expected: ExpectedOutcome, batch_id: str, attempt: Attempt,
                 before: np.ndarray | None, slack: int = 0) -> Judgement:
    """Judge one stream attempt's answer; ``before`` is what the server lacked before it
    (None: unknown), of which up to ``slack`` may in fact be present."""
    end = attempt.end
    if end is End.CONNECT:  # nothing reached the server
        return Judgement(before)
    if end in (End.PROTOCOL, End.AUTH):
        return Judgement(None, ends_batch=True)
    if end is End.STATUS:
        status = attempt.status
        if status not in _REJECTIONS:  # 408, 409, 429, 5xx: what was enqueued is unknown
            return Judgement(None)
        return _judge_rejection(expected, attempt, status)
    if end is None or end.unanswered:
        return Judgement(None)
    return _judge_answer(expected, batch_id, attempt, before, slack)


def _judge_rejection(expected: ExpectedOutcome, attempt: Attempt, status: int) -> Judgement:
    """A 400, 401 or 422: the predicted rejection of an injected fault, or a violation."""
    message = answer_message(attempt.answer)
    number = attempt.number
    if status == 401:
        return Judgement(None, ends_batch=True)
    if number == 1 and expected.status != 200 and expected.allows_error(status, message):
        note = None
        if message != expected.error_message and wire.stable_prefix(message) == \
                wire.stable_prefix(expected.error_message):
            note = f"error detail differs from the reference server's: {message!r}"
        return Judgement(_indices(expected.missing), expected_error=True, slack=expected.slack,
                         note=note)
    if number == 1 and expected.status != 200 and status in (400, 422) and any(
            status == s for s, _ in expected.errors or ((expected.status, ""),)):
        found = Violation("error_message_mismatch", number,
                          " or ".join(p for _, p in expected.errors) or expected.error_message,
                          message)
    elif number == 1 and status != expected.status:
        found = Violation("status_mismatch", number, expected.status, status, str(message))
    elif number == 1:
        found = Violation("error_message_mismatch", number, expected.error_message, message)
    else:
        found = Violation("status_mismatch", number, 200, status,
                          f"clean lines rejected: {message}")
    return Judgement(None, (found,), ends_batch=True)


def _judge_answer(expected: ExpectedOutcome, batch_id: str, attempt: Attempt,
                  before: np.ndarray | None, slack: int = 0) -> Judgement:
    """A 200 answer (read by :func:`loadkit.wire.parse_stream_response`)."""
    s = attempt.stream_answer
    assert s is not None
    n = expected.run_count
    number = attempt.number
    sealed = s.sealed
    found: list[Violation] = []
    if s.id is not None and s.id != batch_id:
        found.append(Violation("id_mismatch", number, batch_id, s.id))
    if sealed and s.run_count is not None and s.run_count != n:
        found.append(Violation("run_count_mismatch", number, n, s.run_count))
    if not sealed and s.expected_count != n:
        found.append(Violation("expected_count_mismatch", number, n, s.expected_count))
    known_now: np.ndarray | None
    if number == 1:
        found += _first_answer(expected, s)
        known_now = _indices(expected.missing) if not found and expected.status == 200 else None
    else:
        found += _retry_answer(attempt, s, before, slack)
        known_now = _NONE if not found and before is not None else None
    if sealed:
        return Judgement(_NONE, tuple(found), sealed=True)
    if known_now is not None and s.enqueued_count != n - len(known_now):
        found.append(Violation("enqueued_mismatch", number, n - len(known_now),
                               s.enqueued_count))
        known_now = None
    return Judgement(known_now, tuple(found))


def _first_answer(expected: ExpectedOutcome, s: wire.StreamAnswer) -> list[Violation]:
    """The first stream's 200 answer against the batch's expected outcome."""
    if expected.status != 200:
        return [Violation("status_mismatch", 1, expected.status, 200,
                          f"expected {expected.error_message!r}")]
    found = [Violation(name, 1, want, got) for name, want, got in (
        ("accepted_mismatch", expected.items_accepted, s.items_accepted),
        ("dedup_mismatch", expected.items_deduplicated, s.items_deduplicated),
        ("sealed_mismatch", expected.sealed, s.sealed)) if want != got]
    if not s.sealed and s.enqueued_count != expected.enqueued_count:
        found.append(Violation("enqueued_mismatch", 1, expected.enqueued_count,
                               s.enqueued_count))
    return found


def _retry_answer(attempt: Attempt, s: wire.StreamAnswer,
                  before: np.ndarray | None, slack: int = 0) -> list[Violation]:
    """A retry's 200 answer against what the client knows it sent (``itemsAccepted`` within
    ``slack`` below what the server lacked, when that was only known to a range)."""
    lines = attempt.lines
    number = attempt.number
    if before is not None:
        want = len(before)
        found = []
        if not want - slack <= s.items_accepted <= want:
            found.append(Violation("accepted_mismatch", number,
                                   want if not slack else f"{want - slack}..{want}",
                                   s.items_accepted, f"retry sent {attempt.sent}"))
        if s.items_accepted + s.items_deduplicated != lines:
            found.append(Violation("dedup_mismatch", number, lines - s.items_accepted,
                                   s.items_deduplicated, f"retry sent {attempt.sent}"))
        if not s.sealed:
            found.append(Violation("sealed_mismatch", number, True, s.sealed,
                                   f"retry sent {attempt.sent}"))
        return found
    total = s.items_accepted + s.items_deduplicated
    if not (s.sealed and total == 0) and total != lines:
        return [Violation("count_mismatch", number, lines, total,
                          "itemsAccepted + itemsDeduplicated ≠ lines sent")]
    return []


def check_totals(run_count: int, accepted: int, attempts: Sequence[Attempt],
                 expected: ExpectedOutcome) -> Violation | None:
    """A sealed batch's itemsAccepted summed over its answers (``accepted``) against its
    runCount: never above it; equal when every attempt was answered."""
    first = attempts[0] if attempts else None
    low = high = accepted
    if first is not None and first.end is End.EXPECTED_ERROR:
        # enqueued before the bad line, in no answer: a range when chunks decided it
        high = accepted + expected.enqueued
        low = high - expected.slack
        accepted = high
    unseen = any((a.end is not None and a.end.unanswered)
                 or (a.end is End.STATUS and (a.status or 0) >= 408) for a in attempts)
    if low > run_count or (not unseen and not low <= run_count <= high):
        return Violation(
            "total_accepted_mismatch", None, run_count, accepted,
            "itemsAccepted summed over the answers"
            + (" (some attempts unanswered: at most runCount)" if unseen else ""))
    return None


FINAL_STATUSES = frozenset({str(wire.BatchStatus.COMPLETED),
                            str(wire.BatchStatus.PARTIAL_FAILED),
                            str(wire.BatchStatus.ABORTED)})
"""Batch statuses after which the engine adds no more runs."""


@dataclass(frozen=True, slots=True)
class RunsVerdict:
    """What a retrieved batch shows (:func:`judge_runs`)."""

    violations: tuple[Violation, ...]
    done: bool
    """The engine has finished: every check was made, not only what the runs so far prove."""

    @property
    def verified(self) -> bool | None:
        """True: the runs are exactly right; False: a violation; None: not checked in time."""
        if self.violations:
            return False
        return True if self.done else None


def judge_runs(expected: ExpectedOutcome, seen: wire.RetrieveAnswer) -> RunsVerdict:
    """Check a retrieved batch's runs. While the engine is still making them (not
    :data:`FINAL_STATUSES`, fewer runs than runCount) only what the runs seen so far prove is
    checked: the engine may still add runs and errors, never remove them.

    An oversized item becomes a pre-failed run that the batch counts as a success; only when
    that run cannot be made does the item appear in the batch's errors (``PAYLOAD_TOO_LARGE``)
    instead, so runs plus such errors make runCount."""
    n = expected.run_count
    runs = seen.runs
    too_large = sorted(e.index for e in seen.errors if e.error_code == wire.PAYLOAD_TOO_LARGE)
    made = len(runs) + len(too_large)
    done = seen.status in FINAL_STATUSES or made >= n
    want = sorted(expected.too_large)
    found = []
    if made > n or (done and made != n):
        found.append(Violation("runs_count_mismatch", None, n, len(runs),
                               f"and {len(too_large)} oversized items without a run"
                               if too_large else ""))
    distinct = len(set(runs))
    if distinct != len(runs):
        found.append(Violation("runs_duplicate", None, len(runs), distinct))
    if len(set(too_large)) != len(too_large) or not set(too_large) <= set(want):
        found.append(Violation("too_large_mismatch", None, f"a subset of {want}", too_large))
    return RunsVerdict(tuple(found), done)

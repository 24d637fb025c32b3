"""The run's vocabulary: outcomes, fault kinds and exit codes, defined once.

Every module that names an outcome, a fault or an exit code takes it from here, so a new
outcome or fault is added in one place. The enums are ``StrEnum``/``IntEnum``: their members
compare equal to the plain strings and numbers stored in records and returned to the shell.
The groups below are tuples of **plain** strings, ready for ``isin`` and pyarrow.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "BATCH_FAULTS",
    "FAILURE_OUTCOMES",
    "FAULT_KINDS",
    "ITEM_FAULTS",
    "OUTCOMES",
    "SUCCESS_OUTCOMES",
    "ExitCode",
    "FaultKind",
    "Outcome",
]


class Outcome(StrEnum):
    """How one batch ended (the record's ``outcome``)."""

    SEALED = "sealed"
    """Every item enqueued; the server sealed the batch."""
    CACHED = "cached"
    """The create was an idempotent replay (``isCached``): nothing streamed."""
    NOT_SEALED = "not_sealed"
    """Retries ran out while the server still answered ``sealed: false``."""
    FAILED = "failed"
    """An error ended the batch (status, connection, protocol, violation, interrupted)."""
    DROPPED = "dropped"
    """Open model: a scheduled start no user could serve in time; nothing was sent."""


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
"""Every outcome, in the order reports list them (the categories of the outcome column)."""
SUCCESS_OUTCOMES: tuple[str, ...] = (Outcome.SEALED.value, Outcome.CACHED.value)
"""Outcomes that count as sealed (``sealed``, ``seal_rate``)."""
FAILURE_OUTCOMES: tuple[str, ...] = (Outcome.FAILED.value, Outcome.NOT_SEALED.value)
"""Outcomes that count as failed (``failed``, ``error_rate``)."""


class FaultKind(StrEnum):
    """A fault the generator can inject (``--faults NAME=RATE``; records: ``fault_<name>``)."""

    DUPLICATE = "duplicate"
    """Per item: a line sent twice (the server deduplicates it by index)."""
    GAP = "gap"
    """Per item: a line left out of the first stream (the batch stays unsealed)."""
    SHUFFLE = "shuffle"
    """Per batch: lines in random order."""
    MALFORMED = "malformed"
    """Per batch: one line that is not JSON (400)."""
    SCHEMA = "schema"
    """Per batch: one line that is JSON but not a batch item (422)."""
    OUT_OF_RANGE = "out_of_range"
    """Per batch: one line whose index is at or beyond runCount (422)."""
    OVERSIZED = "oversized"
    """Per batch: one item larger than the item limit (a PAYLOAD_TOO_LARGE run)."""


FAULT_KINDS: tuple[str, ...] = tuple(f.value for f in FaultKind)
"""Every fault kind, in the order of :class:`FaultKind`."""
ITEM_FAULTS: tuple[str, ...] = (FaultKind.DUPLICATE.value, FaultKind.GAP.value)
"""Faults drawn per item (their rate is a share of items)."""
BATCH_FAULTS: tuple[str, ...] = tuple(f for f in FAULT_KINDS if f not in ITEM_FAULTS)
"""Faults drawn per batch (their rate is a share of batches)."""


class ExitCode(IntEnum):
    """The process exit codes of ``loadkit`` commands and of locust runs of loadkit."""

    OK = 0
    FAILED = 1
    """locust's own failure (failed requests with no thresholds given, or it could not run);
    ``loadkit send``: the batch did not seal; any other error of a ``loadkit`` command."""
    CONFIG = 2
    """A bad option or file, an unwritable results directory, records that could not be
    written mid-run (nothing half-done is left looking complete)."""
    THRESHOLDS_FAILED = 3
    """A threshold failed, or a regression beyond its tolerance."""
    ABORTED = 4
    """The run stopped itself: the target rejected the secret key on every batch."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT)."""

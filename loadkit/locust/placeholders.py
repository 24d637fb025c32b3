"""Internal: records of batches that have no :class:`~loadkit.client.BatchResult`.

Two kinds: a start the open model dropped because no user was free within
``--drop-after`` (nothing was sent, outcome ``dropped``), and a batch killed mid-send when the
stop timeout ran out (outcome ``failed``, error kind ``interrupted``: whether the target
created or sealed it is unknown). Both are :meth:`~loadkit.records.BatchRecord.blank` rows
with the fields that are known.
"""

from __future__ import annotations

import time
from typing import Any

from loadkit import records as rec
from loadkit.vocabulary import Outcome

__all__ = ["dropped_record", "interrupted_record"]


def dropped_record(*, run_id: str | None, worker_id: str, user_id: int, seq: int,
                   intended_at: float, now: float, drop_after: float) -> dict[str, Any]:
    """The record of a scheduled start that no user could serve in time (nothing sent)."""
    return rec.BatchRecord.blank(
        run_id=run_id, worker_id=worker_id, user_id=user_id, seq=seq,
        intended_at=intended_at, started_at=now, ended_at=now,
        total_from_intended_ms=(now - intended_at) * 1000.0, outcome=Outcome.DROPPED.value,
        error_kind="dropped",
        error=f"open model: started {(now - intended_at):.3f} s late (bound "
              f"{drop_after:g} s)",
    ).as_dict()


def interrupted_record(*, run_id: str | None, worker_id: str, user_id: int, seq: int,
                       run_count: int, task_count: int, intended_at: float | None,
                       started_at: float, t0: float, stop_timeout: float) -> dict[str, Any]:
    """The record of a batch killed mid-send at stop (the stop timeout ran out).

    ``t0`` is the ``time.perf_counter()`` reading taken when the send began.
    """
    total_ms = (time.perf_counter() - t0) * 1000.0
    return rec.BatchRecord.blank(
        run_id=run_id, worker_id=worker_id, user_id=user_id, seq=seq,
        run_count=run_count, task_count=task_count,
        intended_at=intended_at, started_at=started_at,
        ended_at=started_at + total_ms / 1000.0, total_ms=total_ms,
        total_from_intended_ms=None if intended_at is None
        else (started_at - intended_at) * 1000.0 + total_ms,
        outcome=Outcome.FAILED.value, error_kind="interrupted",
        error="killed mid-send when the run stopped (stop timeout "
              f"{stop_timeout:g} s ran out): whether the "
              "target created or sealed this batch is unknown; raise --stop-timeout",
    ).as_dict()

"""The old home of the locust adapter, kept so that old imports keep working.

Everything lives in :mod:`loadkit.locust` now; importing this module imports that package
(which registers loadkit's flags and listeners with locust's events).
"""

from __future__ import annotations

from typing import Any

from loadkit.locust import (
    DEFAULT_STOP_TIMEOUT,
    EXIT_ABORTED,
    EXIT_CONFIG,
    EXIT_THRESHOLDS_FAILED,
    BatchUser,
)

# The module's other names, importable from here as before (not public):
from loadkit.locust.flags import given_options as _given  # noqa: F401
from loadkit.locust.messages import (  # noqa: F401
    MSG_ABORT,
    MSG_CHUNKS,
    MSG_FINAL,
    MSG_FINAL_DONE,
    MSG_PLAN,
    MSG_RECORDS,
)
from loadkit.locust.role import AUTH_STREAK  # noqa: F401
from loadkit.locust.stats import REQUEST_TYPE, BatchFailure  # noqa: F401

__all__ = ["DEFAULT_STOP_TIMEOUT", "EXIT_ABORTED", "EXIT_CONFIG", "EXIT_THRESHOLDS_FAILED",
           "BatchUser"]


def __getattr__(name: str) -> Any:
    # ``_run``, the old per-process singleton, is now this process's role object (it has
    # ``options`` and ``next_seq()``, which scripts reaching into it used).
    if name == "_run":
        from loadkit.locust.listeners import current_role  # noqa: PLC0415

        return current_role()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

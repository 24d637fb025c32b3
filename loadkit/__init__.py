"""loadkit: load-test Trigger.dev's 2-phase batch API.

What a notebook user types::

    import loadkit
    spec = loadkit.BatchSpec.parse(items="uniform:100:1000", payload_bytes="lognormal:512:1.0")
    run = loadkit.run(users=4, run_time="20s", items="uniform:100:1000")
    run.summary()

Importing loadkit never imports locust or gevent (locust monkey-patches at import and hangs
Jupyter kernels); load runs start locust in a subprocess. The names below are resolved
lazily, so that ``import loadkit`` stays cheap; type checkers see them through the
``TYPE_CHECKING`` imports.

**The public API** is what this module exports (``__all__``) plus these modules:
:mod:`loadkit.client`, :mod:`loadkit.server`, :mod:`loadkit.generators`,
:mod:`loadkit.analysis`, :mod:`loadkit.capacity_search`, :mod:`loadkit.plots`,
:mod:`loadkit.records`, :mod:`loadkit.thresholds`, :mod:`loadkit.metrics`, :mod:`loadkit.options`,
:mod:`loadkit.vocabulary`, :mod:`loadkit.wire` and :mod:`loadkit.errors`. Every other module
says "Internal" in its first docstring line and may change without notice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from loadkit import errors
    from loadkit.analysis import Run, load_run
    from loadkit.capacity_search import Capacity
    from loadkit.capacity_search.run import capacity
    from loadkit.client import BatchClient, BatchResult, ClientConfig, RetryPolicy
    from loadkit.distributions import Dist
    from loadkit.errors import ConfigError, LoadkitError
    from loadkit.generators import BatchSpec, ExpectedOutcome, Faults, GeneratedBatch
    from loadkit.runner import run
    from loadkit.server import ReferenceServer, ServerConfig
    from loadkit.vocabulary import ExitCode, FaultKind, Outcome

_EXPORTS: dict[str, str] = {
    # generators
    "BatchSpec": "loadkit.generators",
    "GeneratedBatch": "loadkit.generators",
    "ExpectedOutcome": "loadkit.generators",
    "Faults": "loadkit.generators",
    "Dist": "loadkit.distributions",
    # client
    "BatchClient": "loadkit.client",
    "BatchResult": "loadkit.client",
    "ClientConfig": "loadkit.client",
    "RetryPolicy": "loadkit.client",
    # reference server
    "ReferenceServer": "loadkit.server",
    "ServerConfig": "loadkit.server",
    # runs and analysis
    "run": "loadkit.runner",
    "Run": "loadkit.analysis",
    "load_run": "loadkit.analysis",
    "capacity": "loadkit.capacity_search.run",
    "Capacity": "loadkit.capacity_search",
    # vocabulary
    "Outcome": "loadkit.vocabulary",
    "FaultKind": "loadkit.vocabulary",
    "ExitCode": "loadkit.vocabulary",
    # errors
    "errors": "loadkit.errors",
    "ConfigError": "loadkit.errors",
    "LoadkitError": "loadkit.errors",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__",
    "BatchSpec", "GeneratedBatch", "ExpectedOutcome", "Faults", "Dist",
    "BatchClient", "BatchResult", "ClientConfig", "RetryPolicy",
    "ReferenceServer", "ServerConfig",
    "run", "Run", "load_run", "capacity", "Capacity",
    "Outcome", "FaultKind", "ExitCode",
    "errors", "ConfigError", "LoadkitError",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'loadkit' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

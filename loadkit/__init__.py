"""loadkit: load-test Trigger.dev's 2-phase batch API.

What a notebook user types::

    import loadkit
    spec = loadkit.BatchSpec.parse(items="uniform:100:1000", payload_bytes="lognormal:512:1.0")
    batch = spec.batch(0)

Importing loadkit never imports locust or gevent (locust monkey-patches at import and hangs
Jupyter kernels); load runs start locust in a subprocess. Names below are resolved lazily so
that ``import loadkit`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

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
    "RetryPolicy": "loadkit.retry",
    # reference server
    "ReferenceServer": "loadkit.server",
    "ServerConfig": "loadkit.server",
    # runs and analysis
    "run": "loadkit.runner",
    "Run": "loadkit.analysis",
    "load_run": "loadkit.analysis",
    # errors
    "errors": "loadkit.errors",
    "ConfigError": "loadkit.errors",
    "LoadkitError": "loadkit.errors",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__",
    "BatchSpec", "GeneratedBatch", "ExpectedOutcome", "Faults", "Dist",
    "BatchClient", "BatchResult", "RetryPolicy",
    "ReferenceServer", "ServerConfig",
    "run", "Run", "load_run",
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

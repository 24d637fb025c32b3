"""Tests of the declared public API: what loadkit exports, and which modules are internal."""

import ast
import importlib
from pathlib import Path

import pytest

import loadkit

PACKAGE = Path(loadkit.__file__).parent

EXPORTED = [
    "__version__",
    "BatchSpec", "GeneratedBatch", "ExpectedOutcome", "Faults", "Dist",
    "BatchClient", "BatchResult", "ClientConfig", "RetryPolicy",
    "ReferenceServer", "ServerConfig",
    "run", "Run", "load_run", "capacity", "Capacity",
    "Outcome", "FaultKind", "ExitCode",
    "errors", "ConfigError", "LoadkitError",
]
"""The names a notebook user may rely on; a change here is a change of the public API."""

PUBLIC_MODULES = {
    "loadkit", "loadkit.client", "loadkit.server", "loadkit.generators", "loadkit.analysis",
    "loadkit.plots", "loadkit.records", "loadkit.thresholds", "loadkit.metrics",
    "loadkit.options", "loadkit.vocabulary", "loadkit.wire", "loadkit.errors",
    "loadkit.locust", "loadkit.capacity_search", "loadkit.regression",
}
OLD_PATHS = {"loadkit.retry": "loadkit.client.retry", "loadkit.result": "loadkit.client.result",
             "loadkit.transport": "loadkit.client.transport",
             "loadkit.locust_users": "loadkit.locust"}
"""Old import paths kept working for users' code."""


def _modules() -> list[str]:
    """Every module of the package, found by its files (importing would start locust)."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _docstring(name: str) -> str:
    path = PACKAGE.parent / (name.replace(".", "/"))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.get_docstring(ast.parse(source.read_text())) or ""


def test_exported_members():
    """loadkit.__all__ is exactly the declared list, and every name in it resolves."""
    assert loadkit.__all__ == EXPORTED
    for name in EXPORTED:
        assert getattr(loadkit, name) is not None, name
    assert set(EXPORTED) <= set(dir(loadkit))


def test_lazy_exports_are_typed():
    """Each lazily exported name is also imported under TYPE_CHECKING from the same module."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names:
                    module = stmt.module if stmt.module != "loadkit" else f"loadkit.{alias.name}"
                    typed[alias.asname or alias.name] = module
    exports = loadkit._EXPORTS
    assert typed == {name: exports[name] for name in exports}


def test_unknown_attribute_is_an_attribute_error():
    """A name loadkit does not export raises AttributeError naming it."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = loadkit.no_such_name


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_public_modules_declare_what_they_export(name):
    """Every public module has __all__, and each name in it exists."""
    module = importlib.import_module(name) if name != "loadkit.locust" else None
    if module is None:  # importing the locust adapter registers with locust: read its source
        tree = ast.parse((PACKAGE / "locust" / "__init__.py").read_text())
        assert any(isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__"
                   for n in tree.body)
        return
    assert module.__all__, name
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member}"


def test_other_modules_are_marked_internal():
    """Every module outside the public API says so in its docstring's first line."""
    unmarked = [name for name in _modules()
                if name not in PUBLIC_MODULES and name not in OLD_PATHS
                and not _docstring(name).startswith("Internal")]
    assert not unmarked, unmarked


@pytest.mark.parametrize(("old", "new"), [(old, new) for old, new in sorted(OLD_PATHS.items())
                                           if new.startswith("loadkit.client")])
def test_old_import_paths_are_the_new_modules(old, new):
    """loadkit.retry, .result and .transport are the modules under loadkit.client."""
    assert importlib.import_module(old) is importlib.import_module(new)

"""Internal: the notebooks that ship in the package, and ``loadkit notebooks DIR``.

The ``.ipynb`` files next to this module are the only copies (package data, so a wheel
carries them): ``quickstart`` (a short run and a look at it), ``analyze_run`` (any run
directory, a papermill parameter) and ``capacity`` (a capacity search). :func:`copy_to` puts
them into a folder of the user's and never overwrites a file that is already there.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NAMES", "copy_to", "source"]

NAMES = ("quickstart.ipynb", "analyze_run.ipynb", "capacity.ipynb")
"""The notebooks ``loadkit notebooks`` copies, in the order it copies them."""


def source(name: str) -> Path:
    """The shipped notebook ``name`` (one of :data:`NAMES`)."""
    return Path(__file__).resolve().with_name(name)


def copy_to(folder: str | Path) -> list[tuple[Path, bool]]:
    """Copy every notebook into ``folder`` (made if missing); ``(path, copied)`` for each.

    ``copied`` is False for a file that was already there: it is left as it was. Raises
    :class:`OSError` when the folder cannot be made or written to.
    """
    target = Path(folder).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    done = []
    for name in NAMES:
        path = target / name
        data = source(name).read_bytes()
        try:
            fh = open(path, "xb")  # exclusive: an existing file is never replaced  # noqa: SIM115
        except FileExistsError:
            done.append((path, False))
            continue
        try:
            with fh:
                fh.write(data)
        except OSError:  # a full disk: no half notebook left to be kept next time
            path.unlink(missing_ok=True)
            raise
        done.append((path, True))
    return done

"""Internal: the locustfiles that ship in the package; ``loadkit locustfile`` prints the path.

``locust -f "$(loadkit locustfile)" --headless -u 4 -r 4 -t 20s`` works wherever loadkit is
installed, with no checkout. The files live in a folder of their own because locust puts a
locustfile's folder first on ``sys.path`` while it imports it: this folder holds nothing that
could stand in for another module. Nothing here imports locust.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STREAM"]

STREAM = Path(__file__).resolve().with_name("stream.py")
"""The locustfile of loadkit's batch user (the repository's ``locustfiles/stream.py`` is it)."""

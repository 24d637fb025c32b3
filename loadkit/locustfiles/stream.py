"""Internal (a locustfile, not an import path): stream batches through the 2-phase batch API.

    locust -f "$(loadkit locustfile)" --headless -u 4 -r 4 -t 20s

No ``--host`` (and no ``TRIGGER_API_URL``): the reference server is started for the run.
Flags: ``loadkit options`` lists every one with its default (locust's own ``--help`` prints
before it loads this file, so it cannot show them). Records go to ``results/<run id>/``.
Everything lives in :mod:`loadkit.locust`; the repository's ``locustfiles/stream.py``
re-exports this file, so the two cannot drift apart.
"""

from loadkit.locust import BatchUser

__all__ = ["BatchUser"]

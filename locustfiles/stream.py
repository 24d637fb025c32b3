"""Stream generated batches through Trigger.dev's 2-phase batch API with locust.

    locust -f locustfiles/stream.py --headless -u 4 -r 4 -t 20s

No ``--host`` (and no ``TRIGGER_API_URL``): the reference server is started for the run.
Flags: ``loadkit options`` lists every one with its default (locust's own ``--help`` prints
before it loads this file, so it cannot show them). Records go to ``results/<run id>/``.
This is the locustfile that ships in the package (``loadkit/locustfiles/stream.py``, whose
path ``loadkit locustfile`` prints), re-exported for a checkout: one file, no copy to drift.
"""

from loadkit.locustfiles.stream import *  # noqa: F403 - its __all__: the users locust runs

"""Stream generated batches through Trigger.dev's 2-phase batch API with locust.

    locust -f locustfiles/stream.py --headless -u 4 -r 4 -t 20s

No ``--host`` (and no ``TRIGGER_API_URL``): the reference server is started for the run.
Flags: ``locust -f locustfiles/stream.py --help`` (section "Custom arguments"). Records go
to ``results/<run id>/``. Everything lives in :mod:`loadkit.locust_users`.
"""

from loadkit.locust_users import BatchUser

__all__ = ["BatchUser"]

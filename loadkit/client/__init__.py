"""The client side of the batch API: send generated batches, measure, retry, judge.

Modules, one concern each (the template is :mod:`loadkit.server`):

==============  ===========================================================================
``client``      :class:`BatchClient`: the 2-phase protocol, layered ``send`` → create →
                streams → one stream; the only module that does I/O on purpose
``config``      :class:`ClientConfig`: every client setting, checked once
``body``        :class:`~loadkit.client.body.TimedBody`: the request body that times each
                chunk's write and stall (backpressure)
``transport``   :class:`MeteredTransport`: httpx sockets that write non-blocking and count
                the time a write waits for the target
``retry``       :class:`RetryPolicy`: the one retry policy (SDK parity by default)
``answers``     reading answers: redaction of secrets, parsing, and the one mapping from
                transport exceptions and statuses to :mod:`loadkit.errors`
``judge``       the truth checks, as pure functions of the expected outcome and the answer
``result``      :class:`BatchResult`, :class:`Attempt`, :class:`Violation`: what was measured
==============  ===========================================================================

Importing it never imports locust or gevent.
"""

from __future__ import annotations

from loadkit.client.client import BatchClient, CreatedBatch
from loadkit.client.config import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY_TIMEOUT,
    SDK_VERSION,
    ClientConfig,
)
from loadkit.client.result import Attempt, BatchResult, ChunkTimings, End, Violation
from loadkit.client.retry import RESEND_MODES, RETRY_FIELDS, RateLimitWait, RetryPolicy
from loadkit.client.transport import MeteredTransport, WriteMeter

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "RESEND_MODES",
    "RETRY_FIELDS",
    "SDK_VERSION",
    "Attempt",
    "BatchClient",
    "BatchResult",
    "ChunkTimings",
    "ClientConfig",
    "CreatedBatch",
    "End",
    "MeteredTransport",
    "RateLimitWait",
    "RetryPolicy",
    "Violation",
    "WriteMeter",
]

"""Internal: the batch token bucket, one per environment, as the real server's batch limiter works.

Each create costs ``runCount`` tokens; a rejected create costs nothing. ``refill`` tokens are
added every ``interval_s`` up to ``max_tokens``. The answer carries the headers a client
needs to wait the right amount.

A create whose ``runCount`` exceeds ``max_tokens`` can never be allowed: the real server
answers it 429 like any other (with the same headers, so a client that trusts them waits in
vain). This server does the same, faithfully, but its message says so and names both numbers
(``wire.msg.rate_limit_over_bucket``), so that a user sees why the retries never succeed.

Intervals are measured on ``time.monotonic()``; the wall clock only gives the epoch value of
``x-ratelimit-reset``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from loadkit import wire
from loadkit.server.config import RateLimit

__all__ = ["TokenBucket"]

_LIMIT = wire.Header.RATELIMIT_LIMIT.encode()
_REMAINING = wire.Header.RATELIMIT_REMAINING.encode()
_RESET = wire.Header.RATELIMIT_RESET.encode()
_RETRY_AFTER = wire.Header.RETRY_AFTER.encode()


class TokenBucket:
    """A discrete-refill token bucket; ``take`` returns None when allowed, else 429 headers."""

    def __init__(
        self,
        limit: RateLimit,
        reset_unit: str = "s",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.reset_unit = reset_unit
        self._clock = clock
        self._wall = wall
        self.tokens = limit.max_tokens
        self._last_refill = clock()

    def _refill(self, now: float) -> None:
        steps = int((now - self._last_refill) // self.limit.interval_s)
        if steps > 0:
            self.tokens = min(self.limit.max_tokens, self.tokens + steps * self.limit.refill)
            self._last_refill += steps * self.limit.interval_s

    def never_enough(self, cost: int) -> bool:
        """True when ``cost`` exceeds what the bucket can ever hold (every take is refused)."""
        return cost > self.limit.max_tokens

    def take(self, cost: int) -> list[tuple[bytes, bytes]] | None:
        """Take ``cost`` tokens, or return the headers of a 429 answer (nothing is taken)."""
        now = self._clock()
        self._refill(now)
        if cost <= self.tokens:
            self.tokens -= cost
            return None
        deficit = cost - self.tokens
        refills = max(1, math.ceil(deficit / self.limit.refill))
        wait = self._last_refill + refills * self.limit.interval_s - now
        retry_after = max(1, math.ceil(wait))
        reset = self._wall() + wait
        # rounded up (the real batch limiter rounds its epoch seconds down: docs/batch-api.md)
        stamp = math.ceil(reset) if self.reset_unit == "s" else math.ceil(reset * 1000)
        return [
            (_LIMIT, str(self.limit.max_tokens).encode()),
            (_REMAINING, str(max(0, self.tokens)).encode()),
            (_RESET, str(stamp).encode()),
            (_RETRY_AFTER, str(retry_after).encode()),
        ]

"""The batch token bucket, one per environment, as the real server's batch limiter works.

Each create costs ``runCount`` tokens; a rejected create costs nothing. ``refill`` tokens are
added every ``interval_s`` up to ``max_tokens``. The answer carries the headers a client
needs to wait the right amount.
"""

from __future__ import annotations

import math
import time

from loadkit import wire
from loadkit.server.config import RateLimit

__all__ = ["TokenBucket"]


class TokenBucket:
    """A discrete-refill token bucket; ``take`` returns None when allowed, else 429 headers."""

    def __init__(self, limit: RateLimit, reset_unit: str = "s", clock=time.time) -> None:
        self.limit = limit
        self.reset_unit = reset_unit
        self._clock = clock
        self.tokens = limit.max_tokens
        self._last_refill = clock()

    def _refill(self, now: float) -> None:
        steps = int((now - self._last_refill) // self.limit.interval_s)
        if steps > 0:
            self.tokens = min(self.limit.max_tokens, self.tokens + steps * self.limit.refill)
            self._last_refill += steps * self.limit.interval_s

    def take(self, cost: int) -> list[tuple[bytes, bytes]] | None:
        """Take ``cost`` tokens, or return the headers of a 429 answer (nothing is taken)."""
        now = self._clock()
        self._refill(now)
        if cost <= self.tokens:
            self.tokens -= cost
            return None
        deficit = cost - self.tokens
        refills = max(1, math.ceil(deficit / self.limit.refill))
        reset_at = self._last_refill + refills * self.limit.interval_s
        retry_after = max(1, math.ceil(reset_at - now))
        reset = reset_at if self.reset_unit == "s" else reset_at * 1000
        return [
            (wire.Header.RATELIMIT_LIMIT.encode(), str(self.limit.max_tokens).encode()),
            (wire.Header.RATELIMIT_REMAINING.encode(), str(max(0, self.tokens)).encode()),
            (wire.Header.RATELIMIT_RESET.encode(), str(math.ceil(reset)).encode()),
            (wire.Header.RETRY_AFTER.encode(), str(retry_after).encode()),
        ]

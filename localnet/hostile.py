"""Hostile-cluster behaviour for `psyche localnet --rate-limit N --latency MS`: what public RPC providers do
to a client, so the SDK's back-off and resend paths are tested against the real server rather than a mock.

The rate limit is one token bucket for the whole node (every client is 127.0.0.1, so per-IP limits would be
the same thing): N tokens a second, a burst of N. A JSON-RPC call takes one token (a batch one per call,
as providers bill them; a websocket message one per call too); without one, HTTP answers 429 with a
`Retry-After` header in whole seconds, and a websocket call gets a JSON-RPC error with code 429."""
from __future__ import annotations

import asyncio
import math
import time


class RateLimiter:
    """A token bucket: `rate` calls a second, at most `rate` at once after an idle second."""

    def __init__(self, rate: float, clock=time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be positive")
        self.rate, self.clock = float(rate), clock
        self.tokens, self.stamp = float(rate), clock()
        self.refused = 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n: int = 1) -> float:
        """0.0 when `n` calls may go ahead (their tokens are taken), else the seconds until they could. A batch
        bigger than the burst costs the whole (full) bucket, or it could never be answered."""
        self._refill()
        need = min(float(n), self.rate)
        if self.tokens >= need:
            self.tokens -= need
            return 0.0
        self.refused += 1
        return (need - self.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """The `Retry-After` header value: whole seconds, at least 1 (RFC 9110 allows no fractions)."""
        return str(max(1, math.ceil(wait)))


class Latency:
    """`ms` milliseconds added to every reply, half before the call is handled (the request travelling)
    and half after (the reply travelling), so a read answers with state that is already slightly old."""

    def __init__(self, ms: float) -> None:
        self.half = max(0.0, ms) / 2000.0

    async def before(self) -> None:
        if self.half:
            await asyncio.sleep(self.half)

    async def after(self) -> None:
        if self.half:
            await asyncio.sleep(self.half)

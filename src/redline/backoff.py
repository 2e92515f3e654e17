"""Exponential backoff with jitter: one formula for reconnects, retries and redelivery delays."""

from __future__ import annotations

import asyncio
import logging
import random

__all__ = ["Backoff", "delay_for"]

log = logging.getLogger(__name__)


def delay_for(attempt: int, base: float, cap: float, jitter: float = 0.5) -> float:
    """Seconds to wait before attempt number `attempt` (1 = first retry).

    Grows as ``base * 2**(attempt-1)`` up to `cap`; `jitter` (0..1) is the fraction of that
    delay drawn at random, so that many clients failing together do not retry together.
    """
    raw = min(cap, base * 2.0 ** max(0, attempt - 1))
    return raw * (1 - jitter) + random.uniform(0, raw * jitter)


class Backoff:
    """Retry pacing for a loop: logs each step up to the cap (not every failure), and recovery."""

    def __init__(self, what: str, base: float = 0.1, cap: float = 5.0) -> None:
        self.what, self.base, self.cap = what, base, cap
        self.attempt = 0
        self.last_error = ""

    async def failed(self, exc: BaseException) -> None:
        self.attempt += 1
        self.last_error = str(exc) or type(exc).__name__
        delay = delay_for(self.attempt, self.base, self.cap, jitter=0.2)
        if self.base * 2 ** (self.attempt - 2) < self.cap:
            log.warning(
                "%s failed attempt=%d error=%r retry_in=%.2fs",
                self.what,
                self.attempt,
                self.last_error,
                delay,
            )
        await asyncio.sleep(delay)

    def succeeded(self) -> None:
        if self.attempt:
            log.info("%s recovered after attempts=%d", self.what, self.attempt)
        self.attempt = 0

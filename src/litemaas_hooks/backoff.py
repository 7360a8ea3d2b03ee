"""Exponential backoff with jitter and a cap, for reconnecting to a database that went away.

The delay starts at ``initial_delay_seconds``, is multiplied by ``factor`` after every failure, gets
+-``jitter`` (10 % by default) so a fleet of relays does not reconnect in lock-step, and never
exceeds ``max_delay_seconds``. ``reset()`` after a success. There is no give-up deadline: the relay
is crash-only and long-running, so it retries for as long as it runs.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive failed attempts: ``initial * factor**n`` +- jitter, capped."""

    def __init__(
        self,
        *,
        initial_delay_seconds: float = 1.0,
        max_delay_seconds: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.1,
    ) -> None:
        if initial_delay_seconds <= 0 or max_delay_seconds <= 0:
            raise ValueError("backoff delays must be > 0 seconds")
        if factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")
        self.initial_delay_seconds = initial_delay_seconds
        self.max_delay_seconds = max_delay_seconds
        self.factor = factor
        self.jitter = jitter
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last ``reset()``."""
        return self._failures

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        base = self.initial_delay_seconds * self.factor ** min(self._failures, 64)
        self._failures += 1
        spread = 1.0 + self.jitter * (2.0 * random.random() - 1.0)
        return min(self.max_delay_seconds, base * spread)

    def reset(self) -> None:
        """Forget the failures (call after a successful attempt)."""
        self._failures = 0

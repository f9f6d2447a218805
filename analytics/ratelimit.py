"""A budget per key (a truncated address prefix, a user name): a token bucket per key, in memory.

Used for consent decisions (each costs an fsynced ledger row kept for years, so a client that posts decisions
in a loop, or a bot in an opt-out region that never keeps its cookie, gets a bounded number of them) and for
dashboard logins (password guessing). Runs on the event loop: no lock, no I/O; the table of buckets is
bounded and forgets full buckets first.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class PrefixBudget:
    def __init__(
        self,
        per_minute: int,
        *,
        max_prefixes: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_prefixes = max_prefixes
        self._now = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # prefix -> (tokens, at)

    def take(self, prefix: str | None) -> bool:
        """Spend one decision for ``prefix``; False when its budget is used up. Without an address there is
        no prefix to account to: those share one bucket."""
        key = prefix or ""
        now = self._now()
        tokens, at = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + max(0.0, now - at) * self._rate)  # (a clock set back)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= self._max_prefixes:
            self._forget(now)
        self._buckets[key] = (tokens - 1, now)
        return True

    def retry_after(self, prefix: str | None) -> int:
        """Whole seconds until ``prefix`` may record another decision."""
        tokens, _ = self._buckets.get(prefix or "", (self._capacity, 0.0))
        return max(1, int((1 - tokens) / self._rate) + 1)

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing); if none has, the oldest half."""
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self._rate >= self._capacity
        ]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]

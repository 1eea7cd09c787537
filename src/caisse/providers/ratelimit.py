"""Per-account budgets of provider API calls, so background work never trips a provider's
rate limits.

One token bucket per ``(account, scope)``: ``rate(scope)`` calls per second (the provider's
limit times the share given to background work), refilled continuously, at most one second of
burst. ``acquire`` waits until a call may be made. Each provider states its limits next to its
client (``providers/stripe/ratelimit.py``, ``providers/xsolla/ratelimit.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(
        self,
        limits: Mapping[str, float],
        *,
        share: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not limits:
            raise ValueError("at least one limit is needed")
        self._limits = dict(limits)
        self._share = share
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def rate(self, scope: str) -> float:
        """Calls per second for ``scope``; an unknown scope gets the strictest limit."""
        return self._limits.get(scope, min(self._limits.values())) * self._share

    def acquire(self, account: str, scope: str) -> None:
        """Take one call from the account's bucket, sleeping until one is available."""
        while True:
            with self._lock:
                now = self._monotonic()
                rate = self.rate(scope)
                bucket = self._buckets.setdefault((account, scope), _Bucket(rate, rate, now))
                bucket.tokens = min(rate, bucket.tokens + (now - bucket.updated) * rate)
                bucket.updated = now
                if bucket.tokens >= 1.0:
                    bucket.tokens -= 1.0
                    return
                wait = (1.0 - bucket.tokens) / rate
            self.waited += wait
            self._sleep(wait)

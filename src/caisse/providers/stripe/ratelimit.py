"""A per-tenant budget of Stripe API calls, so reconciliation never trips Stripe's rate limits.

Stripe allows 100 read/write operations per second in live mode and 25 in test mode, per
account (docs.stripe.com/rate-limits); a tenant's own checkout traffic shares that budget, so
background work takes at most the configured share of it. One token bucket per (tenant,
environment): ``acquire`` waits until a call may be made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LIMITS = {"live": 100.0, "test": 25.0}


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        *,
        share: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._share = share
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def rate(self, environment: str) -> float:
        return LIMITS.get(environment, LIMITS["test"]) * self._share

    def acquire(self, tenant_id: str, environment: str) -> None:
        """Take one call from the tenant's bucket, sleeping until one is available."""
        while True:
            with self._lock:
                now = self._monotonic()
                rate = self.rate(environment)
                bucket = self._buckets.setdefault(
                    (tenant_id, environment), _Bucket(rate, rate, now)
                )
                bucket.tokens = min(rate, bucket.tokens + (now - bucket.updated) * rate)
                bucket.updated = now
                if bucket.tokens >= 1.0:
                    bucket.tokens -= 1.0
                    return
                wait = (1.0 - bucket.tokens) / rate
            self.waited += wait
            self._sleep(wait)

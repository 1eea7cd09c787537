"""Stripe's budget of API calls per tenant, so reconciliation never trips Stripe's rate limits.

Stripe allows 100 read/write operations per second in live mode and 25 in test mode, per
account (docs.stripe.com/rate-limits); a tenant's own checkout traffic shares that budget, so
background work takes at most the configured share of it. One bucket per (tenant, environment)
(the buckets themselves are :class:`caisse.providers.ratelimit.TokenBuckets`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from caisse.providers.ratelimit import TokenBuckets

LIMITS = {"live": 100.0, "test": 25.0}


class RateLimiter(TokenBuckets):
    """Token buckets at Stripe's limits; ``acquire(tenant_id, environment)``."""

    def __init__(
        self,
        *,
        share: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(LIMITS, share=share, monotonic=monotonic, sleep=sleep)

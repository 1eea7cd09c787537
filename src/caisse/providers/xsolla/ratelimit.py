"""The budget of Xsolla merchant-API calls that reconciliation allows itself.

Xsolla documents no numeric rate limit for the Pay Station report calls (neither the "Find
transactions" pages nor the API's Getting Started page state one; an overloaded API answers 429).
So caisse stays modest: at most 2 calls per second per Xsolla merchant account, whatever the
environment (test is the sandbox of the same account), and a 429 ends that account's pass until
the next run instead of retrying at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from caisse.providers.ratelimit import TokenBuckets

CALLS_PER_SECOND: Final = 2.0
SCOPE: Final = "merchant"


class XsollaRateLimiter(TokenBuckets):
    """``acquire_for(merchant_id)`` before every merchant-API call."""

    def __init__(
        self,
        *,
        share: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__({SCOPE: CALLS_PER_SECOND}, share=share, monotonic=monotonic, sleep=sleep)

    def acquire_for(self, merchant_id: str) -> None:
        self.acquire(f"xsolla:{merchant_id}", SCOPE)

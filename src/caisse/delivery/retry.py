"""When to try a partner again, as a value object (procrastinate's ``RetryDecision`` habit).

Policy (defaults; every number is a field of :class:`RetryPolicy`):

- schedule: the Standard Webhooks example, 10 attempts, delay before each one
  ``0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h`` — nominally 75 h 35 min 5 s
  (~3 days) from first to last attempt; a paid order deserves a long tail;
- each delay is multiplied by a uniform factor in [0.8, 1.2] (±20 % jitter, as Svix does) so a
  partner coming back up is not hit by every queued message in the same second;
- 2xx: done. 410 Gone: give up and disable the endpoint (spec: "Delivery success and failure");
- 429, 502, 503, 504 and timeouts: wait at least ``min_backoff`` (60 s) — the partner is
  overloaded, a 5 s retry only adds load;
- ``Retry-After`` (delta-seconds or HTTP-date) is clamped to [``min_backoff``, 24 h] and may only
  *lengthen* the scheduled wait: a partner answering ``Retry-After: 1`` to every attempt must not
  burn the three-day schedule in ten minutes;
- any other status, 3xx included, and every network error: retry on the schedule; after the
  last attempt, give up.

An endpoint is disabled once it has failed without a single success for ``DISABLE_AFTER``
(5 days, as Svix does) *and* at least ``DISABLE_MIN_FAILURES`` (5) attempts failed in that
time: two lone failures five days apart (a quiet endpoint) are not "failing for 5 days"; see
:func:`endpoint_should_disable`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from caisse.clock import check_aware

__all__ = [
    "DEFAULT_SCHEDULE",
    "DISABLE_AFTER",
    "DISABLE_MIN_FAILURES",
    "RetryDecision",
    "RetryPolicy",
    "endpoint_should_disable",
    "parse_retry_after",
]

_SECOND = dt.timedelta(seconds=1)
_MINUTE = dt.timedelta(minutes=1)
_HOUR = dt.timedelta(hours=1)

#: Delay before attempt n (index n-1); Standard Webhooks spec, "Deliverability and reliability".
DEFAULT_SCHEDULE: tuple[dt.timedelta, ...] = (
    dt.timedelta(0),
    5 * _SECOND,
    5 * _MINUTE,
    30 * _MINUTE,
    2 * _HOUR,
    5 * _HOUR,
    10 * _HOUR,
    14 * _HOUR,
    20 * _HOUR,
    24 * _HOUR,
)
DISABLE_AFTER = dt.timedelta(days=5)
DISABLE_MIN_FAILURES = 5

_THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
_THROTTLE_ERRORS = frozenset({"timeout"})


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after one attempt: retry at ``retry_at``, or stop (``give_up``)."""

    retry_at: dt.datetime | None
    give_up: bool
    disable_endpoint: bool
    reason: str

    @property
    def delivered(self) -> bool:
        """True when the attempt succeeded: nothing left to do."""
        return self.retry_at is None and not self.give_up


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """``Retry-After`` as a delay (RFC 9110 §10.2.3: seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        # Cap before building a timedelta: a 40-digit header must not overflow it.
        return dt.timedelta(seconds=min(int(value), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC
        when = when.replace(tzinfo=dt.UTC)
    return max(when - now, dt.timedelta(0))


def _uniform(low: float, high: float) -> float:
    return random.uniform(low, high)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The delivery retry policy; ``uniform`` is injectable so tests can pin the jitter."""

    schedule: tuple[dt.timedelta, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    min_backoff: dt.timedelta = 60 * _SECOND
    max_retry_after: dt.timedelta = 24 * _HOUR
    uniform: Callable[[float, float], float] = field(default=_uniform, compare=False)

    def __post_init__(self) -> None:
        if not self.schedule:
            raise ValueError("a retry schedule needs at least one attempt")
        if any(step < dt.timedelta(0) for step in self.schedule):
            raise ValueError("retry delays cannot be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if not dt.timedelta(0) <= self.min_backoff <= self.max_retry_after:
            raise ValueError("min_backoff must be between 0 and max_retry_after")

    @property
    def max_attempts(self) -> int:
        """Total attempts, the first one included."""
        return len(self.schedule)

    @property
    def nominal_span(self) -> dt.timedelta:
        """Time from the first to the last attempt without jitter."""
        return sum(self.schedule, dt.timedelta(0))

    def _jittered(self, delay: dt.timedelta) -> dt.timedelta:
        if not delay or not self.jitter:
            return delay
        factor = self.uniform(1 - self.jitter, 1 + self.jitter)
        factor = min(max(factor, 1 - self.jitter), 1 + self.jitter)
        return delay * factor

    def decide(
        self,
        attempt_number: int,
        *,
        status_code: int | None,
        error_kind: str | None,
        retry_after: str | None,
        now: dt.datetime,
    ) -> RetryDecision:
        """Decide after attempt ``attempt_number`` (1 = the first) ended as described."""
        now = check_aware(now)
        if attempt_number < 1:
            raise ValueError("attempt numbers start at 1")
        if error_kind is None and status_code is not None and 200 <= status_code <= 299:
            return RetryDecision(None, give_up=False, disable_endpoint=False, reason="delivered")
        what = f"status {status_code}" if status_code is not None else (error_kind or "error")
        if error_kind is None and status_code == 410:
            return RetryDecision(
                None, give_up=True, disable_endpoint=True, reason="410 Gone: endpoint retired"
            )
        if attempt_number >= self.max_attempts:
            return RetryDecision(
                None,
                give_up=True,
                disable_endpoint=False,
                reason=f"{what}: {self.max_attempts} attempts exhausted",
            )

        delay = self._jittered(self.schedule[attempt_number])
        reason = f"{what}: retry {attempt_number + 1}/{self.max_attempts} on schedule"
        throttled = status_code in _THROTTLE_STATUSES or error_kind in _THROTTLE_ERRORS
        if throttled and delay < self.min_backoff:
            delay = self.min_backoff
            reason = f"{what}: retry {attempt_number + 1}/{self.max_attempts} after back-off"
        asked = parse_retry_after(retry_after, now)
        if asked is not None:
            asked = min(max(asked, self.min_backoff), self.max_retry_after)
            if asked > delay:
                delay = asked
                reason = f"{what}: retry {attempt_number + 1}/{self.max_attempts} per Retry-After"
        return RetryDecision(now + delay, give_up=False, disable_endpoint=False, reason=reason)


def endpoint_should_disable(
    first_failure_at: dt.datetime | None,
    now: dt.datetime,
    window: dt.timedelta = DISABLE_AFTER,
    *,
    failures: int | None = None,
    min_failures: int = DISABLE_MIN_FAILURES,
) -> bool:
    """True once an endpoint has failed for ``window`` straight (a success resets the clock)
    with at least ``min_failures`` failed attempts since; ``failures=None`` asks about the
    window only (the caller counts attempts only once the window has passed)."""
    if first_failure_at is None:
        return False
    if check_aware(now) - check_aware(first_failure_at) < window:
        return False
    return failures is None or failures >= min_failures

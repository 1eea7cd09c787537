"""The knobs of the ``deliver`` job, as one value carried by the :class:`~caisse.runtime.Runtime`.

Defaults are the documented policy (docs/webhooks.md); tests build a Runtime with their own
``DeliveryOptions`` (a pinned-jitter :class:`RetryPolicy`, a short deadline) so that a fake
clock drives the whole schedule exactly, with no module global to patch.

``endpoint_concurrency`` is a cap **per worker process** (per event loop): with N processes an
endpoint sees at most N × cap concurrent requests. A database-wide cap would need an in-flight
marker per delivery that the job table does not have (a claimed job waiting for a local slot
is ``running`` too); per-process slots are what keep one dead partner from slowing the others,
which is their job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from caisse.delivery.retry import RetryPolicy

__all__ = ["DEFAULT_DEADLINE_SECONDS", "DeliveryOptions"]

#: DESIGN.md / seed 004: the partner answers in under 10 s, everything included.
DEFAULT_DEADLINE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Retry policy, total deadline and per-endpoint concurrency of partner deliveries."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: float = DEFAULT_DEADLINE_SECONDS
    endpoint_concurrency: int = 4
    #: How long a job waits for a free slot of its endpoint before it is put back.
    busy_wait: float = 0.5
    #: When a job put back runs again (± jitter); it does not count as an attempt.
    busy_delay: dt.timedelta = dt.timedelta(seconds=2)

    def __post_init__(self) -> None:
        if self.deadline <= 0:
            raise ValueError("the delivery deadline must be positive")
        if self.endpoint_concurrency < 1:
            raise ValueError("endpoint_concurrency must be at least 1")
        if self.busy_wait < 0 or self.busy_delay < dt.timedelta(0):
            raise ValueError("busy_wait and busy_delay cannot be negative")

"""Everything a process needs, built once from the settings and passed down explicitly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from caisse.clock import Clock, SystemClock
from caisse.config import Settings
from caisse.crypto import SecretBox
from caisse.delivery.options import DeliveryOptions
from caisse.providers.stripe.client import StripeGateway
from caisse.storage.db import Database

StripeFactory = Callable[[str, "str | None"], StripeGateway]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    box: SecretBox
    clock: Clock = field(default_factory=SystemClock)
    stripe_factory: StripeFactory | None = None
    # Retry policy, deadline and per-endpoint cap of partner deliveries (tests pin the jitter).
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    # Set when new jobs were committed in this process, so the in-process worker wakes at once.
    wakeups: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            box=SecretBox(settings.master_keys),
            clock=clock or SystemClock(),
        )

    def stripe(self, secret_key: str, account: str | None = None) -> StripeGateway:
        if self.stripe_factory is not None:
            return self.stripe_factory(secret_key, account)
        return StripeGateway(secret_key, api_base=self.settings.stripe_api_base, account=account)

    def wake_workers(self) -> None:
        for wake in list(self.wakeups):
            wake()

    def close(self) -> None:
        self.db.dispose()


def threadsafe_waker(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(event.set)

    return wake

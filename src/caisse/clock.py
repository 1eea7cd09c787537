"""Time, always aware and in UTC, behind a protocol so tests can freeze or step it."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware, UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = check_aware(start or dt.datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        return self._now

    def set(self, when: dt.datetime) -> None:
        self._now = check_aware(when)


def check_aware(value: dt.datetime) -> dt.datetime:
    """Refuse naive datetimes: a naive time in a payment log is a bug waiting for a DST change."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: caisse only handles aware UTC datetimes")
    return value.astimezone(UTC)


def from_timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Databases (SQLite) may hand back naive values that we stored as UTC; make them aware."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)

"""Retry policy: the documented schedule exactly, jitter bounds, throttling, Retry-After, 410."""

from __future__ import annotations

import datetime as dt
import email.utils
import random

import pytest

from caisse.clock import FrozenClock
from caisse.delivery.retry import (
    DEFAULT_SCHEDULE,
    DISABLE_MIN_FAILURES,
    RetryDecision,
    RetryPolicy,
    endpoint_should_disable,
    parse_retry_after,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def no_jitter() -> RetryPolicy:
    return RetryPolicy(uniform=lambda low, high: 1.0)


def fail(policy: RetryPolicy, attempt: int, **kwargs: object) -> RetryDecision:
    params: dict[str, object] = {"status_code": 500, "error_kind": None, "retry_after": None}
    params.update(kwargs)
    return policy.decide(attempt, now=NOW, **params)  # type: ignore[arg-type]


def test_schedule_is_the_standard_webhooks_example() -> None:
    assert DEFAULT_SCHEDULE == (
        0 * S,
        5 * S,
        5 * M,
        30 * M,
        2 * H,
        5 * H,
        10 * H,
        14 * H,
        20 * H,
        24 * H,
    )
    policy = RetryPolicy()
    assert policy.max_attempts == 10
    assert policy.nominal_span == 75 * H + 35 * M + 5 * S  # ~3 days


def test_schedule_walk_with_a_frozen_clock() -> None:
    policy = no_jitter()
    clock = FrozenClock(NOW)
    first = clock.now()
    attempt = 1
    while True:
        decision = policy.decide(
            attempt, status_code=503, error_kind=None, retry_after=None, now=clock.now()
        )
        if decision.give_up:
            break
        assert decision.retry_at is not None
        clock.set(decision.retry_at)
        attempt += 1
    assert attempt == 10
    # 503 is a throttling status: the 5 s step is floored to 60 s, the rest unchanged.
    assert clock.now() - first == policy.nominal_span - 5 * S + 60 * S
    assert decision.reason == "status 503: 10 attempts exhausted"
    assert not decision.disable_endpoint


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 5 * S), (2, 5 * M), (3, 30 * M), (4, 2 * H), (5, 5 * H), (9, 24 * H)],
)
def test_delay_after_each_failed_attempt(attempt: int, delay: dt.timedelta) -> None:
    decision = fail(no_jitter(), attempt)
    assert decision == RetryDecision(
        retry_at=NOW + delay,
        give_up=False,
        disable_endpoint=False,
        reason=f"status 500: retry {attempt + 1}/10 on schedule",
    )


def test_gives_up_after_the_last_attempt() -> None:
    decision = fail(no_jitter(), 10)
    assert decision.give_up
    assert decision.retry_at is None
    assert fail(no_jitter(), 11).give_up


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    decision = fail(no_jitter(), 3, status_code=status)
    assert decision.delivered
    assert decision == RetryDecision(
        None, give_up=False, disable_endpoint=False, reason="delivered"
    )


@pytest.mark.parametrize("status", [199, 300, 301, 302, 307, 308, 400, 401, 404, 500])
def test_everything_else_is_a_failure_on_schedule(status: int) -> None:
    decision = fail(no_jitter(), 2, status_code=status)
    assert not decision.delivered
    assert decision.retry_at == NOW + 5 * M


def test_2xx_with_a_body_read_error_is_not_delivered() -> None:
    decision = fail(no_jitter(), 2, status_code=200, error_kind="timeout")
    assert not decision.delivered
    assert decision.retry_at == NOW + 5 * M


def test_410_gives_up_and_disables_the_endpoint() -> None:
    decision = fail(no_jitter(), 1, status_code=410)
    assert decision.give_up
    assert decision.disable_endpoint
    assert decision.retry_at is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status_code": 429},
        {"status_code": 502},
        {"status_code": 503},
        {"status_code": 504},
        {"status_code": None, "error_kind": "timeout"},
    ],
)
def test_throttling_and_timeouts_wait_at_least_a_minute(kwargs: dict[str, object]) -> None:
    decision = fail(no_jitter(), 1, **kwargs)  # the schedule says 5 s
    assert decision.retry_at == NOW + 60 * S
    assert "back-off" in decision.reason
    later = fail(no_jitter(), 2, **kwargs)  # the schedule says 5 min: above the floor
    assert later.retry_at == NOW + 5 * M


@pytest.mark.parametrize("kind", ["connect", "tls", "protocol", "unsafe_target"])
def test_network_errors_follow_the_schedule(kind: str) -> None:
    decision = fail(no_jitter(), 1, status_code=None, error_kind=kind)
    assert decision.retry_at == NOW + 5 * S
    assert decision.reason.startswith(kind)


def test_retry_after_seconds_lengthens_the_wait() -> None:
    decision = fail(no_jitter(), 1, status_code=429, retry_after="120")
    assert decision.retry_at == NOW + 120 * S
    assert "Retry-After" in decision.reason


def test_retry_after_http_date() -> None:
    when = email.utils.format_datetime(NOW + 3 * H, usegmt=True)
    decision = fail(no_jitter(), 2, status_code=503, retry_after=when)
    assert decision.retry_at == NOW + 3 * H


def test_retry_after_is_capped_at_a_day() -> None:
    decision = fail(no_jitter(), 1, status_code=429, retry_after=str(7 * 24 * 3600))
    assert decision.retry_at == NOW + 24 * H
    huge = fail(no_jitter(), 1, status_code=429, retry_after="9" * 40)
    assert huge.retry_at == NOW + 24 * H


def test_retry_after_never_shortens_the_schedule() -> None:
    # At attempt 5 the schedule says 5 h; "Retry-After: 1" must not burn the remaining attempts.
    decision = fail(no_jitter(), 5, status_code=503, retry_after="1")
    assert decision.retry_at == NOW + 5 * H


def test_retry_after_is_floored_at_the_minimum_backoff() -> None:
    decision = fail(no_jitter(), 1, status_code=500, retry_after="2")
    assert decision.retry_at == NOW + 60 * S


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "Wed, 99 Foo 2026", "\u0661\u0662"])
def test_unusable_retry_after_is_ignored(value: str) -> None:
    decision = fail(no_jitter(), 1, status_code=500, retry_after=value)
    assert decision.retry_at == NOW + 5 * S


def test_parse_retry_after() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after(" 30 ", NOW) == 30 * S
    past = email.utils.format_datetime(NOW - H, usegmt=True)
    assert parse_retry_after(past, NOW) == dt.timedelta(0)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:10 -0000", NOW) == 10 * S


def test_jitter_stays_within_twenty_percent() -> None:
    rng = random.Random(1234)
    policy = RetryPolicy(uniform=rng.uniform)
    seen = set()
    for _ in range(500):
        decision = fail(policy, 4)
        assert decision.retry_at is not None
        delay = decision.retry_at - NOW
        assert 0.8 * 2 * H <= delay <= 1.2 * 2 * H
        seen.add(delay)
    assert len(seen) > 100  # it does jitter


@pytest.mark.parametrize(("factor", "expected"), [(0.8, 4 * S), (1.2, 6 * S), (5.0, 6 * S)])
def test_jitter_bounds_are_enforced(factor: float, expected: dt.timedelta) -> None:
    policy = RetryPolicy(uniform=lambda low, high: factor)
    assert fail(policy, 1).retry_at == NOW + expected


def test_custom_schedule() -> None:
    policy = RetryPolicy(schedule=(0 * S, 10 * S), uniform=lambda low, high: 1.0)
    assert fail(policy, 1).retry_at == NOW + 10 * S
    assert fail(policy, 2).give_up


@pytest.mark.parametrize(
    "kwargs",
    [{"schedule": ()}, {"schedule": (-S,)}, {"jitter": 1.5}, {"min_backoff": 48 * H}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_naive_now_and_attempt_zero_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        no_jitter().decide(
            1, status_code=500, error_kind=None, retry_after=None, now=dt.datetime(2026, 1, 1)
        )
    with pytest.raises(ValueError, match="start at 1"):
        fail(no_jitter(), 0)


def test_endpoint_should_disable_after_five_days_of_failure() -> None:
    assert not endpoint_should_disable(None, NOW)
    assert not endpoint_should_disable(NOW - 5 * 24 * H + S, NOW)
    assert endpoint_should_disable(NOW - 5 * 24 * H, NOW)
    assert endpoint_should_disable(NOW - 2 * H, NOW, window=H)


def test_endpoint_should_disable_needs_several_failures_in_the_window() -> None:
    first = NOW - 5 * 24 * H
    assert not endpoint_should_disable(first, NOW, failures=2)
    assert not endpoint_should_disable(first, NOW, failures=DISABLE_MIN_FAILURES - 1)
    assert endpoint_should_disable(first, NOW, failures=DISABLE_MIN_FAILURES)
    assert not endpoint_should_disable(NOW - H, NOW, failures=100)  # too soon, however many

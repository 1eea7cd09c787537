"""Arrival order does not matter: every simulated Stripe flow, delivered in every order, ends in the
state it ends in when delivered in order, and tells partners the same news.

Scenarios of up to 7 events are tried in every permutation; longer ones in every pair swap, in
reverse, and in a derandomized Hypothesis sample. Each is also run with every event forced into
the same second (Stripe's ``created`` has one-second resolution), and with duplicates.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.domain.helpers import AMOUNT, T0, apply, fold, new_order, snapshots

from caisse.domain.events import DomainEvent, MessageType
from caisse.domain.orders import Order
from caisse.domain.states import PaymentPhase
from caisse.providers.base import Snapshot
from caisse.providers.stripe import simulate

FULL_PERMUTATIONS_UP_TO = 7

PAID = MessageType.ORDER_PAID
FAILED = MessageType.ORDER_PAYMENT_FAILED
CANCELED = MessageType.ORDER_CANCELED
REFUNDED = MessageType.ORDER_REFUNDED
OPENED = MessageType.ORDER_DISPUTE_OPENED
CLOSED = MessageType.ORDER_DISPUTE_CLOSED

# What every scenario ends in, whatever the order: status, paid, refunded, disputes, and the
# partner messages that must be told exactly this many times (refunds: see _check_refunds).
EXPECTED: dict[str, dict[str, Any]] = {
    "card_payment_succeeded": {"status": "paid", "paid": AMOUNT, "refunded": 0, "once": [PAID]},
    "3ds_then_success": {"status": "paid", "paid": AMOUNT, "refunded": 0, "once": [PAID]},
    "payment_failed_then_success": {
        "status": "paid",
        "paid": AMOUNT,
        "refunded": 0,
        "once": [PAID],
    },
    "async_processing_success": {"status": "paid", "paid": AMOUNT, "refunded": 0, "once": [PAID]},
    "canceled": {"status": "canceled", "paid": 0, "refunded": 0, "once": [CANCELED]},
    "partial_refund": {
        "status": "partially_refunded",
        "paid": AMOUNT,
        "refunded": AMOUNT // 2,
        "once": [PAID],
    },
    "full_refund": {"status": "refunded", "paid": AMOUNT, "refunded": AMOUNT, "once": [PAID]},
    "dispute_won": {
        "status": "paid",
        "paid": AMOUNT,
        "refunded": 0,
        "dispute": ("won", AMOUNT, AMOUNT),
        "once": [PAID, OPENED, CLOSED],
    },
    "dispute_lost": {
        "status": "paid",
        "paid": AMOUNT,
        "refunded": 0,
        "dispute": ("lost", AMOUNT, 0),
        "once": [PAID, OPENED, CLOSED],
    },
}


def _events(name: str, *, same_second: bool) -> list[dict[str, Any]]:
    events = simulate.scenario(name, created=T0, amount=AMOUNT, rng=random.Random(name))
    if same_second:
        for event in events:
            event["created"] = T0
    return events


def _state(order: Order) -> tuple[Any, ...]:
    """Everything an order shows, minus provider timestamps (which record the newest seen)."""
    return (
        order.status,
        order.phase,
        order.amount_paid,
        order.amount_refunded,
        order.paid_at,
        sorted((p.provider_payment_id, p.status, p.amount_received) for p in order.payments),
        sorted((r.provider_refund_id, r.status, r.amount) for r in order.refunds),
        sorted(
            (d.provider_dispute_id, d.status, d.amount_withdrawn, d.amount_reinstated)
            for d in order.disputes
        ),
    )


def _orders(snaps: Sequence[Snapshot]) -> Iterator[tuple[Snapshot, ...]]:
    """Every permutation when affordable; else every pair swap, the reverse and seeded shuffles."""
    if len(snaps) <= FULL_PERMUTATIONS_UP_TO:
        yield from itertools.permutations(snaps)
        return
    yield tuple(snaps)
    yield tuple(reversed(snaps))
    for i, j in itertools.combinations(range(len(snaps)), 2):
        swapped = list(snaps)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        yield tuple(swapped)
    rng = random.Random(len(snaps))
    for _ in range(300):
        yield tuple(rng.sample(snaps, len(snaps)))


def _check(name: str, snaps: Sequence[Snapshot], reference: tuple[Any, ...]) -> None:
    order = new_order()
    events: list[DomainEvent] = []
    terminal: PaymentPhase | None = None
    for snap in snaps:
        events += apply(order, snap)
        if terminal is not None:  # once paid or canceled, the phase never moves again
            assert order.phase is terminal
        elif order.phase in (PaymentPhase.PAID, PaymentPhase.CANCELED):
            terminal = order.phase
    assert _state(order) == reference, [type(s).__name__ for s in snaps]
    _check_messages(name, order, events)


def _check_messages(name: str, order: Order, events: list[DomainEvent]) -> None:
    expected = EXPECTED[name]
    assert order.status == expected["status"]
    assert order.amount_paid == expected["paid"]
    assert order.amount_refunded == expected["refunded"]
    if "dispute" in expected:
        ((status, withdrawn, reinstated),) = [
            (d.status, d.amount_withdrawn, d.amount_reinstated) for d in order.disputes
        ]
        assert (status, withdrawn, reinstated) == expected["dispute"]
    else:
        assert order.disputes == []

    told = [e for e in events if e.is_partner_message]
    counts = Counter(e.type for e in told)
    for kind in expected["once"]:
        assert counts[kind] == 1, (kind, counts)
    others = set(MessageType) - set(expected["once"]) - {FAILED, REFUNDED}
    assert not any(counts[kind] for kind in others), counts
    # A failure is news only before the payment: never after order.paid.
    types = [e.type for e in told]
    if PAID in types:
        assert FAILED not in types[types.index(PAID) :], types
    assert counts[FAILED] <= (1 if name == "payment_failed_then_success" else 0)
    _check_refunds(name, told)


def _check_refunds(name: str, told: list[DomainEvent]) -> None:
    """Refund news adds up to what was refunded, never told before the payment; how many
    messages depends on what arrived together (two refunds seen at once are one message)."""
    refunds = [e for e in told if e.type == REFUNDED]
    wanted = EXPECTED[name]["refunded"]
    assert sum(e.data["amount_refunded_now"] for e in refunds) == wanted
    assert (refunds[-1].data["amount_refunded"] if refunds else 0) == wanted
    assert len(refunds) <= {"partial_refund": 2, "full_refund": 1}.get(name, 0)
    if refunds:
        types = [e.type for e in told]
        assert types.index(PAID) < types.index(REFUNDED), types


SCENARIOS = list(simulate.SCENARIOS)


def test_every_scenario_has_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("same_second", [False, True], ids=["timed", "same-second"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_in_order_result(name: str, same_second: bool) -> None:
    snaps = snapshots(_events(name, same_second=same_second))
    order, events = fold(snaps)
    _check_messages(name, order, events)


@pytest.mark.parametrize("same_second", [False, True], ids=["timed", "same-second"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_arrival_order_ends_the_same(name: str, same_second: bool) -> None:
    snaps = snapshots(_events(name, same_second=same_second))
    reference = _state(fold(snaps)[0])
    for order in _orders(snaps):
        _check(name, order, reference)


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_same_second_pair_in_either_order(name: str) -> None:
    """Each adjacent pair forced into one second (the rest keeps its times), both ways round."""
    events = _events(name, same_second=False)
    for i in range(len(events) - 1):
        tied = [dict(e) for e in events]
        tied[i + 1]["created"] = tied[i]["created"]
        snaps = snapshots(tied)
        reference = _state(fold(snaps)[0])
        swapped = list(snaps)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        _check(name, swapped, reference)


DERANDOMIZED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)


@DERANDOMIZED
@given(data=st.data())
@pytest.mark.parametrize("same_second", [False, True], ids=["timed", "same-second"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_random_orders_with_duplicates(name: str, same_second: bool, data: st.DataObject) -> None:
    """Stripe may deliver an event more than once: redeliveries change nothing either."""
    snaps = snapshots(_events(name, same_second=same_second))
    reference = _state(fold(snaps)[0])
    extra = data.draw(st.lists(st.sampled_from(snaps), max_size=len(snaps)), label="duplicates")
    shuffled = data.draw(st.permutations([*snaps, *extra]), label="order")
    _check(name, shuffled, reference)

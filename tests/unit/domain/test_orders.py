"""The Order aggregate: every transition, the partner messages it emits, idempotence."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest
from tests.unit.domain.helpers import (
    AMOUNT,
    PI,
    apply,
    at,
    fold,
    new_order,
    partner,
    snap,
)

from caisse.domain.events import DomainEvent, MessageType
from caisse.domain.orders import MAX_AMOUNT, MAX_LINES, LineItem, Order, validate_lines
from caisse.domain.payments import (
    ChargeSnapshot,
    DisputeSnapshot,
    PaymentSnapshot,
    RefundSnapshot,
)
from caisse.domain.states import DisputeStatus, OrderStatus, PaymentPhase, PaymentStatus
from caisse.errors import InvalidRequest
from caisse.providers.base import Snapshot

PAID = MessageType.ORDER_PAID
FAILED = MessageType.ORDER_PAYMENT_FAILED
CANCELED = MessageType.ORDER_CANCELED
REFUNDED = MessageType.ORDER_REFUNDED
OPENED = MessageType.ORDER_DISPUTE_OPENED
CLOSED = MessageType.ORDER_DISPUTE_CLOSED


def pi(status: PaymentStatus, seconds: int, **kwargs: object) -> PaymentSnapshot:
    """A PaymentIntent snapshot of the shared intent; ``received`` defaults to all when paid."""
    received = AMOUNT if status is PaymentStatus.SUCCEEDED else 0
    fields: dict[str, object] = {"amount_received": received, **kwargs}
    return PaymentSnapshot(
        "stripe",
        PI,
        status,
        AMOUNT,
        "eur",
        at(seconds),
        **fields,  # type: ignore[arg-type]
    )


def charge_snap(event_type: str, seconds: int) -> ChargeSnapshot:
    charge = snap(event_type, seconds)
    assert isinstance(charge, ChargeSnapshot)
    return charge


def dispute(status: DisputeStatus, seconds: int, **kwargs: object) -> DisputeSnapshot:
    return DisputeSnapshot(
        "stripe",
        "dp_1",
        "ch_1",
        status,
        AMOUNT,
        "eur",
        at(seconds),
        **kwargs,  # type: ignore[arg-type]
    )


# -- every transition -----------------------------------------------------------------------------

# The order each prior phase is put in, by a PaymentIntent snapshot at T0.
PRIOR: dict[str, Snapshot | None] = {
    "fresh": None,
    "open": pi(PaymentStatus.REQUIRES_PAYMENT_METHOD, 0),
    "requires_action": pi(PaymentStatus.REQUIRES_ACTION, 0),
    "processing": pi(PaymentStatus.PROCESSING, 0),
    "failed": pi(PaymentStatus.REQUIRES_PAYMENT_METHOD, 0, failure_code="card_declined"),
    "partially_paid": pi(PaymentStatus.PARTIALLY_FUNDED, 0),
    "paid": pi(PaymentStatus.SUCCEEDED, 0),
    "canceled": pi(PaymentStatus.CANCELED, 0),
}
PRIORS = list(PRIOR)

# Stripe event type -> resulting order status for each prior, in PRIORS order:
#   fresh, open, requires_action, processing, failed, partially_paid, paid, canceled
OP, RA, PR, F, PP, P, C, R = (
    "open",
    "requires_action",
    "processing",
    "failed",
    "partially_paid",
    "paid",
    "canceled",
    "refunded",
)
# The event comes 60 s after the prior snapshot (the usual case) ...
NEWER: dict[str, list[str]] = {
    "payment_intent.created": [OP, OP, OP, OP, OP, OP, P, C],
    "payment_intent.requires_action": [RA, RA, RA, RA, RA, RA, P, C],
    "payment_intent.processing": [PR, PR, PR, PR, PR, PR, P, C],
    "payment_intent.amount_capturable_updated": [PR, PR, PR, PR, PR, PR, P, C],
    "payment_intent.partially_funded": [PP, PP, PP, PP, PP, PP, P, C],
    "payment_intent.succeeded": [P, P, P, P, P, P, P, C],
    "payment_intent.payment_failed": [F, F, F, F, F, F, P, C],
    "payment_intent.canceled": [C, C, C, C, C, C, P, C],
    "charge.succeeded": [P, P, P, P, P, P, P, C],
    "charge.captured": [P, P, P, P, P, P, P, C],
    "charge.pending": [OP, OP, RA, PR, F, PP, P, C],
    "charge.failed": [OP, OP, RA, PR, F, PP, P, C],
    "charge.expired": [OP, OP, RA, PR, F, PP, P, C],
    "charge.refunded": [R, R, R, R, R, R, R, R],
}
# ... or 60 s before it (a late delivery): only paid/canceled snapshots still move the phase.
OLDER: dict[str, list[str]] = {
    "payment_intent.created": [OP, OP, RA, PR, F, PP, P, C],
    "payment_intent.requires_action": [RA, OP, RA, PR, F, PP, P, C],
    "payment_intent.processing": [PR, OP, RA, PR, F, PP, P, C],
    "payment_intent.amount_capturable_updated": [PR, OP, RA, PR, F, PP, P, C],
    "payment_intent.partially_funded": [PP, OP, RA, PR, F, PP, P, C],
    "payment_intent.succeeded": [P, P, P, P, P, P, P, C],
    "payment_intent.payment_failed": [F, OP, RA, PR, F, PP, P, C],
    "payment_intent.canceled": [C, C, C, C, C, C, P, C],
    "charge.succeeded": [P, P, P, P, P, P, P, C],
    "charge.captured": [P, P, P, P, P, P, P, C],
    "charge.pending": [OP, OP, RA, PR, F, PP, P, C],
    "charge.failed": [OP, OP, RA, PR, F, PP, P, C],
    "charge.expired": [OP, OP, RA, PR, F, PP, P, C],
    "charge.refunded": [R, R, R, R, R, R, R, R],
}
TRANSITIONS = [
    pytest.param(
        event_type, prior, offset, table[event_type][i], id=f"{label}-{prior}-{event_type}"
    )
    for label, offset, table in (("newer", 60, NEWER), ("older", -60, OLDER))
    for event_type in table
    for i, prior in enumerate(PRIORS)
]
PHASE_MESSAGE = {
    PaymentPhase.PAID: PAID,
    PaymentPhase.FAILED: FAILED,
    PaymentPhase.CANCELED: CANCELED,
}


def test_transition_tables_cover_the_payment_events() -> None:
    assert set(NEWER) == set(OLDER)
    assert all(len(row) == len(PRIORS) for row in [*NEWER.values(), *OLDER.values()])


@pytest.mark.parametrize(("event_type", "prior", "offset", "expected"), TRANSITIONS)
def test_every_transition(event_type: str, prior: str, offset: int, expected: str) -> None:
    order = new_order()
    setup = PRIOR[prior]
    if setup is not None:
        apply(order, setup)
    before = copy.deepcopy(order)

    events = apply(order, snap(event_type, offset))

    assert order.status == OrderStatus(expected)
    # Partner messages say exactly what changed: the new phase's news, then new refunds.
    moved = order.phase != before.phase and order.phase in PHASE_MESSAGE
    news = [PHASE_MESSAGE[order.phase]] if moved else []
    if order.amount_refunded > before.amount_refunded and order.amount_paid > 0:
        news.append(REFUNDED)
    assert partner(events) == news
    # Status changes are on the timeline too; nothing changed means no event at all.
    changed = order.status != before.status
    assert [e for e in events if e.type == "order.status_changed"] == (
        [DomainEvent("order.status_changed", {"from": before.status, "to": order.status})]
        if changed
        else []
    )
    if not changed and order.phase == before.phase:
        assert events == []
    # The payment phase itself never leaves paid or canceled.
    if before.phase in (PaymentPhase.PAID, PaymentPhase.CANCELED):
        assert order.phase == before.phase


@pytest.mark.parametrize("event_type", list(NEWER))
def test_every_event_type_is_idempotent(event_type: str) -> None:
    order = new_order()
    apply(order, snap("payment_intent.created", -600))
    one = snap(event_type)
    apply(order, one)
    state = copy.deepcopy(order)
    assert apply(order, one) == []
    assert order == state


# -- paid, failed, canceled: one message per real change ----------------------------------------


def test_paid_is_told_once_whatever_confirms_it() -> None:
    order, events = fold(
        [
            snap("payment_intent.created", 0),
            snap("charge.succeeded", 1),
            snap("payment_intent.succeeded", 1),
            snap("charge.captured", 2),
            snap("payment_intent.succeeded", 3),
        ]
    )
    assert partner(events) == [PAID]
    assert order.status is OrderStatus.PAID
    assert order.amount_paid == AMOUNT
    assert order.paid_at == at(1)


def test_paid_at_is_the_earliest_paid_snapshot() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 5), snap("charge.succeeded", 9)])
    assert order.paid_at == at(5)
    late_first, _ = fold([snap("charge.refunded", 3600), snap("payment_intent.succeeded", 5)])
    assert late_first.paid_at == at(5)
    assert late_first.phase_observed_at == at(3600)
    never, _ = fold([snap("payment_intent.canceled", 1), snap("payment_intent.succeeded", 5)])
    assert never.paid_at is None
    assert order.phase_observed_at == at(9)  # the newest snapshot confirming the phase


def test_a_late_processing_or_failure_never_moves_a_paid_order_back() -> None:
    order, events = fold([snap("payment_intent.succeeded", 100)])
    for late in (
        "payment_intent.processing",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.created",
        "payment_intent.canceled",
        "charge.failed",
        "charge.pending",
    ):
        for offset in (-60, 0, 60):
            assert apply(order, snap(late, offset)) == []
    assert partner(events) == [PAID]
    assert order.status is OrderStatus.PAID


def test_each_failure_is_told_with_its_code() -> None:
    order, events = fold(
        [
            snap("payment_intent.created", 0),
            snap("payment_intent.payment_failed", 10),
            snap("payment_intent.requires_action", 20),  # the buyer retries, with 3DS
            pi(PaymentStatus.REQUIRES_PAYMENT_METHOD, 30, failure_code="authentication_required"),
            snap("payment_intent.succeeded", 40),
        ]
    )
    failures = [e for e in events if e.type == FAILED]
    assert partner(events) == [FAILED, FAILED, PAID]
    assert [f.data["failure_code"] for f in failures] == [
        "generic_decline",
        "authentication_required",
    ]
    assert failures[0].data["failure_message"] == "Your card was declined."
    assert order.status is OrderStatus.PAID
    assert order.payments[0].failure_code is None  # the success cleared it


def test_a_failure_without_details_is_still_told() -> None:
    """A provider status ``failed`` (Xsolla) carries no decline code."""
    order, events = fold([pi(PaymentStatus.FAILED, 0)])
    assert partner(events) == [FAILED]
    assert events[-1].data == {"failure_code": None, "failure_message": None}
    assert order.status is OrderStatus.FAILED


def test_processing_then_failed_async_debit() -> None:
    order, events = fold(
        [
            snap("payment_intent.processing", 0),
            snap("charge.pending", 0),
            snap("payment_intent.payment_failed", 3 * 86400),
        ]
    )
    assert order.status is OrderStatus.FAILED
    assert partner(events) == [FAILED]


def test_canceled_is_told_once_and_is_final() -> None:
    order, events = fold(
        [
            snap("payment_intent.created", 0),
            snap("payment_intent.canceled", 600),
            snap("payment_intent.canceled", 600),
            snap("payment_intent.requires_action", 900),
            snap("payment_intent.payment_failed", 900),
        ]
    )
    assert partner(events) == [CANCELED]
    assert order.status is OrderStatus.CANCELED


def test_cancel_requested_by_the_merchant() -> None:
    order = new_order()
    assert partner(order.cancel_requested(at(0))) == [CANCELED]
    assert order.status is OrderStatus.CANCELED
    assert order.cancel_requested(at(1)) == []

    paid, _ = fold([snap("payment_intent.succeeded", 0)])
    assert paid.cancel_requested(at(1)) == []
    assert paid.status is OrderStatus.PAID


def test_partial_capture_is_paid_and_final_for_what_was_received() -> None:
    """Stripe's ``succeeded`` is final: the uncaptured rest is released, never captured later."""
    order, events = fold(
        [
            snap("payment_intent.amount_capturable_updated", 0),
            pi(PaymentStatus.SUCCEEDED, 60, amount_received=1500),
        ]
    )
    assert order.status is OrderStatus.PAID
    assert order.amount_paid == 1500
    assert partner(events) == [PAID]
    # Nothing later moves it: not a late authorisation, not a processing snapshot.
    late = [snap("payment_intent.processing", 120), snap("payment_intent.requires_action", 30)]
    assert partner(fold(late, order)[1]) == []
    assert order.status is OrderStatus.PAID
    # Refunding all that was received refunds the order.
    refunded = replace(charge_refunded(1500, 300), amount_captured=1500)
    assert partner(apply(order, refunded)) == [REFUNDED]
    assert order.status is OrderStatus.REFUNDED


def test_partially_captured_charge_alone_is_paid() -> None:
    charge = replace(charge_snap("charge.captured", 0), amount_captured=1200)
    order, events = fold([charge])
    assert order.status is OrderStatus.PAID
    assert order.amount_paid == 1200
    assert partner(events) == [PAID]


def test_authorization_is_processing_and_capture_pays() -> None:
    order, events = fold([snap("payment_intent.amount_capturable_updated", 0)])
    assert order.status is OrderStatus.PROCESSING
    assert order.payments[0].amount_capturable == AMOUNT
    assert order.amount_paid == 0
    _, more = fold([snap("charge.captured", 60)], order)
    assert order.status is OrderStatus.PAID
    assert partner(events + more) == [PAID]


def test_an_expired_authorization_refunds_nothing() -> None:
    order, events = fold(
        [
            snap("payment_intent.amount_capturable_updated", 0),
            snap("charge.expired", 7 * 86400),
            snap("payment_intent.canceled", 7 * 86400),
        ]
    )
    assert order.status is OrderStatus.CANCELED
    assert order.amount_refunded == 0
    assert partner(events) == [CANCELED]


def test_same_second_created_and_succeeded_keep_the_payment_record_succeeded() -> None:
    """Confirmed at creation: both events share a second and may arrive swapped."""
    order, _ = fold([snap("payment_intent.succeeded", 0), snap("payment_intent.created", 0)])
    (record,) = order.payments
    assert record.status == "succeeded"
    assert record.amount_received == AMOUNT
    assert order.status is OrderStatus.PAID


def test_an_older_snapshot_does_not_overwrite_the_payment_record() -> None:
    order, _ = fold(
        [snap("payment_intent.payment_failed", 10), snap("payment_intent.requires_action", 5)]
    )
    (record,) = order.payments
    assert record.status == "requires_payment_method"
    assert record.failure_code == "generic_decline"
    assert record.observed_at == at(10)


def test_a_charge_without_a_payment_intent_is_its_own_payment() -> None:
    charge = charge_snap("charge.succeeded", 0)
    order, events = fold([replace(charge, provider_payment_id=None, method="card")])
    assert [p.provider_payment_id for p in order.payments] == [charge.provider_charge_id]
    assert order.payments[0].method == "card"
    assert partner(events) == [PAID]


def test_a_payment_in_several_intents_adds_up() -> None:
    order = new_order()
    first = replace(
        pi(PaymentStatus.SUCCEEDED, 0), provider_payment_id="pi_a", amount=500, amount_received=500
    )
    second = replace(
        pi(PaymentStatus.SUCCEEDED, 5),
        provider_payment_id="pi_b",
        amount=1500,
        amount_received=1500,
    )
    assert partner(apply(order, first)) == []
    assert order.status is OrderStatus.PARTIALLY_PAID
    assert partner(apply(order, second)) == [PAID]
    assert order.amount_paid == AMOUNT


# -- refunds --------------------------------------------------------------------------------------


def refund(refund_id: str, amount: int, seconds: int, status: str = "succeeded") -> RefundSnapshot:
    return RefundSnapshot("stripe", refund_id, amount, status, at(seconds))


def charge_refunded(cumulative: int, seconds: int, *refunds: RefundSnapshot) -> ChargeSnapshot:
    base = charge_snap("charge.succeeded", seconds)
    return replace(base, amount_refunded=cumulative, refunds=refunds)


def test_two_partial_refunds_then_the_rest() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    r1, r2, r3 = refund("re_1", 500, 100), refund("re_2", 500, 200), refund("re_3", 1000, 300)
    steps = [
        ((r1,), 500, OrderStatus.PARTIALLY_REFUNDED, 500),
        ((r2, r1), 1000, OrderStatus.PARTIALLY_REFUNDED, 500),
        ((r3, r2, r1), 2000, OrderStatus.REFUNDED, 1000),
    ]
    for refunds, total, status, now in steps:
        seconds = int((refunds[0].observed_at - at(0)).total_seconds())
        events = apply(order, charge_refunded(total, seconds, *refunds))
        assert partner(events) == [REFUNDED]
        assert events[-1].data == {
            "amount_refunded": total,
            "amount_refunded_now": now,
            "reversal": False,
        }
        assert order.status is status
        assert order.amount_refunded == total
        for known in refunds:  # the refund objects' own events then change nothing
            assert apply(order, known) == []
    assert [r.provider_refund_id for r in order.refunds] == ["re_1", "re_2", "re_3"]


def test_refund_objects_alone_add_up() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    first = apply(order, refund("re_1", 500, 100))
    assert first[-1].data == {"amount_refunded": 500, "amount_refunded_now": 500, "reversal": False}
    second = apply(order, refund("re_2", 1500, 200, status="pending"))
    assert second[-1].data == {
        "amount_refunded": 2000,
        "amount_refunded_now": 1500,
        "reversal": False,
    }
    assert order.status is OrderStatus.REFUNDED


def test_a_failed_refund_is_recorded_but_not_counted() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    assert apply(order, refund("re_1", 500, 100, status="failed")) == []
    assert order.amount_refunded == 0
    assert order.refunds[0].status == "failed"


@pytest.mark.parametrize("outcome", ["failed", "canceled"])
def test_a_refund_given_back_is_told_as_a_reversal(outcome: str) -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    apply(order, refund("re_1", 500, 100))
    apply(order, refund("re_2", 700, 150, status="pending"))
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    events = apply(order, refund("re_2", 700, 200, status=outcome))
    assert partner(events) == [REFUNDED]
    assert events[-1].data == {
        "amount_refunded": 500,
        "amount_refunded_now": -700,
        "reversal": True,
    }
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    # The only refund given back too: the order is plainly paid again, and partners hear 0.
    events = apply(order, refund("re_1", 500, 300, status=outcome))
    assert events[-1].data == {"amount_refunded": 0, "amount_refunded_now": -500, "reversal": True}
    assert order.status is OrderStatus.PAID
    assert apply(order, refund("re_1", 500, 300, status=outcome)) == []  # told once


def test_a_late_refund_snapshot_does_not_undo_a_newer_one() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    apply(order, refund("re_1", 500, 200, status="succeeded"))
    apply(order, refund("re_1", 500, 100, status="pending"))
    apply(order, refund("re_1", 500, 200, status="pending"))  # same second: final stays
    assert order.refunds[0].status == "succeeded"
    assert order.refunds[0].observed_at == at(200)
    apply(order, replace(refund("re_1", 500, 300, status="failed"), reason="expired"))
    assert (order.refunds[0].status, order.refunds[0].reason) == ("failed", "expired")


def test_an_older_cumulative_refund_figure_is_ignored() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    apply(order, charge_refunded(1000, 200))
    assert apply(order, charge_refunded(500, 100)) == []
    assert order.amount_refunded == 1000
    assert apply(order, charge_refunded(500, 200)) == []  # same second: the larger stays
    assert order.amount_refunded == 1000


def test_refund_before_succeeded_is_told_after_paid() -> None:
    order, events = fold([snap("payment_intent.created", 0), refund("re_1", 500, 3600)])
    assert partner(events) == []
    assert order.status is OrderStatus.OPEN
    assert order.amount_refunded == 500

    later = apply(order, snap("payment_intent.succeeded", 1))
    assert partner(later) == [PAID, REFUNDED]
    assert later[-1].data == {"amount_refunded": 500, "amount_refunded_now": 500, "reversal": False}
    assert order.status is OrderStatus.PARTIALLY_REFUNDED


def test_charge_refunded_before_succeeded_pays_and_refunds_at_once() -> None:
    order, events = fold([snap("charge.refunded", 3600)])
    assert partner(events) == [PAID, REFUNDED]
    assert order.status is OrderStatus.REFUNDED
    assert apply(order, snap("payment_intent.succeeded", 1)) == []
    assert apply(order, snap("charge.succeeded", 1)) == []
    assert order.status is OrderStatus.REFUNDED


# -- disputes -------------------------------------------------------------------------------------


def test_dispute_won_with_funds_withdrawn_then_reinstated() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    due = at(21 * 86400)
    created = dispute(DisputeStatus.NEEDS_RESPONSE, 100, reason="fraudulent", evidence_due_by=due)
    events = apply(order, created)
    assert partner(events) == [OPENED]
    assert events[-1].data == {
        "dispute": "dp_1",
        "status": "needs_response",
        "amount": AMOUNT,
        "reason": "fraudulent",
        "evidence_due_by": due.isoformat(),
    }
    assert order.status is OrderStatus.DISPUTED

    withdrawn = replace(created, amount_withdrawn=AMOUNT, evidence_due_by=None, reason=None)
    assert apply(order, withdrawn) == []
    assert order.disputes[0].amount_withdrawn == AMOUNT
    assert order.disputes[0].evidence_due_by == due  # kept when a snapshot omits it
    assert order.disputes[0].reason == "fraudulent"

    review = replace(withdrawn, status=DisputeStatus.UNDER_REVIEW, observed_at=at(200))
    assert apply(order, review) == []
    assert order.disputes[0].status == "under_review"

    won = replace(review, status=DisputeStatus.WON, observed_at=at(300))
    events = apply(order, won)
    assert partner(events) == [CLOSED]
    assert events[-1].data == {"dispute": "dp_1", "outcome": "won", "amount": AMOUNT}
    assert order.status is OrderStatus.PAID

    reinstated = replace(won, amount_reinstated=AMOUNT, observed_at=at(300))
    assert apply(order, reinstated) == []
    assert order.disputes[0].amount_reinstated == AMOUNT
    assert order.disputes[0].amount_withdrawn == AMOUNT


def test_dispute_lost() -> None:
    order, events = fold(
        [
            snap("payment_intent.succeeded", 0),
            dispute(DisputeStatus.NEEDS_RESPONSE, 100),
            dispute(DisputeStatus.LOST, 200, amount_withdrawn=AMOUNT),
            dispute(DisputeStatus.UNDER_REVIEW, 150),  # late: a closed dispute stays closed
            dispute(DisputeStatus.NEEDS_RESPONSE, 300),  # even when newer
        ]
    )
    assert partner(events) == [PAID, OPENED, CLOSED]
    assert order.disputes[0].status == "lost"
    assert order.status is OrderStatus.PAID  # a lost dispute shows on the dispute, not the status


def test_inquiry_closed_without_chargeback() -> None:
    order, events = fold(
        [
            snap("payment_intent.succeeded", 0),
            dispute(DisputeStatus.WARNING_NEEDS_RESPONSE, 100),
            dispute(DisputeStatus.WARNING_UNDER_REVIEW, 200),
            dispute(DisputeStatus.WARNING_CLOSED, 300),
        ]
    )
    assert partner(events) == [PAID, OPENED, CLOSED]
    assert events[-1].data["outcome"] == "warning_closed"
    assert order.status is OrderStatus.PAID


def test_dispute_closed_before_created_tells_opened_then_closed_once() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0)])
    due = at(21 * 86400)
    events = apply(order, dispute(DisputeStatus.WON, 300, reason="fraudulent", evidence_due_by=due))
    assert partner(events) == [OPENED, CLOSED]
    assert events[0].data["status"] == "won"
    assert events[0].data["evidence_due_by"] == due.isoformat()
    assert apply(order, dispute(DisputeStatus.NEEDS_RESPONSE, 100)) == []
    assert apply(order, dispute(DisputeStatus.UNDER_REVIEW, 200)) == []
    assert order.disputes[0].status == "won"
    assert order.status is OrderStatus.PAID


def test_same_second_dispute_steps_keep_the_later_one() -> None:
    order, _ = fold(
        [dispute(DisputeStatus.UNDER_REVIEW, 100), dispute(DisputeStatus.NEEDS_RESPONSE, 100)]
    )
    assert order.disputes[0].status == "under_review"


def test_two_disputes_are_tracked_apart() -> None:
    order, events = fold([snap("payment_intent.succeeded", 0), dispute(DisputeStatus.LOST, 100)])
    other = replace(dispute(DisputeStatus.NEEDS_RESPONSE, 200), provider_dispute_id="dp_2")
    assert partner(apply(order, other)) == [OPENED]
    assert order.status is OrderStatus.DISPUTED
    assert partner(events) == [PAID, OPENED, CLOSED]


def test_a_dispute_over_a_refund_shows_disputed() -> None:
    order, _ = fold([snap("payment_intent.succeeded", 0), charge_refunded(500, 100)])
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    apply(order, dispute(DisputeStatus.NEEDS_RESPONSE, 200))
    assert order.status is OrderStatus.DISPUTED
    apply(order, dispute(DisputeStatus.WON, 300))
    assert order.status is OrderStatus.PARTIALLY_REFUNDED


# -- idempotence of every snapshot kind ----------------------------------------------------------


@pytest.mark.parametrize(
    "snapshot",
    [
        pi(PaymentStatus.SUCCEEDED, 0),
        pi(PaymentStatus.REQUIRES_PAYMENT_METHOD, 0, failure_code="card_declined"),
        charge_refunded(500, 100, refund("re_1", 500, 100)),
        refund("re_1", 500, 100),
        dispute(DisputeStatus.NEEDS_RESPONSE, 100),
        dispute(DisputeStatus.WON, 100),
    ],
    ids=["paid", "failed", "charge-refunded", "refund", "dispute-open", "dispute-closed"],
)
def test_applying_the_same_snapshot_twice_changes_nothing(snapshot: Snapshot) -> None:
    order, _ = fold([snap("payment_intent.created", -600)])
    if isinstance(snapshot, RefundSnapshot | DisputeSnapshot):
        apply(order, snap("charge.succeeded", -300))
    first = apply(order, snapshot)
    state = copy.deepcopy(order)
    assert apply(order, snapshot) == []
    assert order == state
    assert first  # the first time it did change something


# -- lines, currency and events -------------------------------------------------------------------


def test_validate_lines_returns_the_total() -> None:
    lines = [
        LineItem("Room", 2, 8000, sku="room-2", tax_rate=Decimal("10")),
        LineItem("City tax", 2, 250, tax_rate=Decimal("0")),
    ]
    assert [line.amount for line in lines] == [16000, 500]
    assert validate_lines(lines) == 16500


@pytest.mark.parametrize(
    ("lines", "param"),
    [
        ([], "lines"),
        ([LineItem("x", 1, 1)] * (MAX_LINES + 1), "lines"),
        ([LineItem("  ", 1, 100)], "lines[0].description"),
        ([LineItem("x", 1, 100), LineItem("y", 0, 100)], "lines[1].quantity"),
        ([LineItem("x", 1, -1)], "lines[0].unit_amount"),
        ([LineItem("x", 1, 100, tax_rate=Decimal("100"))], "lines[0].tax_rate"),
        ([LineItem("x", 1, 100, tax_rate=Decimal("-1"))], "lines[0].tax_rate"),
        ([LineItem("free", 1, 0)], "lines"),
        ([LineItem("x", 1, MAX_AMOUNT), LineItem("y", 1, 1)], "lines"),
    ],
    ids=["none", "too-many", "blank", "quantity", "negative", "tax-100", "tax-neg", "zero", "big"],
)
def test_validate_lines_rejects(lines: list[LineItem], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_lines(lines)
    assert info.value.param == param


def test_order_currency_is_normalized() -> None:
    assert Order("ord_1", "ten_1", "test", "EUR", 100).currency == "eur"


def test_partner_messages_are_the_contract_types() -> None:
    assert DomainEvent(MessageType.ORDER_PAID).is_partner_message
    assert DomainEvent("order.paid").is_partner_message
    assert not DomainEvent("order.status_changed").is_partner_message
    assert {m.value for m in MessageType} == {
        "order.paid",
        "order.payment_failed",
        "order.refunded",
        "order.dispute.opened",
        "order.dispute.closed",
        "order.canceled",
        "invoice.issued",
    }

"""Order and payment statuses, and the rules that make an order's status monotonic.

An order's status is *derived*, never stored as the sole truth: from its payment phase, the
cumulative amounts paid and refunded, and whether a dispute is open. Provider snapshots move the
payment phase by these rules, so the result does not depend on the order events arrive in:

1. ``paid`` and ``canceled`` are terminal for the payment phase. A late ``processing`` or
   ``payment_failed`` never moves a paid order back; nothing follows a cancel.
2. A snapshot that says ``paid`` or ``canceled`` wins over any non-terminal phase.
3. Between non-terminal phases (open, requires_action, processing, failed, partially_paid) the
   newer provider timestamp wins: an asynchronous debit really goes processing → failed, and a
   buyer really retries failed → requires_action. Stripe's ``created`` has one-second resolution,
   so on a tie the phase that comes later in a real flow wins (``TIE_RANK``); that keeps the
   outcome the same whichever of two same-second events arrives first.

Disputes follow the same shape (``dispute_wins``): a closed status (won, lost, warning_closed,
prevented) is terminal and wins over any open one; between open statuses the newer timestamp
wins, and on a tie the later step of a real flow (``DISPUTE_TIE_RANK``: inquiry before
chargeback, response needed before under review).

Refund records likewise: newer wins, and on a same-second tie a final status (succeeded, failed,
canceled) is not replaced by a pending one (``refund_wins``).
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    OPEN = "open"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class PaymentPhase(StrEnum):
    """Where the buyer's payment stands, before refunds and disputes are laid over it."""

    OPEN = "open"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    FAILED = "failed"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    CANCELED = "canceled"


class PaymentStatus(StrEnum):
    """A provider-neutral payment object status (Stripe's PaymentIntent vocabulary, widened)."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    PARTIALLY_FUNDED = "partially_funded"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class DisputeStatus(StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


CLOSED_DISPUTE_STATUSES = frozenset(
    {DisputeStatus.WARNING_CLOSED, DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.PREVENTED}
)

INQUIRY_STATUSES = frozenset(
    {DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.WARNING_UNDER_REVIEW}
)

TERMINAL_PHASES = frozenset({PaymentPhase.PAID, PaymentPhase.CANCELED})

TIE_RANK: dict[PaymentPhase, int] = {
    PaymentPhase.OPEN: 0,
    PaymentPhase.REQUIRES_ACTION: 1,
    PaymentPhase.PROCESSING: 2,
    PaymentPhase.FAILED: 3,
    PaymentPhase.PARTIALLY_PAID: 4,
    PaymentPhase.PAID: 5,
    PaymentPhase.CANCELED: 5,
}


DISPUTE_TIE_RANK: dict[DisputeStatus, int] = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.NEEDS_RESPONSE: 2,
    DisputeStatus.UNDER_REVIEW: 3,
}

FINAL_REFUND_STATUSES = frozenset({"succeeded", "failed", "canceled"})


def phase_for(
    status: PaymentStatus, *, has_failure: bool, amount_covered: int, amount_due: int
) -> PaymentPhase:
    """The phase a payment object's status puts an order in.

    ``succeeded`` is final in Stripe: after a partial manual capture the uncaptured rest is
    released, so the order is ``paid`` (for what was received) and nothing more will come.
    Only an intent that never asked for the whole order (``amount_covered``: what it asked for
    plus what other payments received, below ``amount_due``, e.g. one of several instalments)
    leaves the order ``partially_paid``, as a partially funded bank transfer does.
    """
    if status in (PaymentStatus.REQUIRES_PAYMENT_METHOD, PaymentStatus.REQUIRES_CONFIRMATION):
        return PaymentPhase.FAILED if has_failure else PaymentPhase.OPEN
    if status is PaymentStatus.REQUIRES_ACTION:
        return PaymentPhase.REQUIRES_ACTION
    if status in (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_CAPTURE):
        return PaymentPhase.PROCESSING
    if status is PaymentStatus.PARTIALLY_FUNDED:
        return PaymentPhase.PARTIALLY_PAID
    if status is PaymentStatus.SUCCEEDED:
        return PaymentPhase.PAID if amount_covered >= amount_due else PaymentPhase.PARTIALLY_PAID
    if status is PaymentStatus.FAILED:
        return PaymentPhase.FAILED
    return PaymentPhase.CANCELED


def phase_wins(
    current: PaymentPhase,
    current_at: float | None,
    candidate: PaymentPhase,
    candidate_at: float,
) -> bool:
    """Whether ``candidate`` (seen at provider time ``candidate_at``) replaces ``current``."""
    if current in TERMINAL_PHASES:
        return False
    if candidate in TERMINAL_PHASES:
        return True
    if current_at is None:
        return True
    return (candidate_at, TIE_RANK[candidate]) > (current_at, TIE_RANK[current])


def derive_status(
    phase: PaymentPhase, *, amount_paid: int, amount_refunded: int, dispute_open: bool
) -> OrderStatus:
    """The order status the API shows: disputes over refunds over the payment phase."""
    if dispute_open:
        return OrderStatus.DISPUTED
    if amount_refunded > 0 and amount_paid > 0:
        if amount_refunded >= amount_paid:
            return OrderStatus.REFUNDED
        return OrderStatus.PARTIALLY_REFUNDED
    return OrderStatus(phase.value)


def dispute_wins(
    current: DisputeStatus,
    current_at: float | None,
    candidate: DisputeStatus,
    candidate_at: float,
) -> bool:
    """Whether a dispute snapshot saying ``candidate`` replaces the recorded ``current``."""
    if current in CLOSED_DISPUTE_STATUSES:
        return False
    if candidate in CLOSED_DISPUTE_STATUSES or current_at is None:
        return True
    return (candidate_at, DISPUTE_TIE_RANK[candidate]) >= (
        current_at,
        DISPUTE_TIE_RANK[current],
    )


def refund_wins(
    current: str, current_at: float | None, candidate: str, candidate_at: float
) -> bool:
    """Whether a refund snapshot saying ``candidate`` replaces the recorded ``current``."""
    if current_at is None or candidate_at > current_at:
        return True
    if candidate_at < current_at:
        return False
    return candidate in FINAL_REFUND_STATUSES or current not in FINAL_REFUND_STATUSES


def refundable_while_disputed(open_statuses: list[str]) -> bool:
    """Whether a disputed order may still be refunded: yes while every open dispute is an
    inquiry (``warning_*``: no money was withdrawn, and refunding is the usual way to stop it
    becoming a chargeback); no once one is a chargeback (Stripe refuses, the funds are gone)."""
    return bool(open_statuses) and all(s in INQUIRY_STATUSES for s in open_statuses)

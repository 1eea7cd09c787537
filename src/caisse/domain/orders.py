"""The order aggregate: lines and totals at creation, then payment state from snapshots.

``Order.apply_*`` methods mutate the order and return the ``DomainEvent``s the change produced;
storage persists both in one transaction (the outbox), so a state change and its partner messages
are never separated.

Records (payments, refunds, disputes) keep the newest snapshot of each provider object; on a
same-second tie the rules of ``states`` pick the later step, so the order events arrive in does
not show. ``order.refunded`` is told only once something was paid: a refund object seen before
the payment waits, and is told (after ``order.paid``) when the payment shows up. It is told
again, as a reversal, when a failed or canceled refund lowers the refunded total.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from caisse.domain.events import DomainEvent, MessageType
from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot
from caisse.domain.states import (
    CLOSED_DISPUTE_STATUSES,
    TIE_RANK,
    DisputeStatus,
    OrderStatus,
    PaymentPhase,
    PaymentStatus,
    derive_status,
    dispute_wins,
    phase_for,
    phase_wins,
    refund_wins,
)
from caisse.errors import InvalidRequest
from caisse.money import normalize_currency

MAX_LINES = 500
COUNTED_REFUND_STATUSES = frozenset({"succeeded", "pending", "requires_action"})
REVERSED_REFUND_STATUSES = frozenset({"failed", "canceled"})
MAX_AMOUNT = 99_999_999_999  # Stripe's own ceiling for a single amount (8 digits + cents)


@dataclass(frozen=True, slots=True)
class LineItem:
    description: str
    quantity: int
    unit_amount: int
    sku: str | None = None
    tax_rate: Decimal | None = None

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_amount


def validate_lines(lines: list[LineItem]) -> int:
    """Check lines and return the order total; amounts are tax-included minor units."""
    if not lines:
        raise InvalidRequest("An order needs at least one line", param="lines")
    if len(lines) > MAX_LINES:
        raise InvalidRequest(f"An order has at most {MAX_LINES} lines", param="lines")
    for i, line in enumerate(lines):
        if not line.description.strip():
            raise InvalidRequest("A line needs a description", param=f"lines[{i}].description")
        if line.quantity < 1:
            raise InvalidRequest("Quantity must be at least 1", param=f"lines[{i}].quantity")
        if line.unit_amount < 0:
            raise InvalidRequest("Amounts cannot be negative", param=f"lines[{i}].unit_amount")
        if line.tax_rate is not None and not (Decimal(0) <= line.tax_rate < Decimal(100)):
            raise InvalidRequest(
                "tax_rate is a percentage in [0, 100)", param=f"lines[{i}].tax_rate"
            )
    total = sum(line.amount for line in lines)
    if total <= 0:
        raise InvalidRequest("The order total must be positive", param="lines")
    if total > MAX_AMOUNT:
        raise InvalidRequest("The order total is too large", param="lines")
    return total


@dataclass
class PaymentRecord:
    provider: str
    provider_payment_id: str
    status: str
    amount: int
    amount_received: int = 0
    amount_capturable: int = 0
    failure_code: str | None = None
    failure_message: str | None = None
    method: str | None = None
    observed_at: dt.datetime | None = None


@dataclass
class RefundRecord:
    provider: str
    provider_refund_id: str
    amount: int
    status: str
    reason: str | None = None
    observed_at: dt.datetime | None = None


@dataclass
class DisputeRecord:
    provider: str
    provider_dispute_id: str
    status: str
    amount: int
    reason: str | None = None
    evidence_due_by: dt.datetime | None = None
    amount_withdrawn: int = 0
    amount_reinstated: int = 0
    observed_at: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_DISPUTE_STATUSES


@dataclass
class Order:
    id: str
    tenant_id: str
    environment: str
    currency: str
    amount_total: int
    status: OrderStatus = OrderStatus.OPEN
    phase: PaymentPhase = PaymentPhase.OPEN
    phase_observed_at: dt.datetime | None = None
    amount_paid: int = 0
    amount_refunded: int = 0
    refunds_observed_at: dt.datetime | None = None
    paid_at: dt.datetime | None = None
    payments: list[PaymentRecord] = field(default_factory=list)
    refunds: list[RefundRecord] = field(default_factory=list)
    disputes: list[DisputeRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.currency = normalize_currency(self.currency)

    # -- payment objects ------------------------------------------------------------------
    def apply_payment(self, snap: PaymentSnapshot) -> list[DomainEvent]:
        """Fold a payment-object snapshot in; a stale snapshot changes nothing."""
        before = self._summary()
        record = self._payment(snap.provider, snap.provider_payment_id, snap.amount)
        if _payment_record_wins(record, snap):
            record.status = snap.status.value
            record.amount = snap.amount
            record.amount_capturable = snap.amount_capturable
            record.failure_code = snap.failure_code
            record.failure_message = snap.failure_message
            record.method = snap.method or record.method
            record.observed_at = snap.observed_at
        record.amount_received = max(record.amount_received, snap.amount_received)
        self.amount_paid = max(self.amount_paid, self._received_total())
        others = sum(p.amount_received for p in self.payments if p is not record)
        phase = phase_for(
            snap.status,
            has_failure=snap.failure_code is not None or snap.failure_message is not None,
            amount_covered=snap.amount + others,
            amount_due=self.amount_total,
        )
        self._move_phase(phase, snap.observed_at)
        return self._changes(before, snap.observed_at)

    def apply_charge(self, snap: ChargeSnapshot) -> list[DomainEvent]:
        """A charge proves money moved (and how much came back), whatever the intent said."""
        before = self._summary()
        if snap.paid and snap.amount_captured > 0:
            pid = snap.provider_payment_id or snap.provider_charge_id
            record = self._payment(snap.provider, pid, snap.amount)
            record.amount_received = max(record.amount_received, snap.amount_captured)
            record.method = record.method or snap.method
            self.amount_paid = max(self.amount_paid, self._received_total())
            # A captured charge is final, even captured in part (the rest was released).
            others = sum(p.amount_received for p in self.payments if p is not record)
            if snap.amount + others >= self.amount_total:
                self._move_phase(PaymentPhase.PAID, snap.observed_at)
        for refund in snap.refunds:
            self._upsert_refund(refund)
        self._set_refunded(snap.amount_refunded, snap.observed_at)
        return self._changes(before, snap.observed_at)

    def apply_refund(
        self,
        refund_id: str,
        provider: str,
        amount: int,
        status: str,
        observed_at: dt.datetime,
        reason: str | None = None,
    ) -> list[DomainEvent]:
        """A refund object on its own (``refund.updated``): the total is re-summed from records."""
        from caisse.domain.payments import RefundSnapshot

        before = self._summary()
        record = next((r for r in self.refunds if r.provider_refund_id == refund_id), None)
        was_counted = record is None or record.status in COUNTED_REFUND_STATUSES
        self._upsert_refund(
            RefundSnapshot(provider, refund_id, amount, status, observed_at, reason)
        )
        last = self.refunds_observed_at
        now_record = next(r for r in self.refunds if r.provider_refund_id == refund_id)
        if status in REVERSED_REFUND_STATUSES and was_counted and now_record.status == status:
            # Stripe counted the refund in the charge's amount_refunded from its creation and
            # gives it back when it fails or is canceled; a cumulative figure observed after
            # the failure already excludes it, so only a newer failure takes it off.
            if last is None or observed_at > last:
                self.amount_refunded = max(self.amount_refunded - amount, 0)
                self.refunds_observed_at = observed_at
            return self._changes(before, observed_at)
        summed = sum(r.amount for r in self.refunds if r.status in COUNTED_REFUND_STATUSES)
        if summed > self.amount_refunded:
            self._set_refunded(summed, observed_at)
        return self._changes(before, observed_at)

    def apply_dispute(self, snap: DisputeSnapshot) -> list[DomainEvent]:
        """Disputes sit beside the payment; a closed dispute stays closed (terminal statuses)."""
        before = self._summary()
        record = next(
            (d for d in self.disputes if d.provider_dispute_id == snap.provider_dispute_id), None
        )
        if record is None:
            record = DisputeRecord(
                snap.provider, snap.provider_dispute_id, snap.status.value, snap.amount
            )
            self.disputes.append(record)
        current_at = record.observed_at.timestamp() if record.observed_at else None
        current = DisputeStatus(record.status)
        if dispute_wins(current, current_at, snap.status, snap.observed_at.timestamp()):
            record.status = snap.status.value
            record.observed_at = snap.observed_at
        record.amount = snap.amount
        record.reason = snap.reason or record.reason
        record.evidence_due_by = snap.evidence_due_by or record.evidence_due_by
        record.amount_withdrawn = max(record.amount_withdrawn, snap.amount_withdrawn)
        record.amount_reinstated = max(record.amount_reinstated, snap.amount_reinstated)
        return self._changes(before, snap.observed_at)

    def cancel_requested(self, observed_at: dt.datetime) -> list[DomainEvent]:
        before = self._summary()
        self._move_phase(PaymentPhase.CANCELED, observed_at)
        return self._changes(before, observed_at)

    # -- helpers ----------------------------------------------------------------------------
    def _payment(self, provider: str, provider_id: str, amount: int) -> PaymentRecord:
        for record in self.payments:
            if record.provider == provider and record.provider_payment_id == provider_id:
                return record
        record = PaymentRecord(provider, provider_id, "requires_payment_method", amount)
        self.payments.append(record)
        return record

    def _received_total(self) -> int:
        return sum(p.amount_received for p in self.payments)

    def _upsert_refund(self, snap: Any) -> None:
        for record in self.refunds:
            if record.provider_refund_id == snap.provider_refund_id:
                current_at = record.observed_at.timestamp() if record.observed_at else None
                if refund_wins(
                    record.status, current_at, snap.status, snap.observed_at.timestamp()
                ):
                    record.amount, record.status = snap.amount, snap.status
                    record.reason = snap.reason or record.reason
                    record.observed_at = snap.observed_at
                return
        self.refunds.append(
            RefundRecord(
                snap.provider,
                snap.provider_refund_id,
                snap.amount,
                snap.status,
                snap.reason,
                snap.observed_at,
            )
        )

    def _set_refunded(self, cumulative: int, observed_at: dt.datetime) -> None:
        # Cumulative figures from the provider: newer wins, a same-second tie keeps the larger.
        last = self.refunds_observed_at
        if last is None or observed_at > last:
            if cumulative or last is not None:
                self.amount_refunded = cumulative
                self.refunds_observed_at = observed_at
        elif observed_at == last:
            self.amount_refunded = max(self.amount_refunded, cumulative)

    def _move_phase(self, phase: PaymentPhase, observed_at: dt.datetime) -> None:
        current_at = self.phase_observed_at.timestamp() if self.phase_observed_at else None
        if phase == self.phase and self.phase_observed_at is not None:
            if observed_at > self.phase_observed_at:
                self.phase_observed_at = observed_at
        elif phase_wins(self.phase, current_at, phase, observed_at.timestamp()):
            self.phase = phase
            self.phase_observed_at = observed_at
        # paid_at is the earliest snapshot saying paid, whichever arrived first (a refunded
        # charge also says paid, an hour later).
        paid = phase is PaymentPhase.PAID and self.phase is PaymentPhase.PAID
        if paid and (self.paid_at is None or observed_at < self.paid_at):
            self.paid_at = observed_at

    def _dispute_open(self) -> bool:
        return any(d.is_open for d in self.disputes)

    def _announced_refunded(self) -> int:
        """Refunds are news to partners only once there was a payment to refund."""
        return self.amount_refunded if self.amount_paid > 0 else 0

    def _summary(self) -> tuple[OrderStatus, PaymentPhase, int, dict[str, str]]:
        return (
            self.status,
            self.phase,
            self._announced_refunded(),
            {d.provider_dispute_id: d.status for d in self.disputes},
        )

    def _changes(
        self, before: tuple[OrderStatus, PaymentPhase, int, dict[str, str]], at: dt.datetime
    ) -> list[DomainEvent]:
        old_status, old_phase, old_refunded, old_disputes = before
        self.status = derive_status(
            self.phase,
            amount_paid=self.amount_paid,
            amount_refunded=self.amount_refunded,
            dispute_open=self._dispute_open(),
        )
        events: list[DomainEvent] = []
        if self.status != old_status:
            events.append(
                DomainEvent(
                    "order.status_changed", {"from": old_status.value, "to": self.status.value}
                )
            )
        if self.phase != old_phase:
            if self.phase is PaymentPhase.PAID:
                events.append(DomainEvent(MessageType.ORDER_PAID))
            elif self.phase is PaymentPhase.FAILED:
                failure = next(
                    (p for p in reversed(self.payments) if p.failure_code or p.failure_message),
                    None,
                )
                events.append(
                    DomainEvent(
                        MessageType.ORDER_PAYMENT_FAILED,
                        {
                            "failure_code": failure.failure_code if failure else None,
                            "failure_message": failure.failure_message if failure else None,
                        },
                    )
                )
            elif self.phase is PaymentPhase.CANCELED:
                events.append(DomainEvent(MessageType.ORDER_CANCELED))
        refunded = self._announced_refunded()
        if refunded != old_refunded:
            # A failed or canceled refund gives money back to the merchant: partners hear the
            # lower total too (``reversal``, a negative ``amount_refunded_now``).
            events.append(
                DomainEvent(
                    MessageType.ORDER_REFUNDED,
                    {
                        "amount_refunded": refunded,
                        "amount_refunded_now": refunded - old_refunded,
                        "reversal": refunded < old_refunded,
                    },
                )
            )
        for d in self.disputes:
            was = old_disputes.get(d.provider_dispute_id)
            was_open = was is not None and was not in CLOSED_DISPUTE_STATUSES
            if d.is_open and was is None:
                events.append(_dispute_opened(d))
            elif not d.is_open and (was_open or was is None):
                if was is None:  # closed seen first: it was opened too, tell both in order
                    events.append(_dispute_opened(d))
                events.append(
                    DomainEvent(
                        MessageType.ORDER_DISPUTE_CLOSED,
                        {
                            "dispute": d.provider_dispute_id,
                            "outcome": d.status,
                            "amount": d.amount,
                        },
                    )
                )
        return events


def _dispute_opened(d: DisputeRecord) -> DomainEvent:
    due = d.evidence_due_by.isoformat() if d.evidence_due_by else None
    return DomainEvent(
        MessageType.ORDER_DISPUTE_OPENED,
        {
            "dispute": d.provider_dispute_id,
            "status": d.status,
            "amount": d.amount,
            "reason": d.reason,
            "evidence_due_by": due,
        },
    )


def _payment_record_wins(record: PaymentRecord, snap: PaymentSnapshot) -> bool:
    """Newer wins; on a same-second tie (e.g. created and succeeded when confirmed at creation)
    the status further along a real flow stays, by the phase's ``TIE_RANK``."""
    if record.observed_at is None or snap.observed_at > record.observed_at:
        return True
    if snap.observed_at < record.observed_at:
        return False
    current = phase_for(
        PaymentStatus(record.status),
        has_failure=record.failure_code is not None or record.failure_message is not None,
        amount_covered=record.amount,
        amount_due=record.amount,
    )
    candidate = phase_for(
        snap.status,
        has_failure=snap.failure_code is not None or snap.failure_message is not None,
        amount_covered=snap.amount,
        amount_due=snap.amount,
    )
    return TIE_RANK[candidate] >= TIE_RANK[current]

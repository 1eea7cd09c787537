"""The Stripe event types caisse subscribes to, and what it does with each.

The list is the union of what the platforms in ``seeds/`` tell their merchants to select in the
Stripe dashboard, plus the refund, charge and ``requires_action`` events a merchant needs so that
dashboard refunds, async debits and abandoned 3-D Secure reach caisse (research §(b) 9, §(d)).
It is what ``PUT /v1/providers/stripe`` shows the merchant to subscribe, and what the simulator
can send. State is always read from ``data.object``, never from the type alone (research §(d)).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["EVENT_DESCRIPTIONS", "SEED_EVENT_TYPES", "SUBSCRIBED_EVENT_TYPES", "is_subscribed"]

# Which seed guide lists which type. 003 (Xsolla + Firebase) and 004 (ComptAppart, "after a
# Stripe payment") name no Stripe event type; 004's trigger is payment_intent.succeeded.
SEED_EVENT_TYPES: Final[MappingProxyType[str, tuple[str, ...]]] = MappingProxyType(
    {
        "000 booking extranet": ("payment_intent.succeeded",),
        "001 Invoice Ninja": (
            "source.chargeable",
            "charge.succeeded",
            "customer.source.updated",
            "payment_intent.processing",
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.partially_funded",
        ),
        "002 plenigo": (
            "account.updated",
            "issuing_card.updated",
            "issuing_cardholder.updated",
            "payment_intent.amount_capturable_updated",
            "payment_intent.canceled",
            "payment_intent.created",
            "payment_intent.payment_failed",
            "payment_intent.processing",
            "payment_intent.succeeded",
            "payment_method.automatically_updated",
            "charge.dispute.closed",
            "charge.dispute.created",
            "charge.dispute.funds_reinstated",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.updated",
        ),
        "003 Xsolla Pay Station": (),
        "004 ComptAppart": (),
    }
)

EVENT_DESCRIPTIONS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        # PaymentIntent: drives the payment state (monotonic; a late event never moves it back).
        # seeds 002
        "payment_intent.created": "Record the payment as created; no-op if it is already further.",
        "payment_intent.requires_action": "Mark awaiting customer action (3-D Secure, redirect).",
        # seeds 001 002
        "payment_intent.processing": "Mark processing: an async method (SEPA, ACH) is settling.",
        # seeds 002
        "payment_intent.amount_capturable_updated": (
            "Record the authorization and amount_capturable; the order stays processing until "
            "captured (POST /v1/orders/{id}/capture) or canceled."
        ),
        # seeds 001
        "payment_intent.partially_funded": "Mark partially paid: a bank transfer covered part.",
        # seeds 000 001 002
        "payment_intent.succeeded": "Mark paid for amount_received; fulfil and notify partners.",
        # seeds 001 002
        "payment_intent.payment_failed": "Record the failed attempt; the order stays payable.",
        # seeds 002
        "payment_intent.canceled": "Mark canceled (terminal); notify partners.",
        # Charge: confirms or audits what the PaymentIntent events say; refunds are cumulative.
        "charge.pending": "Store only: an async charge in flight; the intent drives the state.",
        # seeds 001
        "charge.succeeded": "Confirm the payment from the captured amount (paid if it covers).",
        "charge.captured": "Confirm the amount of a manual capture (paid if it covers).",
        "charge.failed": "Audit the failed attempt; the PaymentIntent event drives the state.",
        "charge.expired": (
            "Store only: the lapsed authorization is not counted as a refund; the "
            "payment_intent.canceled Stripe sends with it cancels the order."
        ),
        "charge.refunded": "Apply refunds from the cumulative amount_refunded.",
        "charge.refund.updated": "Follow a refund's status; revert it if failed or canceled.",
        # Refund objects (also sent for dashboard refunds).
        "refund.created": "Record a refund, pending or succeeded.",
        "refund.updated": "Follow a refund's status change.",
        "refund.failed": "Revert a refund that failed (amount_refunded goes back down).",
        # Disputes: tracked apart from the payment so history survives a chargeback.
        # seeds 002
        "charge.dispute.created": "Open a dispute with its evidence deadline; notify partners.",
        # seeds 002
        "charge.dispute.updated": "Follow the dispute (evidence submitted, under review).",
        # seeds 002
        "charge.dispute.funds_withdrawn": "Record the disputed amount withdrawn from the balance.",
        # seeds 002
        "charge.dispute.funds_reinstated": "Record the disputed funds returned.",
        # seeds 002
        "charge.dispute.closed": "Close the dispute as won, lost or warning closed; notify.",
        # Merchant account and instruments.
        # seeds 002
        "account.updated": "Refresh the merchant's charges/payouts flags and requirements.",
        # Connect: the merchant disconnected caisse's platform in their Stripe dashboard.
        "account.application.deauthorized": (
            "Mark the connected account disconnected: charges off, new orders refused."
        ),
        # seeds 001
        "source.chargeable": (
            "Store for audit: caisse pays through PaymentIntents and never creates legacy "
            "Sources, so it has none to charge."
        ),
        # seeds 001
        "customer.source.updated": "Store for audit; caisse keeps no customer instruments.",
        # seeds 002
        "payment_method.automatically_updated": "Store for audit; caisse keeps no saved cards.",
        # seeds 002
        "issuing_card.updated": "Store for audit; caisse does not act on Issuing cards.",
        # seeds 002
        "issuing_cardholder.updated": "Store for audit; caisse does not act on Issuing holders.",
    }
)

SUBSCRIBED_EVENT_TYPES: Final[tuple[str, ...]] = tuple(sorted(EVENT_DESCRIPTIONS))


def is_subscribed(event_type: str) -> bool:
    """True for a type caisse subscribes to and acts upon."""
    return event_type in EVENT_DESCRIPTIONS

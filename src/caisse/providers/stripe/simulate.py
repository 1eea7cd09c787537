"""Realistic Stripe events, as ``stripe trigger`` would send them, for tests, demos and the CLI.

Payloads follow API version :data:`API_VERSION` (object snapshots as in docs.stripe.com/api and
``stripe/_*.py`` of stripe-python): a PaymentIntent carries ``latest_charge``, ``amount_received``,
``amount_capturable``, ``last_payment_error``, ``next_action``; a Charge carries the cumulative
``amount_refunded`` and its ``refunds`` list; a Dispute its ``evidence_details.due_by`` and
``balance_transactions``. :func:`scenario` returns the ordered events of a real flow with
consistent ids and amounts. Ids are random (pass ``rng=random.Random(seed)`` to reproduce them);
nothing here talks to Stripe.
"""

from __future__ import annotations

import copy
import json
import random
import string
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.providers.stripe.signature import sign

__all__ = ["API_VERSION", "SCENARIOS", "build_event", "encode", "scenario", "signed_delivery"]

API_VERSION = "2024-06-20"
"""The version the simulated payloads are rendered in; pin the webhook endpoint to the same one."""

JSONDict = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
_DISPUTE_FEE = 1500
_EVIDENCE_FIELDS = [
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
]


def _address() -> JSONDict:
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


def _billing_details(name: str | None = None) -> JSONDict:
    return {"address": _address(), "email": None, "name": name, "phone": None}


def _deep_merge(base: JSONDict, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


@dataclass
class _Flow:
    """One payment's worth of consistent ids, amounts and clock, shared by a scenario's events."""

    rng: random.Random
    livemode: bool
    account: str | None
    amount: int
    currency: str
    metadata: dict[str, str]
    now: int
    payment_intent_id: str | None = None
    method: str = "card"
    capture_method: str = "automatic_async"

    def __post_init__(self) -> None:
        self.pi_id = self.payment_intent_id or self.new_id("pi")
        self.pi_created = self.now
        self.customer_id = self.new_id("cus")
        self.pm_id = self.new_id("pm")
        self.fingerprint = "".join(self.rng.choices(_ID_ALPHABET, k=16))
        self.client_secret = f"{self.pi_id}_secret_{''.join(self.rng.choices(_ID_ALPHABET, k=25))}"

    def new_id(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{''.join(self.rng.choices(_ID_ALPHABET, k=length))}"

    def tick(self, seconds: int = 1) -> int:
        self.now += seconds
        return self.now

    # -- events ---------------------------------------------------------------------------------

    def event(
        self,
        event_type: str,
        obj: JSONDict,
        previous_attributes: Mapping[str, Any] | None = None,
        *,
        api_request: bool = True,
    ) -> JSONDict:
        data: JSONDict = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
        evt: JSONDict = {"id": self.new_id("evt"), "object": "event"}
        if self.account is not None:
            evt["account"] = self.account
        evt.update(
            {
                "api_version": API_VERSION,
                "created": self.now,
                "data": data,
                "livemode": self.livemode,
                "pending_webhooks": 1,
                "request": {
                    "id": self.new_id("req", 14) if api_request else None,
                    "idempotency_key": str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                    if api_request
                    else None,
                },
                "type": event_type,
            }
        )
        return evt

    # -- objects --------------------------------------------------------------------------------

    def payment_method(self) -> JSONDict:
        if self.method == "sepa_debit":
            details: JSONDict = {
                "sepa_debit": {
                    "bank_code": "37040044",
                    "branch_code": "",
                    "country": "DE",
                    "fingerprint": self.fingerprint,
                    "generated_from": {"charge": None, "setup_attempt": None},
                    "last4": "3000",
                }
            }
        else:
            details = {"card": self.card_details()}
        return {
            "id": self.pm_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": _billing_details("Jenny Rosen"),
            **details,
            "created": self.pi_created,
            "customer": self.customer_id,
            "livemode": self.livemode,
            "metadata": {},
            "type": self.method,
        }

    def card_details(self) -> JSONDict:
        return {
            "brand": "visa",
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": self.fingerprint,
            "funding": "credit",
            "generated_from": None,
            "last4": "4242",
            "networks": {"available": ["visa"], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }

    def payment_intent(
        self,
        status: str,
        *,
        latest_charge: str | None = None,
        amount_received: int = 0,
        amount_capturable: int = 0,
        last_payment_error: JSONDict | None = None,
        next_action: JSONDict | None = None,
        cancellation_reason: str | None = None,
    ) -> JSONDict:
        options: JSONDict
        if self.method == "card":
            options = {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            }
        elif self.method == "customer_balance":
            options = {
                "customer_balance": {
                    "bank_transfer": {
                        "eu_bank_transfer": {"country": "DE"},
                        "type": "eu_bank_transfer",
                    },
                    "funding_type": "bank_transfer",
                }
            }
        else:
            options = {self.method: {}}
        return {
            "id": self.pi_id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": amount_capturable,
            "amount_details": {"tip": {}},
            "amount_received": amount_received,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": self.now if status == "canceled" else None,
            "cancellation_reason": cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.pi_created,
            "currency": self.currency,
            "customer": self.customer_id,
            "description": None,
            "invoice": None,
            "last_payment_error": last_payment_error,
            "latest_charge": latest_charge,
            "livemode": self.livemode,
            "metadata": dict(self.metadata),
            "next_action": next_action,
            "on_behalf_of": None,
            # After a failed attempt Stripe detaches the method; it lives on in last_payment_error.
            "payment_method": None
            if status in {"requires_payment_method", "canceled"}
            else self.pm_id,
            "payment_method_configuration_details": None,
            "payment_method_options": options,
            "payment_method_types": [self.method],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        }

    def charge(self, status: str, *, captured: bool = True) -> JSONDict:
        """A new Charge (attempt) on the PaymentIntent; kept so refunds and disputes can find it."""
        charge_id = self.new_id("ch")
        failed = status == "failed"
        if self.method == "sepa_debit":
            details: JSONDict = {
                "sepa_debit": {
                    "bank_code": "37040044",
                    "branch_code": "",
                    "country": "DE",
                    "fingerprint": self.fingerprint,
                    "last4": "3000",
                    "mandate": self.new_id("mandate"),
                },
                "type": "sepa_debit",
            }
        else:
            card = self.card_details()
            details = {
                "card": {
                    "amount_authorized": None if failed else self.amount,
                    "brand": card["brand"],
                    "checks": card["checks"],
                    "country": card["country"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": card["fingerprint"],
                    "funding": card["funding"],
                    "incremental_authorization": {"status": "unavailable"},
                    "installments": None,
                    "last4": card["last4"],
                    "mandate": None,
                    "multicapture": {"status": "unavailable"},
                    "network": "visa",
                    "network_token": {"used": False},
                    "overcapture": {
                        "maximum_amount_capturable": self.amount,
                        "status": "unavailable",
                    },
                    "three_d_secure": None,
                    "wallet": None,
                },
                "type": "card",
            }
        outcome = {
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": "generic_decline" if failed else None,
            "risk_level": "normal",
            "risk_score": self.rng.randint(5, 60),
            "seller_message": "The bank did not return any further details with this decline."
            if failed
            else "Payment complete.",
            "type": "issuer_declined" if failed else "authorized",
        }
        captured = captured and status == "succeeded"
        return {
            "id": charge_id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount if captured else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": self.new_id("txn") if captured else None,
            "billing_details": _billing_details("Jenny Rosen"),
            "calculated_statement_descriptor": "CAISSE",
            "captured": captured,
            "created": self.now,
            "currency": self.currency,
            "customer": self.customer_id,
            "description": None,
            "destination": None,
            "dispute": None,
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": "card_declined" if failed else None,
            "failure_message": "Your card was declined." if failed else None,
            "fraud_details": {},
            "invoice": None,
            "livemode": self.livemode,
            "metadata": dict(self.metadata),
            "on_behalf_of": None,
            "order": None,
            "outcome": None if status == "pending" else outcome,
            "paid": status == "succeeded",
            "payment_intent": self.pi_id,
            "payment_method": self.pm_id,
            "payment_method_details": details,
            "radar_options": {},
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{self.new_id('x', 60)[2:]}",
            "refunded": False,
            "refunds": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/charges/{charge_id}/refunds",
            },
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        }

    def payment_error(self, charge: JSONDict) -> JSONDict:
        return {
            "charge": charge["id"],
            "code": "card_declined",
            "decline_code": "generic_decline",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card was declined.",
            "payment_method": self.payment_method(),
            "type": "card_error",
        }

    def refund(self, charge: JSONDict, amount: int, status: str = "succeeded") -> JSONDict:
        """A Refund; a succeeded one also raises the charge's cumulative ``amount_refunded``."""
        refund: JSONDict = {
            "id": self.new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": self.new_id("txn"),
            "charge": charge["id"],
            "created": self.now,
            "currency": self.currency,
            "destination_details": {
                "card": {
                    "reference": None,
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": {},
            "payment_intent": self.pi_id,
            "reason": "requested_by_customer",
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": status,
            "transfer_reversal": None,
        }
        if status == "failed":
            refund["failure_balance_transaction"] = self.new_id("txn")
            refund["failure_reason"] = "expired_or_canceled_card"
        if status in {"succeeded", "pending"}:
            self.apply_refund(charge, refund)
        return refund

    def apply_refund(self, charge: JSONDict, refund: JSONDict) -> None:
        refunds = charge["refunds"]
        refunds["data"].insert(0, refund)  # newest first, as Stripe lists them
        refunds["total_count"] = len(refunds["data"])
        charge["amount_refunded"] += refund["amount"]
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]

    def balance_transaction(self, source: str, amount: int, fee: int, kind: str) -> JSONDict:
        withdrawal = amount < 0
        return {
            "id": self.new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": self.now + 7 * 86400,
            "created": self.now,
            "currency": self.currency,
            "description": f"Chargeback {'withdrawal' if withdrawal else 'reversal'} for {kind}",
            "exchange_rate": None,
            "fee": fee,
            "fee_details": [
                {
                    "amount": fee,
                    "application": None,
                    "currency": self.currency,
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else [],
            "net": amount - fee,
            "reporting_category": "dispute" if withdrawal else "dispute_reversal",
            "source": source,
            "status": "pending",
            "type": "adjustment",
        }

    def dispute(self, charge: JSONDict, status: str = "needs_response") -> JSONDict:
        dispute_id = self.new_id("dp")
        charge["dispute"] = dispute_id
        charge["disputed"] = True
        return {
            "id": dispute_id,
            "object": "dispute",
            "amount": charge["amount"],
            "balance_transactions": [],
            "charge": charge["id"],
            "created": self.now,
            "currency": self.currency,
            "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
            "evidence_details": {
                "due_by": self.now + 21 * 86400 - self.now % 86400 - 1,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": self.livemode,
            "metadata": {},
            "payment_intent": self.pi_id,
            "payment_method_details": {
                "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
                "type": "card",
            },
            "reason": "fraudulent",
            "status": status,
        }

    def withdraw(self, dispute: JSONDict) -> None:
        bt = self.balance_transaction(
            dispute["id"], -dispute["amount"], _DISPUTE_FEE, dispute["charge"]
        )
        dispute["balance_transactions"].append(bt)

    def reinstate(self, dispute: JSONDict) -> None:
        bt = self.balance_transaction(
            dispute["id"], dispute["amount"], -_DISPUTE_FEE, dispute["charge"]
        )
        bt["fee_details"] = []
        dispute["balance_transactions"].append(bt)

    def submit_evidence(self, dispute: JSONDict) -> None:
        dispute["evidence"]["product_description"] = "Order fulfilled and delivered."
        dispute["evidence"]["customer_email_address"] = "jenny.rosen@example.com"
        dispute["evidence_details"].update(has_evidence=True, submission_count=1)
        dispute["status"] = "under_review"

    def connected_account(self) -> JSONDict:
        account_id = self.account or self.new_id("acct", 16)
        return {
            "id": account_id,
            "object": "account",
            "business_profile": {
                "mcc": "7011",
                "name": "Hôtel des Voyageurs",
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": "https://hotel.example.com",
            },
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "controller": {"type": "application", "is_controller": True},
            "country": "FR",
            "created": self.now - 30 * 86400,
            "default_currency": self.currency,
            "details_submitted": True,
            "email": "owner@hotel.example.com",
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            "future_requirements": self.requirements(),
            "metadata": {},
            "payouts_enabled": True,
            "requirements": self.requirements(),
            "settings": {
                "payments": {"statement_descriptor": "HOTEL VOYAGEURS"},
                "payouts": {
                    "debit_negative_balances": True,
                    "schedule": {"delay_days": 7, "interval": "daily"},
                },
            },
            "tos_acceptance": {"date": self.now - 30 * 86400},
            "type": "standard",
        }

    @staticmethod
    def requirements(*currently_due: str) -> JSONDict:
        return {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(currently_due),
            "disabled_reason": "requirements.past_due" if currently_due else None,
            "errors": [],
            "eventually_due": list(currently_due),
            "past_due": list(currently_due),
            "pending_verification": [],
        }

    def source(self) -> JSONDict:
        source_id = self.new_id("src")
        return {
            "id": source_id,
            "object": "source",
            "amount": self.amount,
            "client_secret": f"src_client_secret_{self.new_id('x', 24)[2:]}",
            "created": self.now,
            "currency": self.currency,
            "customer": self.customer_id,
            "flow": "redirect",
            "livemode": self.livemode,
            "metadata": dict(self.metadata),
            "owner": {
                "address": None,
                "email": None,
                "name": "Jenny Rosen",
                "phone": None,
                "verified_address": None,
                "verified_email": None,
                "verified_name": "Jenny Rosen",
                "verified_phone": None,
            },
            "redirect": {
                "failure_reason": None,
                "return_url": "https://shop.example.com/return",
                "status": "succeeded",
                "url": f"https://hooks.stripe.com/redirect/authenticate/{source_id}",
            },
            "sofort": {
                "bank_code": "DEUT",
                "bank_name": "Deutsche Bank",
                "bic": "DEUTDE2H",
                "country": "DE",
                "iban_last4": "3000",
                "preferred_language": None,
                "statement_descriptor": None,
            },
            "statement_descriptor": None,
            "status": "chargeable",
            "type": "sofort",
            "usage": "single_use",
        }

    def bank_account(self) -> JSONDict:
        return {
            "id": self.new_id("ba"),
            "object": "bank_account",
            "account_holder_name": "Jenny Rosen",
            "account_holder_type": "individual",
            "account_type": None,
            "bank_name": "STRIPE TEST BANK",
            "country": "US",
            "currency": "usd",
            "customer": self.customer_id,
            "fingerprint": self.fingerprint,
            "last4": "6789",
            "metadata": {},
            "routing_number": "110000000",
            "status": "verified",
        }

    def cardholder(self) -> JSONDict:
        return {
            "id": self.new_id("ich"),
            "object": "issuing.cardholder",
            "billing": {
                "address": {
                    "city": "Paris",
                    "country": "FR",
                    "line1": "1 rue de Rivoli",
                    "line2": None,
                    "postal_code": "75001",
                    "state": None,
                }
            },
            "company": None,
            "created": self.now - 86400,
            "email": "jenny.rosen@example.com",
            "individual": None,
            "livemode": self.livemode,
            "metadata": {},
            "name": "Jenny Rosen",
            "phone_number": None,
            "preferred_locales": ["fr"],
            "requirements": {"disabled_reason": None, "past_due": []},
            "spending_controls": {
                "allowed_categories": [],
                "blocked_categories": [],
                "spending_limits": [],
                "spending_limits_currency": None,
            },
            "status": "active",
            "type": "individual",
        }

    def issuing_card(self) -> JSONDict:
        return {
            "id": self.new_id("ic"),
            "object": "issuing.card",
            "brand": "Visa",
            "cancellation_reason": None,
            "cardholder": self.cardholder(),
            "created": self.now - 3600,
            "currency": self.currency,
            "exp_month": 8,
            "exp_year": 2029,
            "last4": "0005",
            "livemode": self.livemode,
            "metadata": {},
            "replaced_by": None,
            "replacement_for": None,
            "replacement_reason": None,
            "shipping": None,
            "spending_controls": {
                "allowed_categories": None,
                "blocked_categories": None,
                "spending_limits": [],
                "spending_limits_currency": None,
            },
            "status": "active",
            "type": "virtual",
            "wallets": {
                "apple_pay": {"eligible": False, "ineligible_reason": "missing_cardholder_contact"},
                "google_pay": {
                    "eligible": False,
                    "ineligible_reason": "missing_cardholder_contact",
                },
                "primary_account_identifier": None,
            },
        }


# -- one event per type ---------------------------------------------------------------------------

_Built = tuple[
    JSONDict, JSONDict | None, bool
]  # object, previous_attributes, caused by an API call


def _succeeded_charge(flow: _Flow) -> JSONDict:
    return flow.charge("succeeded")


def _single(flow: _Flow, event_type: str) -> _Built:
    """The object snapshot Stripe sends for ``event_type`` at the natural point of its flow."""
    amount = flow.amount
    if event_type.startswith("payment_intent."):
        status = event_type.removeprefix("payment_intent.")
        if status == "created":
            return flow.payment_intent("requires_payment_method"), None, True
        if status == "requires_action":
            return flow.payment_intent("requires_action", next_action=_three_ds(flow)), None, True
        if status == "processing":
            flow.method = "sepa_debit"
            charge = flow.charge("pending")
            return flow.payment_intent("processing", latest_charge=charge["id"]), None, True
        if status == "amount_capturable_updated":
            flow.capture_method = "manual"
            charge = flow.charge("succeeded", captured=False)
            pi = flow.payment_intent(
                "requires_capture", latest_charge=charge["id"], amount_capturable=amount
            )
            return pi, None, True
        if status == "partially_funded":
            flow.method = "customer_balance"
            pi = flow.payment_intent(
                "requires_action", next_action=_bank_transfer(flow, amount // 2)
            )
            return pi, None, False
        if status == "succeeded":
            charge = _succeeded_charge(flow)
            pi = flow.payment_intent(
                "succeeded", latest_charge=charge["id"], amount_received=amount
            )
            return pi, None, True
        if status == "payment_failed":
            charge = flow.charge("failed")
            pi = flow.payment_intent(
                "requires_payment_method",
                latest_charge=charge["id"],
                last_payment_error=flow.payment_error(charge),
            )
            return pi, None, True
        if status == "canceled":
            pi = flow.payment_intent("canceled", cancellation_reason="requested_by_customer")
            return pi, None, True
    if event_type in {"charge.succeeded", "charge.failed", "charge.pending"}:
        status = event_type.removeprefix("charge.")
        if status == "pending":
            flow.method = "sepa_debit"
        return flow.charge(status), None, True
    if event_type == "charge.captured":
        flow.capture_method = "manual"
        charge = _succeeded_charge(flow)
        prev = {"amount_captured": 0, "balance_transaction": None, "captured": False}
        return charge, prev, True
    if event_type == "charge.expired":
        flow.capture_method = "manual"
        charge = flow.charge("succeeded", captured=False)
        # An authorization left uncaptured for 7 days is released as a refund of the whole amount.
        refund = flow.refund(charge, amount)
        refund["reason"] = "expired_uncaptured_charge"
        return charge, None, False
    if event_type == "charge.refunded":
        charge = _succeeded_charge(flow)
        prev = _refund_prev(charge)
        flow.refund(charge, amount)
        return charge, prev, True
    if event_type in {"charge.refund.updated", "refund.updated"}:
        charge = _succeeded_charge(flow)
        refund = flow.refund(charge, amount, "succeeded")
        return refund, {"status": "pending"}, False
    if event_type == "refund.created":
        charge = _succeeded_charge(flow)
        return flow.refund(charge, amount), None, True
    if event_type == "refund.failed":
        charge = _succeeded_charge(flow)
        return flow.refund(charge, amount, "failed"), {"status": "pending"}, False
    if event_type.startswith("charge.dispute."):
        return _dispute_single(flow, event_type.removeprefix("charge.dispute."))
    if event_type == "account.updated":
        prev = {"charges_enabled": False, "payouts_enabled": False}
        return flow.connected_account(), prev, False
    if event_type == "account.application.deauthorized":
        # Sent to the platform, about the account that disconnected it: always a Connect event.
        if flow.account is None:
            flow.account = flow.new_id("acct", 16)
        application = {"id": flow.new_id("ca", 32), "object": "application", "name": "caisse"}
        return application, None, False
    if event_type == "source.chargeable":
        return flow.source(), None, False
    if event_type == "customer.source.updated":
        return flow.bank_account(), {"status": "new"}, True
    if event_type == "payment_method.automatically_updated":
        return flow.payment_method(), {"card": {"exp_year": 2030, "last4": "4444"}}, False
    if event_type == "issuing_card.updated":
        return flow.issuing_card(), {"status": "inactive"}, True
    if event_type == "issuing_cardholder.updated":
        return flow.cardholder(), {"status": "inactive"}, True
    raise ValueError(f"caisse does not simulate Stripe event type {event_type!r}")


def _dispute_single(flow: _Flow, step: str) -> _Built:
    charge = _succeeded_charge(flow)
    dispute = flow.dispute(charge)
    if step == "created":
        return dispute, None, False
    flow.withdraw(dispute)
    if step == "funds_withdrawn":
        return dispute, None, False
    prev = {"evidence": copy.deepcopy(dispute["evidence"]), "status": dispute["status"]}
    flow.submit_evidence(dispute)
    if step == "updated":
        return dispute, prev, True
    if step == "closed":
        dispute["status"] = "lost"
        return dispute, {"status": "under_review"}, False
    if step == "funds_reinstated":
        dispute["status"] = "won"
        flow.reinstate(dispute)
        return dispute, None, False
    raise ValueError(f"caisse does not simulate Stripe event type 'charge.dispute.{step}'")


def _refund_prev(charge: JSONDict) -> JSONDict:
    return {
        "amount_refunded": charge["amount_refunded"],
        "refunded": charge["refunded"],
        "refunds": copy.deepcopy(charge["refunds"]),
    }


def _three_ds(flow: _Flow) -> JSONDict:
    source = flow.new_id("src")
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "source": source,
            "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}"
            f"?client_secret=src_client_secret_{flow.new_id('x', 24)[2:]}",
            "type": "three_d_secure_redirect",
        },
    }


def _bank_transfer(flow: _Flow, amount_remaining: int) -> JSONDict:
    reference = "".join(flow.rng.choices(string.ascii_uppercase + string.digits, k=12))
    return {
        "display_bank_transfer_instructions": {
            "amount_remaining": amount_remaining,
            "currency": flow.currency,
            "financial_addresses": [
                {
                    "iban": {
                        "account_holder_name": "Stripe Technology Europe Limited",
                        "bic": "SXPYDEHH",
                        "country": "DE",
                        "iban": "DE00000000000000000001",
                    },
                    "supported_networks": ["sepa"],
                    "type": "iban",
                }
            ],
            "hosted_instructions_url": "https://payments.stripe.com/bank_transfers/instructions/"
            + flow.new_id("x", 40)[2:],
            "reference": reference,
            "type": "eu_bank_transfer",
        },
        "type": "display_bank_transfer_instructions",
    }


def _new_flow(
    *,
    livemode: bool,
    account: str | None,
    payment_intent_id: str | None,
    amount: int,
    currency: str,
    metadata: Mapping[str, str] | None,
    created: int | None,
    rng: random.Random | None,
) -> _Flow:
    if isinstance(amount, bool) or amount < 1:
        raise ValueError("amount must be a positive int in the currency's minor unit")
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError("currency must be a three-letter ISO code")
    return _Flow(
        rng=rng or random.Random(),
        livemode=livemode,
        account=account,
        amount=amount,
        currency=currency.lower(),
        metadata=dict(metadata or {}),
        now=int(time.time()) if created is None else created,
        payment_intent_id=payment_intent_id,
    )


def build_event(
    event_type: str,
    *,
    livemode: bool,
    account: str | None = None,
    payment_intent_id: str | None = None,
    amount: int = 2000,
    currency: str = "eur",
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> JSONDict:
    """One event of ``event_type`` (any of the catalogue), shaped as Stripe delivers it.

    ``overrides`` is deep-merged into ``data.object`` (e.g. ``{"status": "won"}``);
    ``previous_attributes`` replaces the default ``data.previous_attributes``. ``account`` makes
    it a Connect event. ``metadata`` lands on the PaymentIntent and its charges, where caisse puts
    its order id.
    """
    if event_type not in SUBSCRIBED_EVENT_TYPES:
        raise ValueError(f"caisse does not simulate Stripe event type {event_type!r}")
    flow = _new_flow(
        livemode=livemode,
        account=account,
        payment_intent_id=payment_intent_id,
        amount=amount,
        currency=currency,
        metadata=metadata,
        created=created,
        rng=rng,
    )
    obj, prev, api_request = _single(flow, event_type)
    if overrides:
        _deep_merge(obj, overrides)
    if previous_attributes is not None:
        prev = dict(previous_attributes)
    return flow.event(event_type, obj, prev, api_request=api_request)


# -- scenarios ------------------------------------------------------------------------------------


def _card_success(flow: _Flow) -> tuple[list[JSONDict], JSONDict]:
    events = [flow.event("payment_intent.created", flow.payment_intent("requires_payment_method"))]
    flow.tick()
    charge = flow.charge("succeeded")
    events.append(flow.event("charge.succeeded", charge))
    pi = flow.payment_intent("succeeded", latest_charge=charge["id"], amount_received=flow.amount)
    events.append(flow.event("payment_intent.succeeded", pi))
    return events, charge


def _card_payment_succeeded(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    return _card_success(flow)[0]


def _three_ds_then_success(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    events = [flow.event("payment_intent.created", flow.payment_intent("requires_payment_method"))]
    flow.tick()
    pi = flow.payment_intent("requires_action", next_action=_three_ds(flow))
    events.append(flow.event("payment_intent.requires_action", pi))
    flow.tick(20)
    charge = flow.charge("succeeded")
    charge["payment_method_details"]["card"]["three_d_secure"] = {
        "authentication_flow": "challenge",
        "electronic_commerce_indicator": "05",
        "result": "authenticated",
        "result_reason": None,
        "transaction_id": str(uuid.UUID(int=flow.rng.getrandbits(128), version=4)),
        "version": "2.2.0",
    }
    events.append(flow.event("charge.succeeded", charge))
    pi = flow.payment_intent("succeeded", latest_charge=charge["id"], amount_received=flow.amount)
    events.append(flow.event("payment_intent.succeeded", pi))
    return events


def _payment_failed_then_success(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    events = [flow.event("payment_intent.created", flow.payment_intent("requires_payment_method"))]
    flow.tick()
    failed = flow.charge("failed")
    events.append(flow.event("charge.failed", failed))
    pi = flow.payment_intent(
        "requires_payment_method",
        latest_charge=failed["id"],
        last_payment_error=flow.payment_error(failed),
    )
    events.append(flow.event("payment_intent.payment_failed", pi))
    flow.tick(30)
    flow.pm_id = flow.new_id("pm")  # the buyer tries another card
    charge = flow.charge("succeeded")
    events.append(flow.event("charge.succeeded", charge))
    pi = flow.payment_intent("succeeded", latest_charge=charge["id"], amount_received=flow.amount)
    events.append(flow.event("payment_intent.succeeded", pi))
    return events


def _async_processing_success(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    flow.method = "sepa_debit"
    events = [flow.event("payment_intent.created", flow.payment_intent("requires_payment_method"))]
    flow.tick()
    charge = flow.charge("pending")
    events.append(
        flow.event(
            "payment_intent.processing",
            flow.payment_intent("processing", latest_charge=charge["id"]),
        )
    )
    events.append(flow.event("charge.pending", charge))
    flow.tick(3 * 86400)  # SEPA debits settle in days
    charge.update(
        status="succeeded",
        paid=True,
        captured=True,
        amount_captured=flow.amount,
        balance_transaction=flow.new_id("txn"),
        outcome={
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "not_assessed",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
    )
    events.append(flow.event("charge.succeeded", charge, api_request=False))
    pi = flow.payment_intent("succeeded", latest_charge=charge["id"], amount_received=flow.amount)
    events.append(flow.event("payment_intent.succeeded", pi, api_request=False))
    return events


def _canceled(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    events = [flow.event("payment_intent.created", flow.payment_intent("requires_payment_method"))]
    flow.tick(600)
    pi = flow.payment_intent("canceled", cancellation_reason="requested_by_customer")
    events.append(flow.event("payment_intent.canceled", pi))
    return events


def _refunded(flow: _Flow, refunds: Sequence[int]) -> list[JSONDict]:
    events, charge = _card_success(flow)
    for amount in refunds:
        flow.tick(3600)
        prev = _refund_prev(charge)
        refund = flow.refund(charge, amount)
        events.append(flow.event("charge.refunded", charge, prev))
        events.append(flow.event("refund.created", refund))
    return events


def _disputed(flow: _Flow, *, won: bool) -> list[JSONDict]:
    events, charge = _card_success(flow)
    flow.tick(14 * 86400)
    dispute = flow.dispute(charge)
    events.append(flow.event("charge.dispute.created", dispute, api_request=False))
    flow.withdraw(dispute)
    events.append(flow.event("charge.dispute.funds_withdrawn", dispute, api_request=False))
    flow.tick(2 * 86400)
    prev = {"evidence": copy.deepcopy(dispute["evidence"]), "status": dispute["status"]}
    flow.submit_evidence(dispute)
    events.append(flow.event("charge.dispute.updated", dispute, prev))
    flow.tick(40 * 86400)
    dispute["status"] = "won" if won else "lost"
    events.append(
        flow.event("charge.dispute.closed", dispute, {"status": "under_review"}, api_request=False)
    )
    if won:
        flow.reinstate(dispute)
        events.append(flow.event("charge.dispute.funds_reinstated", dispute, api_request=False))
    return events


_Scenario = Callable[[_Flow, Sequence[int]], list[JSONDict]]

SCENARIOS: dict[str, _Scenario] = {
    "card_payment_succeeded": _card_payment_succeeded,
    "3ds_then_success": _three_ds_then_success,
    "payment_failed_then_success": _payment_failed_then_success,
    "async_processing_success": _async_processing_success,
    "canceled": _canceled,
    "partial_refund": _refunded,
    "full_refund": _refunded,
    "dispute_won": lambda flow, _: _disputed(flow, won=True),
    "dispute_lost": lambda flow, _: _disputed(flow, won=False),
}


def scenario(
    name: str,
    *,
    livemode: bool = False,
    account: str | None = None,
    payment_intent_id: str | None = None,
    amount: int = 2000,
    currency: str = "eur",
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    refunds: Sequence[int] | None = None,
    rng: random.Random | None = None,
) -> list[JSONDict]:
    """The ordered events a real flow produces, sharing ids; amounts stay cumulative.

    ``refunds`` lists the successive refund amounts: ``partial_refund`` defaults to two refunds
    of a quarter each, ``full_refund`` to one refund of everything; both must sum to at most
    ``amount``, and a partial refund must leave something unrefunded.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    flow = _new_flow(
        livemode=livemode,
        account=account,
        payment_intent_id=payment_intent_id,
        amount=amount,
        currency=currency,
        metadata=metadata,
        created=created,
        rng=rng,
    )
    if refunds is None:
        refunds = (amount,) if name == "full_refund" else (amount // 4, amount // 4)
    if any(r < 1 for r in refunds) or sum(refunds) > amount:
        raise ValueError("refunds must be positive and sum to at most amount")
    if name == "full_refund" and sum(refunds) != amount:
        raise ValueError("a full refund must refund the whole amount")
    if name == "partial_refund" and sum(refunds) >= amount:
        raise ValueError("a partial refund must leave part of the amount unrefunded")
    return SCENARIOS[name](flow, refunds)


def encode(event: Mapping[str, Any]) -> bytes:
    """The body exactly as Stripe sends it: UTF-8 JSON, 2-space indent, keys in Stripe's order."""
    return json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")


def signed_delivery(
    event: Mapping[str, Any], secrets: Sequence[str], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery attempt; test-mode deliveries carry a dummy ``v0``."""
    body = encode(event)
    t = int(time.time()) if timestamp is None else timestamp
    header = sign(body, secrets, timestamp=t, include_v0=not event.get("livemode", False))
    return body, {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header}

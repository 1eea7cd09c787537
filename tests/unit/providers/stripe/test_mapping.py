"""Stripe event JSON → Interpretation: every catalogue type, and the fields read beyond status."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot, RefundSnapshot
from caisse.domain.states import DisputeStatus, PaymentStatus
from caisse.errors import InvalidRequest
from caisse.providers.base import Interpretation, OrderLookup
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.providers.stripe.mapping import interpret
from caisse.providers.stripe.simulate import build_event, scenario

FIXTURES = Path(__file__).parents[3] / "fixtures" / "stripe"
T0 = 1_767_225_600
OBSERVED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ORDER = "ord_01KDX2C4F0Q8H3T7M9VZB6N1RE"
TENANT = "ten_01KDX2B7W5A9J2K4P6R8S0T3VX"
META = {"caisse_order_id": ORDER, "caisse_tenant_id": TENANT}


def fixture(event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{event_type}.json").read_text("utf-8"))
    return data


def event(event_type: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("rng", random.Random(event_type))
    return build_event(event_type, livemode=False, created=T0, metadata=META, **kwargs)


def only(interpretation: Interpretation) -> Any:
    (snap,) = interpretation.snapshots
    return snap


# event type -> (handling, snapshot class or None, expected snapshot fields)
CATALOGUE: dict[str, tuple[str, type | None, dict[str, Any]]] = {
    "payment_intent.created": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.REQUIRES_PAYMENT_METHOD, "amount_received": 0},
    ),
    "payment_intent.requires_action": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.REQUIRES_ACTION, "failure_code": None},
    ),
    "payment_intent.processing": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.PROCESSING, "method": "sepa_debit"},
    ),
    "payment_intent.amount_capturable_updated": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.REQUIRES_CAPTURE, "amount_capturable": 2000},
    ),
    "payment_intent.partially_funded": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.PARTIALLY_FUNDED, "method": "customer_balance"},
    ),
    "payment_intent.succeeded": (
        "order",
        PaymentSnapshot,
        {"status": PaymentStatus.SUCCEEDED, "amount_received": 2000, "method": "card"},
    ),
    "payment_intent.payment_failed": (
        "order",
        PaymentSnapshot,
        {
            "status": PaymentStatus.REQUIRES_PAYMENT_METHOD,
            "failure_code": "generic_decline",
            "failure_message": "Your card was declined.",
        },
    ),
    "payment_intent.canceled": ("order", PaymentSnapshot, {"status": PaymentStatus.CANCELED}),
    "charge.succeeded": (
        "order",
        ChargeSnapshot,
        {"paid": True, "amount_captured": 2000, "amount_refunded": 0},
    ),
    "charge.captured": ("order", ChargeSnapshot, {"paid": True, "amount_captured": 2000}),
    "charge.pending": ("order", ChargeSnapshot, {"paid": False, "amount_captured": 0}),
    "charge.failed": ("order", ChargeSnapshot, {"paid": False, "amount_captured": 0}),
    "charge.expired": (
        "order",
        ChargeSnapshot,
        {"amount_captured": 0, "amount_refunded": 0, "refunds": ()},
    ),
    "charge.refunded": (
        "order",
        ChargeSnapshot,
        {"amount_captured": 2000, "amount_refunded": 2000},
    ),
    "charge.refund.updated": ("order", RefundSnapshot, {"status": "succeeded", "amount": 2000}),
    "refund.created": ("order", RefundSnapshot, {"status": "succeeded", "amount": 2000}),
    "refund.updated": ("order", RefundSnapshot, {"status": "succeeded", "amount": 2000}),
    "refund.failed": ("order", RefundSnapshot, {"status": "failed", "amount": 2000}),
    "charge.dispute.created": (
        "order",
        DisputeSnapshot,
        {"status": DisputeStatus.NEEDS_RESPONSE, "amount_withdrawn": 0, "amount_reinstated": 0},
    ),
    "charge.dispute.funds_withdrawn": (
        "order",
        DisputeSnapshot,
        {"status": DisputeStatus.NEEDS_RESPONSE, "amount_withdrawn": 2000, "amount_reinstated": 0},
    ),
    "charge.dispute.updated": (
        "order",
        DisputeSnapshot,
        {"status": DisputeStatus.UNDER_REVIEW, "amount_withdrawn": 2000},
    ),
    "charge.dispute.closed": (
        "order",
        DisputeSnapshot,
        {"status": DisputeStatus.LOST, "amount_withdrawn": 2000, "amount_reinstated": 0},
    ),
    "charge.dispute.funds_reinstated": (
        "order",
        DisputeSnapshot,
        {"status": DisputeStatus.WON, "amount_withdrawn": 2000, "amount_reinstated": 2000},
    ),
    "account.updated": ("account", None, {}),
    "account.application.deauthorized": ("account_deauthorized", None, {}),
    "customer.source.updated": ("record", None, {}),
    "source.chargeable": ("record", None, {}),
    "payment_method.automatically_updated": ("record", None, {}),
    "issuing_card.updated": ("record", None, {}),
    "issuing_cardholder.updated": ("record", None, {}),
}


def test_the_table_covers_the_catalogue_and_the_fixtures() -> None:
    assert set(CATALOGUE) == set(SUBSCRIBED_EVENT_TYPES)
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(SUBSCRIBED_EVENT_TYPES)


def _expected_lookup(raw: dict[str, Any]) -> OrderLookup:
    obj = raw["data"]["object"]
    kind = obj["object"]
    if kind == "payment_intent":
        return OrderLookup(ORDER, TENANT, obj["id"])
    if kind == "charge":
        return OrderLookup(ORDER, TENANT, obj["payment_intent"])
    return OrderLookup(provider_payment_id=obj["payment_intent"])  # refunds and disputes


def _check(event_type: str, raw: dict[str, Any]) -> None:
    handling, kind, fields = CATALOGUE[event_type]
    got = interpret(copy.deepcopy(raw))
    assert got.handling == handling
    if kind is None:
        assert got.snapshots == ()
        assert got.lookup == OrderLookup()
        if handling == "record":
            assert got.note == f"{event_type} is stored and shown; it changes no order"
        return
    snap = only(got)
    assert isinstance(snap, kind)
    assert got.lookup == _expected_lookup(raw)
    assert snap.provider == "stripe"
    assert snap.observed_at == dt.datetime.fromtimestamp(raw["created"], dt.UTC)
    for name, value in fields.items():
        assert getattr(snap, name) == value, name
    obj = raw["data"]["object"]
    if isinstance(snap, PaymentSnapshot):
        assert (snap.provider_payment_id, snap.amount, snap.currency) == (obj["id"], 2000, "eur")
    elif isinstance(snap, ChargeSnapshot):
        assert (snap.provider_charge_id, snap.provider_payment_id) == (
            obj["id"],
            obj["payment_intent"],
        )
    elif isinstance(snap, RefundSnapshot):
        assert snap.provider_refund_id == obj["id"]
    else:
        assert (snap.provider_dispute_id, snap.provider_charge_id) == (obj["id"], obj["charge"])
        assert snap.reason == "fraudulent"
        assert snap.evidence_due_by == dt.datetime.fromtimestamp(
            obj["evidence_details"]["due_by"], dt.UTC
        )


@pytest.mark.parametrize("event_type", SUBSCRIBED_EVENT_TYPES)
def test_fixture(event_type: str) -> None:
    raw = fixture(event_type)
    assert raw["created"] == T0
    _check(event_type, raw)


@pytest.mark.parametrize("event_type", SUBSCRIBED_EVENT_TYPES)
def test_simulated_event(event_type: str) -> None:
    _check(event_type, event(event_type))


def test_account_updated() -> None:
    raw = event("account.updated", account="acct_1Connect")
    obj = raw["data"]["object"]
    obj.update(charges_enabled=False, payouts_enabled=True)
    obj["requirements"].update(currently_due=["external_account"], past_due=["tos_acceptance"])
    got = interpret(raw)
    assert got.account is not None
    assert got.account.account_id == "acct_1Connect"
    assert (got.account.charges_enabled, got.account.payouts_enabled) == (False, True)
    assert got.account.requirements_due == ("external_account", "tos_acceptance")
    assert got.account.observed_at == OBSERVED


# -- PaymentIntent fields -------------------------------------------------------------------------


def _pi(status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    raw = event("payment_intent.succeeded")
    obj = raw["data"]["object"]
    obj["status"] = status
    for name, value in fields.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    return raw


def _charge_obj(amount: int, **fields: Any) -> dict[str, Any]:
    return {"object": "charge", "status": "succeeded", "amount": amount, **fields}


@pytest.mark.parametrize(
    ("status", "charges", "expected"),
    [
        # localstripe and API versions before 2022-11-15: no amount_received, a charge list
        ("succeeded", [_charge_obj(2000, amount_captured=2000)], 2000),
        ("succeeded", [_charge_obj(2000)], 2000),  # no amount_captured either: the amount
        ("succeeded", [_charge_obj(1500, amount_captured=1500), _charge_obj(500)], 2000),
        ("succeeded", [_charge_obj(2000, captured=False)], 2000),  # nothing captured: falls back
        ("requires_capture", [_charge_obj(2000, captured=False)], 0),
        ("requires_payment_method", [_charge_obj(2000, status="failed")], 0),
        ("succeeded", [], 2000),  # succeeded with neither: it received it all
        ("processing", [], 0),
        ("succeeded", ["ch_not_expanded"], 2000),
    ],
)
def test_amount_received_fallback(status: str, charges: list[Any], expected: int) -> None:
    raw = _pi(status, amount_received=None, charges={"object": "list", "data": charges})
    assert only(interpret(raw)).amount_received == expected


def test_amount_received_when_present_wins() -> None:
    raw = _pi("succeeded", amount_received=1500, charges={"data": [_charge_obj(2000)]})
    assert only(interpret(raw)).amount_received == 1500


STRIPE_PI_STATUSES = [
    s.value for s in PaymentStatus if s.value not in ("failed", "partially_funded")
]


@pytest.mark.parametrize("status", STRIPE_PI_STATUSES)
def test_failure_details_only_while_requires_payment_method(status: str) -> None:
    error = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined"}
    snap = only(interpret(_pi(status, last_payment_error=error)))
    if status == "requires_payment_method":
        assert (snap.failure_code, snap.failure_message) == ("insufficient_funds", "Declined")
    else:
        assert (snap.failure_code, snap.failure_message) == (None, None)


def test_failure_code_falls_back_to_the_error_code() -> None:
    error = {"code": "expired_card", "message": "Your card has expired."}
    snap = only(interpret(_pi("requires_payment_method", last_payment_error=error)))
    assert (snap.failure_code, snap.failure_message) == ("expired_card", "Your card has expired.")


def _funded(remaining: int | None) -> dict[str, Any]:
    raw = event("payment_intent.partially_funded")
    instructions = raw["data"]["object"]["next_action"]["display_bank_transfer_instructions"]
    instructions["amount_remaining"] = remaining
    return raw


@pytest.mark.parametrize(
    ("remaining", "status"),
    [
        (1000, PaymentStatus.PARTIALLY_FUNDED),
        (1, PaymentStatus.PARTIALLY_FUNDED),
        (2000, PaymentStatus.REQUIRES_ACTION),  # instructions shown, nothing received yet
        (None, PaymentStatus.REQUIRES_ACTION),
    ],
)
def test_partially_funded_is_read_from_amount_remaining(
    remaining: int | None, status: PaymentStatus
) -> None:
    assert only(interpret(_funded(remaining))).status is status


def test_a_3ds_requires_action_is_not_partially_funded() -> None:
    snap = only(interpret(event("payment_intent.requires_action")))
    assert snap.status is PaymentStatus.REQUIRES_ACTION


def test_method_is_known_only_when_a_single_type_is_allowed() -> None:
    raw = _pi(payment_method_types=["card", "sepa_debit"])
    assert only(interpret(raw)).method is None


def test_unknown_payment_intent_status_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="Unknown PaymentIntent status"):
        interpret(_pi("requires_source"))


# -- charges and refunds --------------------------------------------------------------------------


def test_cumulative_amount_refunded_after_two_refunds() -> None:
    events = scenario("partial_refund", created=T0, rng=random.Random(1), metadata=META)
    refunded = [e for e in events if e["type"] == "charge.refunded"]
    first, second = (only(interpret(e)) for e in refunded)
    assert (first.amount_refunded, second.amount_refunded) == (500, 1000)
    assert [r.amount for r in second.refunds] == [500, 500]
    assert second.observed_at > first.observed_at
    assert len({r.provider_refund_id for r in second.refunds}) == 2


def test_an_uncaptured_charge_refunds_nothing() -> None:
    """Before API 2025-03-31 an expired authorization is released as a full "refund"."""
    raw = fixture("charge.expired")
    obj = raw["data"]["object"]
    assert (obj["captured"], obj["amount_refunded"], obj["refunded"]) == (False, 2000, True)
    snap = only(interpret(raw))
    assert (snap.amount_captured, snap.amount_refunded, snap.refunds) == (0, 0, ())


def test_the_release_refund_itself_changes_no_order() -> None:
    raw = event("refund.created", overrides={"reason": "expired_uncaptured_charge"})
    got = interpret(raw)
    assert got.handling == "record"
    assert got.snapshots == ()


def test_a_charge_in_the_old_shape() -> None:
    """No ``captured`` nor ``amount_captured`` (old API versions): a paid charge captured all."""
    raw = event("charge.succeeded")
    obj = raw["data"]["object"]
    del obj["captured"], obj["amount_captured"]
    obj["payment_intent"] = {"id": obj["payment_intent"], "object": "payment_intent"}
    obj["metadata"] = None
    got = interpret(raw)
    snap = only(got)
    assert (snap.paid, snap.amount_captured) == (True, 2000)
    assert got.lookup == OrderLookup(provider_payment_id=snap.provider_payment_id)
    assert snap.provider_payment_id.startswith("pi_")


def test_a_paid_flag_needs_a_succeeded_status() -> None:
    raw = event("charge.pending", overrides={"paid": True})
    snap = only(interpret(raw))
    assert (snap.paid, snap.amount_captured) == (False, 0)


def test_a_refund_without_status_is_pending() -> None:
    raw = event("refund.created")
    del raw["data"]["object"]["status"]
    assert only(interpret(raw)).status == "pending"


# -- disputes -------------------------------------------------------------------------------------


def test_dispute_balance_transactions_split_into_withdrawn_and_reinstated() -> None:
    raw = event("charge.dispute.funds_reinstated")
    bts = raw["data"]["object"]["balance_transactions"]
    assert [bt["amount"] for bt in bts] == [-2000, 2000]
    bts.append("txn_not_expanded")
    snap = only(interpret(raw))
    assert (snap.amount_withdrawn, snap.amount_reinstated) == (2000, 2000)


def test_dispute_without_deadline() -> None:
    raw = event("charge.dispute.created")
    raw["data"]["object"]["evidence_details"] = None
    assert only(interpret(raw)).evidence_due_by is None


def test_inquiry_statuses() -> None:
    raw = event("charge.dispute.closed", overrides={"status": "warning_closed"})
    assert only(interpret(raw)).status is DisputeStatus.WARNING_CLOSED


def test_unknown_dispute_status_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="Unknown dispute status"):
        interpret(event("charge.dispute.created", overrides={"status": "charge_refunded"}))


# -- envelope -------------------------------------------------------------------------------------


def test_an_event_without_an_object_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        interpret({"type": "payment_intent.succeeded", "data": {}})
    with pytest.raises(InvalidRequest):
        interpret({"type": "payment_intent.succeeded"})


def test_an_event_without_created_is_observed_now() -> None:
    raw = event("payment_intent.created")
    del raw["created"]
    before = dt.datetime.now(dt.UTC)
    observed = only(interpret(raw)).observed_at
    assert before - dt.timedelta(seconds=1) <= observed <= dt.datetime.now(dt.UTC)


def test_an_account_object_outside_account_events_is_recorded() -> None:
    raw = event("account.updated")
    raw["type"] = "capability.updated"
    got = interpret(raw)
    assert (got.handling, got.account) == ("record", None)


def test_a_charge_without_its_refunds_list_is_read_from_amount_refunded() -> None:
    """API versions since 2022-11-15 omit ``refunds`` unless expanded: the total is enough."""
    raw = json.loads(
        (FIXTURES / "variants" / "charge.refunded.without_refunds_list.json").read_text("utf-8")
    )
    assert "refunds" not in raw["data"]["object"]
    snap = only(interpret(raw))
    assert (snap.amount_captured, snap.amount_refunded, snap.refunds) == (2000, 700, ())


@pytest.mark.parametrize(
    ("api_version", "refunded"),
    [
        ("2024-06-20", 0),  # the remainder was released as a Refund counted in amount_refunded
        (None, 0),  # read through the API: caisse's pinned version
        ("2025-03-31.basil", 800),  # basil: no Refund for the remainder, all 800 is real
    ],
)
def test_a_partial_capture_release_is_no_refund(api_version: str | None, refunded: int) -> None:
    raw = event("charge.captured")
    raw["api_version"] = api_version
    obj = raw["data"]["object"]
    obj.update({"amount_captured": 1200, "amount_refunded": 800})
    obj.pop("refunds", None)
    snap = only(interpret(raw))
    assert (snap.amount, snap.amount_captured, snap.amount_refunded) == (2000, 1200, refunded)


@pytest.mark.parametrize("created", [10**20, -1, True, 1.5])
def test_a_created_time_no_datetime_can_hold_falls_back_to_now(created: Any) -> None:
    event = build_event("payment_intent.succeeded", livemode=False)
    event["created"] = created
    before = dt.datetime.now(dt.UTC)
    (snapshot,) = interpret(event).snapshots
    assert snapshot.observed_at >= before - dt.timedelta(seconds=1)

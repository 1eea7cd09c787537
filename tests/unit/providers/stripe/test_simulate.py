"""The simulator sends what Stripe sends: every catalogue type, parsed by the official SDK."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import stripe

from caisse.providers.stripe.catalog import (
    EVENT_DESCRIPTIONS,
    SEED_EVENT_TYPES,
    SUBSCRIBED_EVENT_TYPES,
    is_subscribed,
)
from caisse.providers.stripe.signature import sign, verify
from caisse.providers.stripe.simulate import (
    API_VERSION,
    SCENARIOS,
    build_event,
    encode,
    scenario,
    signed_delivery,
)

SECRET = "whsec_simulator0123456789abcdefABCD"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
FIXTURES = Path(__file__).parents[3] / "fixtures" / "stripe"
FIXTURE_METADATA = {
    "caisse_order_id": "ord_01KDX2C4F0Q8H3T7M9VZB6N1RE",
    "caisse_tenant_id": "ten_01KDX2B7W5A9J2K4P6R8S0T3VX",
}

PREFIX = {
    "payment_intent": "pi_",
    "charge": "ch_",
    "refund": "re_",
    "dispute": "dp_",
    "account": "acct_",
    "source": "src_",
    "payment_method": "pm_",
    "bank_account": "ba_",
    "issuing.card": "ic_",
    "issuing.cardholder": "ich_",
    "application": "ca_",
}
EXPECTED_OBJECT = {
    "payment_intent.": "payment_intent",
    "charge.dispute.": "dispute",
    "charge.refund.": "refund",
    "refund.": "refund",
    "charge.": "charge",
    "account.": "account",
    "account.application.": "application",
    "source.": "source",
    "customer.source.": "bank_account",
    "payment_method.": "payment_method",
    "issuing_card.": "issuing.card",
    "issuing_cardholder.": "issuing.cardholder",
}


def expected_object(event_type: str) -> str:
    prefix = max((p for p in EXPECTED_OBJECT if event_type.startswith(p)), key=len)
    return EXPECTED_OBJECT[prefix]


def fixture_event(event_type: str) -> dict[str, Any]:
    """How tests/fixtures/stripe/*.json were made (see tests/fixtures/README.md)."""
    return build_event(
        event_type,
        livemode=False,
        created=NOW,
        metadata=FIXTURE_METADATA,
        rng=random.Random(f"caisse-fixture:{event_type}"),
    )


def payment_intent_of(obj: dict[str, Any]) -> str | None:
    if obj["object"] == "payment_intent":
        return str(obj["id"])
    value = obj.get("payment_intent")
    return str(value) if value else None


# Catalogue ----------------------------------------------------------------------------------------
def test_catalogue_is_sorted_unique_and_described() -> None:
    assert list(SUBSCRIBED_EVENT_TYPES) == sorted(set(SUBSCRIBED_EVENT_TYPES))
    assert set(SUBSCRIBED_EVENT_TYPES) == set(EVENT_DESCRIPTIONS)
    assert all(d and "\n" not in d for d in EVENT_DESCRIPTIONS.values())


def test_catalogue_covers_every_seed_list() -> None:
    for seed, types in SEED_EVENT_TYPES.items():
        assert set(types) <= set(SUBSCRIBED_EVENT_TYPES), seed


def test_catalogue_names_the_types_the_issues_ask_for() -> None:
    wanted = {
        *(
            f"payment_intent.{s}"
            for s in [
                "created",
                "processing",
                "requires_action",
                "amount_capturable_updated",
                "partially_funded",
                "succeeded",
                "payment_failed",
                "canceled",
            ]
        ),
        *(
            f"charge.{s}"
            for s in ["succeeded", "failed", "refunded", "pending", "captured", "expired"]
        ),
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        *(
            f"charge.dispute.{s}"
            for s in ["created", "updated", "funds_withdrawn", "funds_reinstated", "closed"]
        ),
        "account.updated",
        "account.application.deauthorized",
        "source.chargeable",
        "customer.source.updated",
        "payment_method.automatically_updated",
        "issuing_card.updated",
        "issuing_cardholder.updated",
    }
    assert wanted == set(SUBSCRIBED_EVENT_TYPES)
    assert is_subscribed("charge.refunded")
    assert not is_subscribed("invoice.paid")


def test_catalogue_types_are_real_stripe_event_types() -> None:
    # The SDK's generated WebhookEndpoint params enumerate every enabled_events value.
    import inspect

    from stripe.params import _webhook_endpoint_create_params as params

    source = inspect.getsource(params)
    for event_type in SUBSCRIBED_EVENT_TYPES:
        assert f'"{event_type}"' in source, event_type


# Every type builds, parses and verifies ----------------------------------------------------------
@pytest.mark.parametrize("event_type", SUBSCRIBED_EVENT_TYPES)
@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
def test_every_type_builds_and_the_sdk_parses_it(event_type: str, livemode: bool) -> None:
    event = build_event(event_type, livemode=livemode, metadata={"caisse_order_id": "ord_1"})
    assert event["object"] == "event"
    assert event["type"] == event_type
    assert event["api_version"] == API_VERSION
    assert event["livemode"] is livemode
    assert event["id"].startswith("evt_")
    # Only the deauthorization is always about a connected account (sent to the platform).
    assert ("account" in event) is (event_type == "account.application.deauthorized")
    obj = event["data"]["object"]
    assert obj["object"] == expected_object(event_type)
    assert obj["id"].startswith(PREFIX[obj["object"]])
    if "livemode" in obj:
        assert obj.get("livemode", livemode) is livemode  # refunds carry no livemode

    body = encode(event)
    header = sign(body, [SECRET], timestamp=NOW, include_v0=not livemode)
    verify(body, header, [SECRET], now=NOW)
    parsed = stripe.Webhook.construct_event(body, header, SECRET, tolerance=2**31)
    assert isinstance(parsed, stripe.Event)
    assert parsed.type == event_type
    assert parsed.data.object.id == obj["id"]
    assert parsed.data.object.object == obj["object"]
    again = stripe.Event.construct_from(json.loads(body), "sk_test_x")
    assert again.id == event["id"]


@pytest.mark.parametrize("event_type", SUBSCRIBED_EVENT_TYPES)
def test_connect_events_carry_the_account(event_type: str) -> None:
    event = build_event(event_type, livemode=True, account="acct_1Orl9EJ3ssjaD4558")
    assert event["account"] == "acct_1Orl9EJ3ssjaD4558"
    assert list(event)[:4] == ["id", "object", "account", "api_version"]
    if event_type == "account.updated":
        assert event["data"]["object"]["id"] == "acct_1Orl9EJ3ssjaD4558"


@pytest.mark.parametrize(
    "event_type", [t for t in SUBSCRIBED_EVENT_TYPES if expected_object(t) != "account"]
)
def test_related_ids_have_the_right_prefixes(event_type: str) -> None:
    obj = build_event(event_type, livemode=False)["data"]["object"]
    for key, prefix in [
        ("payment_intent", "pi_"),
        ("charge", "ch_"),
        ("latest_charge", "ch_"),
        ("customer", "cus_"),
        ("balance_transaction", "txn_"),
    ]:
        value = obj.get(key)
        if isinstance(value, str):
            assert value.startswith(prefix), (key, value)


def test_payment_intent_id_and_metadata_propagate() -> None:
    meta = {"caisse_order_id": "ord_42"}
    for event_type in ["payment_intent.succeeded", "charge.succeeded", "charge.refunded"]:
        obj = build_event(event_type, livemode=False, payment_intent_id="pi_given", metadata=meta)[
            "data"
        ]["object"]
        assert payment_intent_of(obj) == "pi_given"
        assert obj["metadata"] == meta
    refund = build_event("refund.created", livemode=False, payment_intent_id="pi_given")
    assert refund["data"]["object"]["payment_intent"] == "pi_given"
    dispute = build_event("charge.dispute.created", livemode=False, payment_intent_id="pi_given")
    assert dispute["data"]["object"]["payment_intent"] == "pi_given"


def test_amount_currency_and_created() -> None:
    event = build_event(
        "payment_intent.succeeded", livemode=False, amount=12345, currency="JPY", created=NOW
    )
    pi = event["data"]["object"]
    assert (pi["amount"], pi["amount_received"], pi["currency"]) == (12345, 12345, "jpy")
    assert event["created"] == pi["created"] == NOW


def test_overrides_deep_merge_into_the_object() -> None:
    event = build_event(
        "charge.dispute.closed",
        livemode=False,
        overrides={"status": "won", "evidence_details": {"has_evidence": False}},
        previous_attributes={"status": "needs_response"},
    )
    dispute = event["data"]["object"]
    assert dispute["status"] == "won"
    assert dispute["evidence_details"]["has_evidence"] is False
    assert "due_by" in dispute["evidence_details"]
    assert event["data"]["previous_attributes"] == {"status": "needs_response"}


def test_unknown_type_and_bad_arguments_refused() -> None:
    with pytest.raises(ValueError, match=r"invoice\.paid"):
        build_event("invoice.paid", livemode=False)
    with pytest.raises(ValueError, match="amount"):
        build_event("payment_intent.succeeded", livemode=False, amount=0)
    with pytest.raises(ValueError, match="currency"):
        build_event("payment_intent.succeeded", livemode=False, currency="euro")


def test_seeded_rng_reproduces_and_default_rng_randomises() -> None:
    one = build_event("charge.succeeded", livemode=False, created=NOW, rng=random.Random(7))
    two = build_event("charge.succeeded", livemode=False, created=NOW, rng=random.Random(7))
    assert one == two
    a = build_event("charge.succeeded", livemode=False)
    b = build_event("charge.succeeded", livemode=False)
    assert a["id"] != b["id"]
    assert a["data"]["object"]["id"] != b["data"]["object"]["id"]


# Shapes worth pinning -----------------------------------------------------------------------------
def test_payment_intent_shapes() -> None:
    failed = build_event("payment_intent.payment_failed", livemode=False)["data"]["object"]
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "card_declined"
    assert failed["last_payment_error"]["charge"] == failed["latest_charge"]
    assert failed["last_payment_error"]["payment_method"]["id"].startswith("pm_")

    action = build_event("payment_intent.requires_action", livemode=False)["data"]["object"]
    assert action["next_action"]["type"] == "use_stripe_sdk"

    capturable = build_event("payment_intent.amount_capturable_updated", livemode=False)
    pi = capturable["data"]["object"]
    assert (pi["status"], pi["capture_method"]) == ("requires_capture", "manual")
    assert pi["amount_capturable"] == pi["amount"]
    assert pi["amount_received"] == 0

    funded = build_event("payment_intent.partially_funded", livemode=False, amount=3000)
    instructions = funded["data"]["object"]["next_action"]["display_bank_transfer_instructions"]
    assert instructions["amount_remaining"] == 1500

    canceled = build_event("payment_intent.canceled", livemode=False)["data"]["object"]
    assert canceled["cancellation_reason"] == "requested_by_customer"
    assert canceled["canceled_at"] is not None


def test_charge_refunded_is_cumulative_with_previous_attributes() -> None:
    event = build_event("charge.refunded", livemode=False, amount=5000)
    charge = event["data"]["object"]
    assert charge["amount_refunded"] == 5000
    assert charge["refunded"] is True
    assert charge["refunds"]["data"][0]["amount"] == 5000
    assert event["data"]["previous_attributes"]["amount_refunded"] == 0


def test_charge_expired_releases_the_authorization() -> None:
    charge = build_event("charge.expired", livemode=False)["data"]["object"]
    assert charge["captured"] is False
    assert charge["refunded"] is True
    assert charge["refunds"]["data"][0]["reason"] == "expired_uncaptured_charge"


def test_refund_failed_shape() -> None:
    refund = build_event("refund.failed", livemode=False)["data"]["object"]
    assert refund["status"] == "failed"
    assert refund["failure_reason"]
    assert refund["charge"].startswith("ch_")


def test_account_updated_shape() -> None:
    event = build_event("account.updated", livemode=True)
    account = event["data"]["object"]
    assert account["charges_enabled"] is True
    assert account["payouts_enabled"] is True
    assert set(account["requirements"]) >= {"currently_due", "past_due", "disabled_reason"}
    assert event["data"]["previous_attributes"] == {
        "charges_enabled": False,
        "payouts_enabled": False,
    }


# encode / signed_delivery ----------------------------------------------------------------------
def test_encode_is_stripe_style_pretty_utf8_json() -> None:
    event = build_event("account.updated", livemode=False)
    body = encode(event)
    text = body.decode("utf-8")
    assert text.startswith('{\n  "id": "evt_')
    assert '\n  "object": "event",\n' in text
    assert "Hôtel" in text  # raw UTF-8, not \u escapes
    assert json.loads(body) == event


@pytest.mark.parametrize("livemode", [False, True])
def test_signed_delivery_is_verifiable(livemode: bool) -> None:
    event = build_event("payment_intent.succeeded", livemode=livemode)
    body, headers = signed_delivery(event, [SECRET], timestamp=NOW)
    assert headers["Content-Type"].startswith("application/json")
    assert ("v0=" in headers["Stripe-Signature"]) is not livemode  # v0 on test deliveries only
    verify(body, headers["Stripe-Signature"], [SECRET], now=NOW)


# Scenarios ---------------------------------------------------------------------------------------
EXPECTED_SCENARIOS = {
    "card_payment_succeeded": [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ],
    "3ds_then_success": [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.succeeded",
    ],
    "payment_failed_then_success": [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
    ],
    "async_processing_success": [
        "payment_intent.created",
        "payment_intent.processing",
        "charge.pending",
        "charge.succeeded",
        "payment_intent.succeeded",
    ],
    "canceled": ["payment_intent.created", "payment_intent.canceled"],
}


@pytest.mark.parametrize("name", EXPECTED_SCENARIOS)
def test_payment_scenarios_produce_the_real_sequence(name: str) -> None:
    events = scenario(name, livemode=False, amount=2500, created=NOW)
    assert [e["type"] for e in events] == EXPECTED_SCENARIOS[name]


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
def test_scenario_events_are_consistent(name: str, livemode: bool) -> None:
    events = scenario(
        name, livemode=livemode, account="acct_123", payment_intent_id="pi_fixed", created=NOW
    )
    assert len({e["id"] for e in events}) == len(events)
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)
    assert events[0]["created"] == NOW
    for event in events:
        obj = event["data"]["object"]
        assert payment_intent_of(obj) == "pi_fixed"
        assert event["livemode"] is livemode
        assert obj.get("livemode", livemode) is livemode  # refunds carry no livemode
        assert event["account"] == "acct_123"
        assert event["type"] in SUBSCRIBED_EVENT_TYPES
        body, headers = signed_delivery(event, [SECRET], timestamp=NOW)
        assert stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET, 2**31)
    intents = [e["data"]["object"] for e in events if e["type"].startswith("payment_intent.")]
    assert len({pi["client_secret"] for pi in intents}) == 1
    assert intents[0]["client_secret"].startswith("pi_fixed_secret_")
    final = intents[-1]
    if name == "canceled":
        assert (final["status"], final["amount_received"]) == ("canceled", 0)
    else:
        assert (final["status"], final["amount_received"]) == ("succeeded", final["amount"])
        charge_ids = {e["data"]["object"]["id"] for e in events if e["type"] == "charge.succeeded"}
        assert charge_ids == {final["latest_charge"]}


def test_failed_attempt_then_success_uses_two_charges() -> None:
    events = scenario("payment_failed_then_success", created=NOW)
    failed = events[2]["data"]["object"]
    succeeded = events[-1]["data"]["object"]
    assert failed["last_payment_error"]["charge"] == events[1]["data"]["object"]["id"]
    assert succeeded["latest_charge"] == events[3]["data"]["object"]["id"]
    assert succeeded["latest_charge"] != failed["latest_charge"]
    assert succeeded["last_payment_error"] is None


def test_async_processing_charge_goes_pending_then_succeeded() -> None:
    events = scenario("async_processing_success", created=NOW)
    pending, succeeded = events[2]["data"]["object"], events[3]["data"]["object"]
    assert pending["id"] == succeeded["id"]
    assert (pending["status"], pending["paid"]) == ("pending", False)
    assert (succeeded["status"], succeeded["paid"]) == ("succeeded", True)
    assert pending["payment_method_details"]["type"] == "sepa_debit"
    assert events[3]["created"] - events[2]["created"] >= 86400


@pytest.mark.parametrize(
    ("name", "amount", "refunds"),
    [
        ("partial_refund", 2000, None),
        ("partial_refund", 2000, [100, 200, 300]),
        ("full_refund", 2000, None),
        ("full_refund", 2001, [1000, 1001]),
    ],
)
def test_refund_scenarios_amounts_are_cumulative(
    name: str, amount: int, refunds: list[int] | None
) -> None:
    events = scenario(name, amount=amount, refunds=refunds, created=NOW)
    refunded = [e for e in events if e["type"] == "charge.refunded"]
    created = [e["data"]["object"] for e in events if e["type"] == "refund.created"]
    assert len(refunded) == len(created) >= 1
    running = 0
    for event, refund in zip(refunded, created, strict=True):
        charge = event["data"]["object"]
        assert event["data"]["previous_attributes"]["amount_refunded"] == running
        running += refund["amount"]
        assert charge["amount_refunded"] == running
        assert sum(r["amount"] for r in charge["refunds"]["data"]) == running
        assert charge["refunds"]["total_count"] == len(charge["refunds"]["data"])
        assert charge["refunds"]["data"][0]["id"] == refund["id"]  # newest first
        assert refund["charge"] == charge["id"]
        assert refund["status"] == "succeeded"
        assert charge["refunded"] is (running == amount)
    assert (running == amount) is (name == "full_refund")


@pytest.mark.parametrize(
    ("name", "refunds"),
    [
        ("full_refund", [500]),
        ("partial_refund", [2000]),
        ("partial_refund", [1500, 600]),
        ("partial_refund", [0]),
    ],
)
def test_refund_scenarios_refuse_inconsistent_amounts(name: str, refunds: list[int]) -> None:
    with pytest.raises(ValueError, match="refund"):
        scenario(name, amount=2000, refunds=refunds)


@pytest.mark.parametrize("won", [True, False], ids=["won", "lost"])
def test_dispute_scenarios(won: bool) -> None:
    amount = 4200
    events = scenario("dispute_won" if won else "dispute_lost", amount=amount, created=NOW)
    disputes = [e for e in events if e["type"].startswith("charge.dispute.")]
    statuses = [(e["type"], e["data"]["object"]["status"]) for e in disputes]
    expected = [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "won" if won else "lost"),
    ]
    if won:
        expected.append(("charge.dispute.funds_reinstated", "won"))
    assert statuses == expected
    first = disputes[0]["data"]["object"]
    assert first["evidence_details"]["due_by"] > first["created"]
    assert first["balance_transactions"] == []
    assert {e["data"]["object"]["id"] for e in disputes} == {first["id"]}
    charge_id = events[1]["data"]["object"]["id"]
    assert all(e["data"]["object"]["charge"] == charge_id for e in disputes)
    last = disputes[-1]["data"]["object"]
    moved = sum(bt["amount"] for bt in last["balance_transactions"])
    assert moved == (0 if won else -amount)
    assert disputes[2]["data"]["previous_attributes"]["status"] == "needs_response"
    assert last["evidence_details"]["has_evidence"] is True


def test_unknown_scenario_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("teleport")


# Fixtures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", SUBSCRIBED_EVENT_TYPES)
def test_fixture_exists_and_matches_the_simulator(event_type: str) -> None:
    path = FIXTURES / f"{event_type}.json"
    assert path.read_bytes() == encode(fixture_event(event_type)) + b"\n", (
        "regenerate with the command in tests/fixtures/README.md"
    )


def write_fixtures() -> None:
    """Regenerate tests/fixtures/stripe/*.json from the simulator (seeded, so reproducible)."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for event_type in SUBSCRIBED_EVENT_TYPES:
        (FIXTURES / f"{event_type}.json").write_bytes(encode(fixture_event(event_type)) + b"\n")


if __name__ == "__main__":
    write_fixtures()

"""Parsing Xsolla webhook bodies into typed messages.

The ``order_paid`` and ``payment`` bodies are Xsolla's own sandbox captures
(``xsolla/xsolla-ai-kit`` ``skills/webhooks-impl/fixtures``, commit 3ab3778); the others follow
the ``xsolla/xsolla-sdk-php`` message tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from caisse.errors import InvalidRequest
from caisse.providers.xsolla import simulator, webhooks
from caisse.providers.xsolla.webhooks import (
    Amount,
    OrderCanceled,
    OrderPaid,
    Payment,
    Refund,
    Unknown,
    UserValidation,
    error_body,
    parse,
)

ORDER_PAID_COMBINED = (
    b'{"items":[{"sku":"artifact_centaurs_axe","type":"virtual_good","is_pre_order":false,'
    b'"quantity":1,"amount":"1.9900","promotions":[]}],"notification_type":"order_paid",'
    b'"order":{"id":689810880,"mode":"sandbox","currency_type":"real","currency":"USD",'
    b'"amount":"1.9900","status":"paid","platform":"xsolla","comment":null,'
    b'"invoice_id":"2105129134","promotions":[]},"user":{"external_id":'
    b'"a1b2c3d4-0000-4000-8000-019fb6caa51e","email":"webhook-e2e@example.com","country":"DE"},'
    b'"billing":{"notification_type":"payment","settings":{"project_id":308077,'
    b'"merchant_id":887981},"purchase":{"total":{"currency":"USD","amount":1.99}},'
    b'"transaction":{"id":2105129134,"payment_method_order_id":"178547818170513111","dry_run":1,'
    b'"agreement":1536354,"payment_date":"2026-07-31T09:10:23+03:00","payment_method":1380,'
    b'"payment_method_name":"Bank card"},"payment_details":{"payment":{"currency":"USD",'
    b'"amount":2.17},"payment_method_sum":{"currency":"USD","amount":2.17},"xsolla_balance_sum":'
    b'{"currency":"USD","amount":0},"payout":{"currency":"USD","amount":1.77},"xsolla_fee":'
    b'{"currency":"USD","amount":0.11},"payment_method_fee":{"currency":"USD","amount":0.11},'
    b'"vat":{"currency":"USD","amount":0,"percent":0},"sales_tax":{"currency":"USD",'
    b'"amount":0.18,"percent":8.88},"direct_wht":{"currency":"USD","amount":0,"percent":0},'
    b'"payout_currency_rate":"1","repatriation_commission":{"currency":"USD","amount":0},'
    b'"country_wht":{"currency":"USD","amount":0,"percent":0},"user_acquisition_fee":'
    b'{"currency":"USD","amount":0,"percent":0}}}}'
)

PAYMENT = json.dumps(
    {
        "notification_type": "payment",
        "settings": {"project_id": 308077, "merchant_id": 887981},
        "purchase": {
            "checkout": {"currency": "USD", "amount": 1.99},
            "total": {"currency": "USD", "amount": 1.99},
        },
        "user": {
            "ip": "8.29.109.241",
            "email": "webhook-e2e@example.com",
            "id": "a1b2c3d4-0000-4000-8000-019fad89ee91",
            "country": "US",
            "zip": "10001",
        },
        "transaction": {
            "id": 2103276197,
            "payment_method_order_id": "178532294631749965",
            "dry_run": 1,
            "agreement": 1536354,
            "payment_date": "2026-07-29T14:02:38+03:00",
            "payment_method": 1380,
            "payment_method_name": "Bank card",
        },
        "payment_details": {"payment": {"currency": "USD", "amount": 2.17}},
        "custom_parameters": {"items": '[{"sku":"artifact_centaurs_axe","quantity":1}]'},
    },
    indent=2,
).encode()

USER_VALIDATION = (
    b'{"notification_type":"user_validation","settings":{"project_id":18404,"merchant_id":2340},'
    b'"user":{"ip":"127.0.0.1","email":"email@example.com","id":"1234567","name":"Xsolla User",'
    b'"country":"US"}}'
)

REFUND = json.dumps(
    {
        "notification_type": "refund",
        "purchase": {"total": {"currency": "USD", "amount": 200}},
        "user": {"id": "1234567", "email": "support@xsolla.com"},
        "transaction": {"id": 1, "external_id": 1, "dry_run": 1, "agreement": 1},
        "refund_details": {"code": 1, "reason": "Fraud"},
        "payment_details": {"payment": {"currency": "USD", "amount": "230"}},
    }
).encode()

ORDER_CANCELED_SEPARATE = json.dumps(
    {
        "notification_type": "order_canceled",
        "items": [
            {"sku": "virtual-good-item_test", "type": "virtual_good", "is_pre_order": False,
             "quantity": 3, "amount": "1000", "promotions": []},
            {"sku": "virtual-good-item_test_bundle", "type": "bundle", "is_pre_order": False,
             "quantity": 1, "amount": "1000", "promotions": []},
            {"sku": "gold", "type": "virtual_currency", "is_pre_order": False,
             "quantity": 1500, "amount": "[null]", "promotions": []},
        ],
        "order": {"id": 1, "mode": "default", "currency_type": "virtual",
                  "currency": "sku_currency", "amount": "2000", "status": "paid",
                  "platform": "xsolla", "comment": None, "invoice_id": "1"},
        "user": {"external_id": "id_xsolla_login_1", "email": "gc_user@xsolla.com"},
    }
).encode()  # fmt: skip


def test_order_paid_combined_capture() -> None:
    msg = parse(ORDER_PAID_COMBINED)
    assert isinstance(msg, OrderPaid)
    assert msg.order_id == 689810880
    assert msg.invoice_id == "2105129134"
    assert msg.transaction_id == "2105129134"
    assert msg.user_id == "a1b2c3d4-0000-4000-8000-019fb6caa51e"
    assert msg.user_email == "webhook-e2e@example.com"
    assert msg.status == "paid"
    assert msg.total == Amount(Decimal("1.99"), "USD")
    assert msg.billing_total == Amount(Decimal("1.99"), "USD")
    assert msg.project_id == 308077
    assert msg.merchant_id == 887981
    (item,) = msg.items
    assert item.sku == "artifact_centaurs_axe"
    assert item.quantity == 1
    assert item.amount == Decimal("1.99")
    assert isinstance(item.amount, Decimal)
    assert item.currency == "USD"
    assert item.type == "virtual_good"
    assert msg.sandbox is True
    assert msg.dry_run is True
    assert msg.is_test is True
    assert msg.transaction is not None
    assert msg.transaction.payment_date == dt.datetime(2026, 7, 31, 6, 10, 23, tzinfo=dt.UTC)
    assert msg.transaction.payment_method == 1380


def test_billing_numbers_are_exact_decimals() -> None:
    msg = parse(ORDER_PAID_COMBINED)
    assert isinstance(msg, OrderPaid)
    assert msg.billing_total is not None
    assert msg.billing_total.value == Decimal("1.99")
    assert str(msg.billing_total.value) == "1.99"  # never went through a binary float


def test_order_canceled_separate_mode() -> None:
    msg = parse(ORDER_CANCELED_SEPARATE)
    assert isinstance(msg, OrderCanceled)
    assert msg.order_id == 1
    assert msg.user_id == "id_xsolla_login_1"
    assert msg.transaction is None  # separate mode: no billing
    assert msg.transaction_id == "1"  # falls back to order.invoice_id
    assert msg.mode == "default"
    assert msg.is_test is False
    assert msg.total == Amount(Decimal("2000"), "sku_currency")
    assert [i.amount for i in msg.items] == [Decimal("1000"), Decimal("1000"), None]
    assert [i.quantity for i in msg.items] == [3, 1, 1500]


def test_user_validation() -> None:
    msg = parse(USER_VALIDATION)
    assert msg == UserValidation(
        user_id="1234567",
        email="email@example.com",
        country="US",
        ip="127.0.0.1",
        project_id=18404,
        merchant_id=2340,
    )


def test_user_validation_with_minimal_fields() -> None:
    msg = parse(b'{"notification_type":"user_validation","user":{"id":42}}')
    assert isinstance(msg, UserValidation)
    assert msg.user_id == "42"
    assert msg.email is None
    assert msg.project_id is None


def test_payment_capture() -> None:
    msg = parse(PAYMENT)
    assert isinstance(msg, Payment)
    assert msg.user_id == "a1b2c3d4-0000-4000-8000-019fad89ee91"
    assert msg.transaction_id == "2103276197"
    assert msg.total == Amount(Decimal("1.99"), "USD")
    assert msg.payment == Amount(Decimal("2.17"), "USD")
    assert msg.dry_run is True
    assert msg.is_test is True
    assert msg.custom_parameters["items"].startswith("[")


def test_refund() -> None:
    msg = parse(REFUND)
    assert isinstance(msg, Refund)
    assert msg.transaction_id == "1"
    assert msg.transaction.external_id == "1"
    assert msg.code == 1
    assert msg.reason == "Fraud"
    assert msg.partial is False
    assert msg.total == Amount(Decimal("200"), "USD")
    assert msg.payment == Amount(Decimal("230"), "USD")


def test_partial_refund_is_a_refund() -> None:
    doc = json.loads(REFUND)
    doc["notification_type"] = "partial_refund"
    msg = parse(json.dumps(doc).encode())
    assert isinstance(msg, Refund)
    assert msg.partial is True


def test_missing_dry_run_is_a_real_payment() -> None:  # PHP SDK isDryRun()
    doc = json.loads(PAYMENT)
    del doc["transaction"]["dry_run"]
    msg = parse(json.dumps(doc).encode())
    assert isinstance(msg, Payment)
    assert msg.dry_run is False


@pytest.mark.parametrize("kind", ["user_search", "create_subscription", "afs_reject", "dispute"])
def test_unknown_types_parse_as_unknown(kind: str) -> None:  # W9
    assert parse(json.dumps({"notification_type": kind, "x": 1}).encode()) == Unknown(kind)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"INVALID_REQUEST_CONTENT", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"order_paid"', id="string"),
        pytest.param(b'{"foo":"bar"}', id="no-type"),
        pytest.param(b'{"notification_type":""}', id="empty-type"),
        pytest.param(b'{"notification_type":7}', id="numeric-type"),
        pytest.param(b'{"notification_type":"user_validation"}', id="no-user"),
        pytest.param(b'{"notification_type":"user_validation","user":{"id":""}}', id="empty-uid"),
        pytest.param(b'{"notification_type":"payment","user":{"id":"1"}}', id="no-transaction"),
        pytest.param(
            b'{"notification_type":"order_paid","user":{"external_id":"u"},"items":[]}',
            id="no-order",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":1},"user":{"id":"u"},"items":[]}',
            id="order-without-external-id",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":"abc"},"user":{"external_id":"u"}}',
            id="order-id-not-integer",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":1,"amount":"lots"},'
            b'"user":{"external_id":"u"}}',
            id="bad-amount",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":1,"amount":NaN},'
            b'"user":{"external_id":"u"}}',
            id="nan-amount",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":1},"user":{"external_id":"u"},'
            b'"items":[{"quantity":1}]}',
            id="item-without-sku",
        ),
        pytest.param(
            b'{"notification_type":"order_paid","order":{"id":1},"user":{"external_id":"u"},'
            b'"items":{"sku":"a"}}',
            id="items-not-a-list",
        ),
    ],
)
def test_malformed_bodies_raise_invalid_request(body: bytes) -> None:  # W8
    with pytest.raises(InvalidRequest):
        parse(body)


def test_messages_are_frozen() -> None:
    msg = parse(USER_VALIDATION)
    assert isinstance(msg, UserValidation)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.user_id = "someone-else"  # type: ignore[misc]


# Every type the simulator builds parses back, amounts as Decimal. ------------------------------


ITEMS = (
    simulator.SimItem("gems_500", 2, Decimal("9.98")),
    simulator.SimItem("sword_01", 1, Decimal("4.99")),
)


@pytest.mark.parametrize("combined", [True, False])
@pytest.mark.parametrize("kind", ["order_paid", "order_canceled"])
def test_simulator_order_messages_round_trip(kind: str, combined: bool) -> None:
    build = simulator.build_order_paid if kind == "order_paid" else simulator.build_order_canceled
    payload = build(
        order_id=4567,
        user_id="uid-1",
        items=ITEMS,
        currency="EUR",
        transaction_id=87654321,
        sandbox=False,
        combined=combined,
        external_id="ord_abc",
    )
    msg = parse(simulator.encode(payload))
    assert isinstance(msg, OrderPaid if kind == "order_paid" else OrderCanceled)
    assert msg.order_id == 4567
    assert msg.user_id == "uid-1"
    assert msg.total == Amount(Decimal("14.97"), "EUR")
    assert [(i.sku, i.quantity, i.amount) for i in msg.items] == [
        ("gems_500", 2, Decimal("9.98")),
        ("sword_01", 1, Decimal("4.99")),
    ]
    assert all(isinstance(i.amount, Decimal) for i in msg.items)
    assert msg.transaction_id == "87654321"
    assert msg.is_test is False
    if combined:
        assert msg.billing_total == Amount(Decimal("14.97"), "EUR")
        assert msg.external_id == "ord_abc"
    else:
        assert msg.transaction is None


def test_simulator_payment_refund_and_user_validation_round_trip() -> None:
    common: dict[str, Any] = {
        "transaction_id": 99,
        "user_id": "uid-1",
        "amount": Decimal("1.99"),
        "external_id": "ord_abc",
    }
    payment = parse(simulator.encode(simulator.build_payment(**common)))
    assert isinstance(payment, Payment)
    assert payment.total == Amount(Decimal("1.99"), "USD")
    assert payment.transaction.external_id == "ord_abc"
    assert payment.dry_run is True
    refund = parse(simulator.encode(simulator.build_refund(**common, code=2, reason="Chargeback")))
    assert isinstance(refund, Refund)
    assert (refund.code, refund.reason, refund.transaction_id) == (2, "Chargeback", "99")
    uv = parse(simulator.encode(simulator.build_user_validation(user_id="uid-1", email="a@b.co")))
    assert isinstance(uv, UserValidation)
    assert uv.user_id == "uid-1"


# Error answers ------------------------------------------------------------------------------


def test_error_codes_are_xsollas() -> None:
    assert webhooks.INVALID_USER == "INVALID_USER"
    assert webhooks.INVALID_PARAMETER == "INVALID_PARAMETER"
    assert webhooks.INVALID_SIGNATURE == "INVALID_SIGNATURE"
    assert webhooks.INCORRECT_AMOUNT == "INCORRECT_AMOUNT"
    assert webhooks.INCORRECT_INVOICE == "INCORRECT_INVOICE"
    assert webhooks.ERROR_STATUS == 400


def test_error_body_shape() -> None:
    assert error_body(webhooks.INVALID_USER, "Invalid user") == {
        "error": {"code": "INVALID_USER", "message": "Invalid user"}
    }


def test_error_body_refuses_unknown_codes() -> None:
    with pytest.raises(ValueError, match="error code"):
        error_body("invalid_user", "lowercase is not Xsolla's")

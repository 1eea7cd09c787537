"""Transaction report rows → TransactionRecord (no network): the reference samples of Xsolla's
"Find transactions" and "Find transactions (fast search)" pages, and malformed answers."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from caisse.errors import ProviderError
from caisse.providers.xsolla.client import parse_transactions

# The response sample of GET /merchants/{merchant_id}/reports/transactions/search.json.
SEARCH_SAMPLE = [
    {
        "payment_details": {
            "payment": {"amount": 7.96, "amount_from_ps": 7.96, "currency": "RUB"},
            "sales_tax": {"amount": 0, "percent": 0},
        },
        "payment_system": {"decline_reason": None},
        "purchase": {
            "pin_codes": {"amount": None, "content": None, "currency": None},
            "simple_checkout": {"amount": 7.96, "currency": "RUB"},
            "subscription": {"name": None},
            "virtual_currency": {"amount": 0, "name": None},
            "virtual_items": None,
        },
        "transaction": {
            "create_date": "2021-10-20",
            "dry_run": 0,
            "external_id": "example-external-id",
            "id": 123456789,
            "is_refund_allowed": 0,
            "payment_method": {"id": 1, "name": "PayPal"},
            "project": {"id": 123456, "name": "Example"},
            "refund_reason": None,
            "status": "done",
            "transfer_date": "2021-10-20",
        },
        "user": {
            "country": "RU",
            "custom": None,
            "email": "email@example.com",
            "id": "example-id",
            "name": "Example",
            "phone": None,
        },
    }
]


def test_search_sample_becomes_domain_values() -> None:
    (tx,) = parse_transactions(SEARCH_SAMPLE)
    assert tx.id == "123456789"
    assert tx.external_id == "example-external-id"
    assert tx.status == "done"
    assert tx.project_id == "123456"
    assert tx.user_id == "example-id"
    assert (tx.amount, tx.currency) == (Decimal("7.96"), "RUB")
    assert tx.dry_run is False
    assert tx.payment_method == "PayPal"
    assert tx.payment_date == dt.datetime(2021, 10, 20, tzinfo=dt.UTC)
    assert json.loads(tx.raw) == SEARCH_SAMPLE[0]


def test_fast_search_row_without_dry_run_and_a_lone_object() -> None:
    row = {
        "payment_details": {"payment": {"amount": "4.99", "currency": "usd"}},
        "transaction": {
            "external_id": "ord_1",
            "id": "2100000001",
            "payment_date": "2026-03-01T12:00:00+01:00",
            "project": {"id": 44056, "name": "Game"},
            "refund_reason": "Chargeback",
            "status": "refunded",
        },
        "user": {"country": "FR"},
    }
    (tx,) = parse_transactions(row)
    assert tx.dry_run is None
    assert tx.user_id is None
    assert (tx.amount, tx.currency) == (Decimal("4.99"), "USD")
    assert tx.payment_date == dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.UTC)
    assert tx.refund_reason == "Chargeback"


@pytest.mark.parametrize(
    "doc",
    [
        "not a list",
        [{"transaction": {"status": "done"}}],
        [{"transaction": {"id": 1}}],
        [{"transaction": {"id": True, "status": "done"}}],
        [42],
    ],
)
def test_malformed_answers_are_provider_errors(doc: object) -> None:
    with pytest.raises(ProviderError):
        parse_transactions(doc)

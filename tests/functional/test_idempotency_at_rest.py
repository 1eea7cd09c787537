"""Idempotent answers are kept sealed at rest, on both engines: the raw ``idempotency_keys`` row
holds no ``client_secret``, no ``whsec_`` secret and no customer data, yet a replay with the same
``Idempotency-Key`` answers byte for byte what the first request answered."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pytest
from sqlalchemy import text
from tests.support.api import Merchant, new_merchant, order_body

from caisse.errors import IdempotencyConflict
from caisse.orders import idempotency
from caisse.runtime import Runtime
from caisse.tenants.services import Caller


@pytest.fixture
def merchant(client: Any, rt: Runtime) -> Merchant:
    return new_merchant(client, rt)


def raw_rows(rt: Runtime) -> list[str]:
    """Every stored idempotency row as the database holds it (JSON read back as text)."""
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT scope, key, request_hash, status_code, CAST(response AS TEXT) "
                "FROM idempotency_keys"
            )
        ).all()
    return [" ".join(str(v) for v in row) for row in rows]


def post(client: Any, merchant: Merchant, path: str, body: Any, key: str) -> Any:
    return client.post(path, json=body, headers={**merchant.auth(), "Idempotency-Key": key})


def test_order_answer_is_sealed_at_rest_and_replayed_identically(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    body, key = order_body(), "idem-" + secrets.token_hex(6)
    first = post(client, merchant, "/v1/orders", body, key)
    assert first.status_code == 201, first.text
    client_secret = first.json()["payment"]["client_secret"]
    assert "_secret_" in client_secret  # the answer itself does carry it, once per key

    rows = raw_rows(rt)
    assert len(rows) == 1
    assert "_secret_" not in rows[0]
    assert client_secret not in rows[0]
    assert first.json()["payment"]["payment_intent"] not in rows[0]
    assert "buyer@example.com" not in rows[0]

    again = post(client, merchant, "/v1/orders", body, key)
    assert again.status_code == 201
    assert again.content == first.content


def test_cancel_answer_is_sealed_at_rest_and_replayed_identically(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    made = post(client, merchant, "/v1/orders", order_body(), secrets.token_hex(8))
    assert made.status_code == 201, made.text
    order_id = made.json()["id"]
    key = secrets.token_hex(8)
    first = post(client, merchant, f"/v1/orders/{order_id}/cancel", {}, key)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "canceled"
    assert "_secret_" in first.json()["payment"]["client_secret"]

    for row in raw_rows(rt):
        assert "_secret_" not in row
        assert "buyer@example.com" not in row

    again = post(client, merchant, f"/v1/orders/{order_id}/cancel", {}, key)
    assert again.status_code == 200
    assert again.content == first.content


def test_endpoint_secret_is_not_kept_by_the_idempotency_row(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    body, key = {"url": "https://partner.example.com/hook"}, "ep-" + secrets.token_hex(4)
    first = post(client, merchant, "/v1/endpoints", body, key)
    assert first.status_code == 201, first.text
    assert first.json()["secret"].startswith("whsec_")

    rows = raw_rows(rt)
    assert rows
    assert all("whsec_" not in row for row in rows)

    again = post(client, merchant, "/v1/endpoints", body, key)
    assert again.status_code == 201
    assert again.json() == first.json()


def test_sealed_progress_resumes_after_a_crash_and_clear_rows_still_replay(rt: Runtime) -> None:
    caller = Caller("ten_sealed", "test")
    now = dt.datetime.now(dt.UTC)
    later = now + idempotency.STALE_AFTER + dt.timedelta(seconds=1)
    with rt.db.write() as s:
        idempotency.claim(s, caller, "scope", "k1", {"a": 1}, now=now, box=rt.box)
        idempotency.note_progress(s, caller, "scope", "k1", {"order_id": "ord_x"}, box=rt.box)
    with rt.db.write() as s, pytest.raises(IdempotencyConflict):  # still in progress
        idempotency.claim(s, caller, "scope", "k1", {"a": 1}, now=now, box=rt.box)
    with rt.db.write() as s:
        resumed = idempotency.claim(s, caller, "scope", "k1", {"a": 1}, now=later, box=rt.box)
    assert resumed.resume == {"order_id": "ord_x"}
    assert all("ord_x" not in row for row in raw_rows(rt))

    # A row written in clear (before sealing existed, or ids only) replays as it was.
    with rt.db.write() as s:
        idempotency.claim(s, caller, "scope", "k2", {"b": 2}, now=now)
        idempotency.finish(s, caller, "scope", "k2", 201, {"id": "we_1"})
    with rt.db.write() as s:
        replay = idempotency.claim(s, caller, "scope", "k2", {"b": 2}, now=later, box=rt.box)
    assert replay.replay == (201, {"id": "we_1"})

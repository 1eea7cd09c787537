"""Inbound event rows as ingest stores them, for tests that write through the raw batch writer."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from caisse import ids
from caisse.storage.inbound import encode_body


def row(event_id: str, body: bytes, when: dt.datetime, tenant_id: str = "ten_t") -> dict[str, Any]:
    stored, encoding = encode_body(body)
    return {
        "id": ids.new_id("event"),
        "tenant_id": tenant_id,
        "environment": "test",
        "provider": "stripe",
        "provider_event_id": event_id,
        "type": "payment_intent.succeeded",
        "provider_account_id": None,
        "provider_created_at": when,
        "body": stored,
        "body_encoding": encoding,
        "headers": {"user-agent": "Stripe/1.0"},
        "remote_addr": "127.0.0.1",
        "status": "pending",
        "attempts": 0,
        "run_at": when,
        "received_at": when,
    }


def unmatched_event(event_id: str, when: dt.datetime) -> bytes:
    """A well-formed ``payment_intent.succeeded`` for an intent no order has: it processes to
    ``unmatched``."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(when.timestamp()),
            "livemode": False,
            "data": {
                "object": {
                    "object": "payment_intent",
                    "id": f"pi_{event_id}",
                    "status": "succeeded",
                    "amount": 2000,
                    "amount_received": 2000,
                    "currency": "eur",
                    "created": int(when.timestamp()),
                    "metadata": {},
                }
            },
        }
    ).encode()

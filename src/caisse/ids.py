"""Public identifiers: a readable prefix and a time-sortable random part, as Stripe's ids do.

The random part is 80 bits from ``secrets``; the leading 48-bit millisecond timestamp makes ids
sort by creation time, which keeps ``starting_after`` pagination and B-tree inserts cheap.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, no I L O U

PREFIXES = {
    "tenant": "ten",
    "order": "ord",
    "payment": "pay",
    "refund": "re",
    "dispute": "dp",
    "event": "evt",
    "job": "job",
    "endpoint": "ep",
    "message": "msg",
    "delivery": "dlv",
    "attempt": "att",
    "invoice": "inv",
    "email": "em",
    "user": "usr",
    "catalog_item": "sku",
    "entitlement": "ent",
    "provider_account": "pa",
}


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(kind: str) -> str:
    """A new id such as ``ord_01JB8Z2Q6N4W7X9TQK3M5R8VCA``."""
    prefix = PREFIXES[kind]
    millis = time.time_ns() // 1_000_000
    rand = secrets.randbits(80)
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def has_prefix(value: str, kind: str) -> bool:
    return value.startswith(PREFIXES[kind] + "_")

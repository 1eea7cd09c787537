"""The envelope of a Stripe snapshot event: what ingest must know of one before storing it.

Ingest needs the event's id, type, ``livemode``, ``created`` and ``account``, and to know that
the body is a JSON event carrying an object. msgspec decodes just that into a struct: the rest
of the body (the 3 KB object) is checked as JSON on the way but never built into Python
objects, which is a quarter of the cost of a full parse and leaves no garbage behind.

Anything msgspec refuses goes through a full parse whose verdict decides, as it did before
(the stdlib takes a UTF-8 BOM, ``NaN`` and lone surrogate escapes, which msgspec does not). So
the fast path changes how quickly an event is read, never which events are accepted; both
paths end in the same checks (``tests/unit/providers/stripe/test_envelope.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeGuard

import msgspec
from pydantic_core import from_json

from caisse.errors import InvalidRequest

MAX_ID_LENGTH = 100
MAX_CREATED = 2**37
"""A ``created`` past this (year 6325) or below zero is no time at all: kept as unknown."""


class _Object(msgspec.Struct):
    """Any JSON object: its members are checked as JSON and skipped."""


class _Data(msgspec.Struct):
    object: _Object


class Envelope(msgspec.Struct, frozen=True):
    id: str
    type: str
    livemode: bool
    created: int | None = None
    account: str | None = None


class _Wire(msgspec.Struct):
    """The envelope as it is on the wire; a field of another type sends the body to the full
    parse, which decides."""

    id: str
    type: str
    object: str
    livemode: bool
    data: _Data
    created: Annotated[int, msgspec.Meta(ge=0, lt=MAX_CREATED)] | None = None
    account: str | None = None


_DECODER = msgspec.json.Decoder(_Wire)


def read(body: bytes) -> Envelope:
    """The envelope of a snapshot event, or :class:`InvalidRequest` saying what is wrong."""
    try:
        wire = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return _read_parsed(_parse(body))
    _check_kind(wire.object, wire.id, wire.type)
    return Envelope(wire.id, wire.type, wire.livemode, wire.created, wire.account)


def _parse(body: bytes) -> Any:
    try:
        return from_json(body, cache_strings="keys")  # pydantic's: twice as fast as json's
    except ValueError:
        try:  # the stdlib's verdict decides (it takes a BOM and lone surrogates)
            return json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidRequest("The body is not JSON") from None


def _read_parsed(event: Any) -> Envelope:
    if not isinstance(event, dict):
        raise InvalidRequest("The body is not a Stripe event")
    eid, etype = _check_kind(event.get("object"), event.get("id"), event.get("type"))
    livemode = event.get("livemode")
    if not isinstance(livemode, bool):
        raise InvalidRequest("The event has no livemode")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidRequest("The event has no data.object")
    created, account = event.get("created"), event.get("account")
    if account is not None and not isinstance(account, str):
        # The account an event names binds it to a tenant: never read a malformed one as none.
        raise InvalidRequest("The body is not a Stripe event")
    return Envelope(eid, etype, livemode, created if is_time(created) else None, account)


def is_time(value: object) -> TypeGuard[int]:
    """Whether a Stripe unix time (``created``, ``due_by``) names a moment a datetime can hold;
    any other value is treated as absent, not as an error that would fail the event for ever."""
    return type(value) is int and 0 <= value < MAX_CREATED


def _check_kind(kind: Any, eid: Any, etype: Any) -> tuple[str, str]:
    """A snapshot event's ``object``, ``id`` and ``type``, or :class:`InvalidRequest`."""
    if kind == "v2.core.event":
        raise InvalidRequest(
            "Thin (v2) events are not accepted on this endpoint; send snapshot events"
        )
    if kind != "event" or not isinstance(eid, str) or not eid.startswith("evt_"):
        raise InvalidRequest("The body is not a Stripe event")
    if not isinstance(etype, str) or not etype or len(etype) > MAX_ID_LENGTH:
        raise InvalidRequest("The body is not a Stripe event")
    if len(eid) > MAX_ID_LENGTH:
        raise InvalidRequest("The body is not a Stripe event")
    return eid, etype

"""Reading a Stripe event's envelope: the msgspec fast path never changes a verdict.

Every body is judged against the full parse (``_read_parsed(_parse(body))``), which is what
ingest did before the fast path existed: same envelope, or the same error message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caisse.errors import InvalidRequest
from caisse.providers.stripe import envelope, simulate
from caisse.providers.stripe.envelope import Envelope, _parse, _read_parsed


def full(body: bytes) -> Envelope | str:
    try:
        return _read_parsed(_parse(body))
    except InvalidRequest as exc:
        return exc.message


def fast(body: bytes) -> Envelope | str:
    try:
        return envelope.read(body)
    except InvalidRequest as exc:
        return exc.message


def dump(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def test_a_real_event_is_read_without_a_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    event = simulate.build_event("payment_intent.succeeded", livemode=True, account="acct_1")
    body = dump(event)
    expected = full(body)

    def refuse(body: bytes) -> Any:
        raise AssertionError("the full parse ran")

    monkeypatch.setattr(envelope, "_parse", refuse)
    got = envelope.read(body)
    assert got == expected
    assert got == Envelope(event["id"], event["type"], True, event["created"], "acct_1")


BASE = {
    "id": "evt_1",
    "object": "event",
    "type": "payment_intent.succeeded",
    "livemode": False,
    "created": 1_700_000_000,
    "data": {"object": {"id": "pi_1", "amount": 100}},
}
RAW = dump(BASE)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + RAW,  # a UTF-8 BOM: msgspec refuses, the stdlib takes it
        RAW.replace(b'"amount":100', b'"amount":NaN'),
        RAW.replace(b'"pi_1"', b'"\\ud800"'),  # a lone surrogate escape
        dump({**BASE, "created": True}),
        dump({**BASE, "created": 1.5}),
        dump({**BASE, "created": -1}),
        dump({**BASE, "created": 10**20}),  # no year: kept as unknown, not a 503 later
        dump({**BASE, "extra": [1, {"a": None}]}),
    ],
    ids=[
        "bom",
        "nan",
        "surrogate",
        "created_bool",
        "created_float",
        "created_negative",
        "created_huge",
        "extra_fields",
    ],
)
def test_what_msgspec_refuses_the_full_parse_decides(body: bytes) -> None:
    got = fast(body)
    assert isinstance(got, Envelope)
    assert got == full(body)
    assert got.id == "evt_1"
    assert got.created in (None, 1_700_000_000)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "The body is not JSON"),
        (RAW[:-1], "The body is not JSON"),
        (RAW.replace(b"}}", b",}}", 1), "The body is not JSON"),
        (b"[1, 2]", "The body is not a Stripe event"),
        (dump({**BASE, "object": "list"}), "The body is not a Stripe event"),
        (dump({**BASE, "id": "ch_1"}), "The body is not a Stripe event"),
        (dump({**BASE, "id": "evt_" + "x" * 100}), "The body is not a Stripe event"),
        (dump({**BASE, "type": ""}), "The body is not a Stripe event"),
        (dump({**BASE, "type": 5}), "The body is not a Stripe event"),
        (dump({**BASE, "livemode": "false"}), "The event has no livemode"),
        (dump({**BASE, "data": {"object": [1]}}), "The event has no data.object"),
        (dump({**BASE, "data": None}), "The event has no data.object"),
        (dump({**BASE, "object": "v2.core.event"}), "Thin (v2) events"),
        (dump({**BASE, "account": 7}), "The body is not a Stripe event"),
        (b"[" * 100_000 + b"]" * 100_000, "The body is not JSON"),
    ],
    ids=[
        "text",
        "truncated",
        "trailing_comma",
        "array",
        "not_event",
        "not_evt_id",
        "long_id",
        "empty_type",
        "type_number",
        "livemode_text",
        "object_list",
        "data_null",
        "thin",
        "account_number",
        "deep",
    ],
)
def test_a_body_that_is_not_an_event_gets_the_same_answer(body: bytes, message: str) -> None:
    got = fast(body)
    assert isinstance(got, str)
    assert got.startswith(message)
    assert got == full(body)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["evt_1", "event", "v2.core.event", "acct_1", "x" * 101]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["object", "id"]), st.integers(), max_size=2),
    st.just({"object": {}}),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "object", "type", "livemode", "created", "account", "data"]),
        _VALUES,
    ),
    st.booleans(),
)
def test_any_envelope_reads_as_the_full_parse_reads_it(fields: dict[str, Any], base: bool) -> None:
    event = {**BASE, **fields} if base else fields
    body = json.dumps(event).encode()
    assert fast(body) == full(body)

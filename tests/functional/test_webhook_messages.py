"""The partner message schema (docs/webhooks.md, docs/schemas/webhook-v1.json) against the real
code path: realistic, signed Stripe events for every lifecycle go in through the callback URL,
and every partner message caisse writes must validate against the JSON Schema and have exactly
the shape of the documented example of its type — so the docs cannot drift from the code.

``CAISSE_WRITE_WEBHOOK_EXAMPLES=<file>`` also writes one real message per type there (to
refresh the examples in the docs by hand).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select
from tests.support.api import drain, flow, new_merchant, post_event

from caisse.delivery.worker import message_body
from caisse.domain.events import MessageType
from caisse.runtime import Runtime
from caisse.storage import models as m

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "webhooks.md"
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "webhook-v1.json").read_text())
EXAMPLE = re.compile(r"<!-- example: (?P<type>[a-z_.]+) -->\s*```json\n(?P<body>.*?)```", re.S)
#: An example may shorten ``data.order`` to ``{"id": …, "…": "…"}``; the full order is shown
#: (and checked) once, in ``order.paid``.
ELIDED = "…"
SCENARIOS = ("payment_failed_then_success", "canceled", "full_refund", "dispute_lost")


def documented() -> dict[str, dict[str, Any]]:
    return {m["type"]: json.loads(m["body"]) for m in EXAMPLE.finditer(DOC.read_text())}


def expanded(example: dict[str, Any], full_order: dict[str, Any]) -> dict[str, Any]:
    """The example with a shortened ``data.order`` replaced by the full one (its own fields
    kept), as a partner would receive it."""
    out = json.loads(json.dumps(example))
    order = out["data"].get("order")
    if isinstance(order, dict) and ELIDED in order:
        out["data"]["order"] = {**full_order, **{k: v for k, v in order.items() if k != ELIDED}}
    return out


def shape(value: Any, path: str = "") -> Any:
    """The structure of a JSON value: keys of objects (recursively), the shape of a list's
    first item, and the JSON kind of scalars (null matches anything: optional values)."""
    if isinstance(value, dict):
        return {k: shape(v, f"{path}.{k}") for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0], f"{path}[]")] if value else []
    return None


def same_shape(doc: Any, real: Any) -> bool:
    """True when ``real`` has the structure the example ``doc`` shows (a shortened object
    only promises the keys it names)."""
    if isinstance(doc, dict) and ELIDED in doc:
        return isinstance(real, dict) and set(doc) - {ELIDED} <= set(real)
    if isinstance(doc, dict) and isinstance(real, dict):
        return doc.keys() == real.keys() and all(same_shape(doc[k], real[k]) for k in doc)
    if isinstance(doc, list) and isinstance(real, list):
        return not doc or not real or same_shape(doc[0], real[0])
    return True


@pytest.fixture
def real_messages(client: Any, rt: Runtime) -> dict[str, dict[str, Any]]:
    """The first message of each type that real Stripe lifecycles produce."""
    merchant = new_merchant(client, rt)
    for name in SCENARIOS:
        _, events = flow(client, merchant, name)
        for event in events:  # one at a time: a later state would hide an earlier message
            assert post_event(client, merchant, event).status_code == 200
            drain(rt)
    found: dict[str, dict[str, Any]] = {}
    with rt.db.read() as s:
        for row in s.scalars(select(m.Message).order_by(m.Message.id)):
            found.setdefault(row.type, row.payload)
    target = os.environ.get("CAISSE_WRITE_WEBHOOK_EXAMPLES")
    if target:
        Path(target).write_text(json.dumps(found, indent=2, ensure_ascii=False))
    return found


def test_every_type_has_a_documented_example_valid_against_the_schema() -> None:
    examples = documented()
    assert set(examples) == {t.value for t in MessageType}
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    full_order = examples["order.paid"]["data"]["order"]
    for type_, example in examples.items():
        assert example["type"] == type_
        jsonschema.validate(
            expanded(example, full_order), SCHEMA, cls=jsonschema.Draft202012Validator
        )


def test_real_messages_match_the_schema_and_the_documented_examples(
    real_messages: dict[str, dict[str, Any]],
) -> None:
    examples = documented()
    assert set(real_messages) == {t.value for t in MessageType}
    for type_, payload in real_messages.items():
        jsonschema.validate(payload, SCHEMA, cls=jsonschema.Draft202012Validator)
        assert list(json.loads(message_body(payload))) == ["type", "timestamp", "data"]
        assert same_shape(examples[type_], payload), (
            f"{type_}: docs/webhooks.md shows {shape(examples[type_])}, caisse sends "
            f"{shape(payload)}"
        )


def test_the_schema_refuses_what_v1_does_not_promise() -> None:
    examples = documented()
    example = expanded(examples["order.refunded"], examples["order.paid"]["data"]["order"])
    broken = json.loads(json.dumps(example))
    del broken["data"]["details"]["amount_refunded_now"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA, cls=jsonschema.Draft202012Validator)
    reversed_ = json.loads(json.dumps(example))
    reversed_["data"]["details"]["reversal"] = True  # the optional flag a reversal carries
    jsonschema.validate(reversed_, SCHEMA, cls=jsonschema.Draft202012Validator)
    reversed_["data"]["details"]["reversal"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(reversed_, SCHEMA, cls=jsonschema.Draft202012Validator)

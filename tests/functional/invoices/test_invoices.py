"""Paid orders get an invoice, refunds a credit note, buyers an e-mail: test and live apart.

Driven as in production: orders through the API, payments and refunds as signed Stripe events,
jobs drained as a worker would; PDFs read back with pypdf, Factur-X extracted and validated,
e-mails received by a real SMTP server (aiosmtpd) — or, in test mode, never sent to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from email import message_from_bytes, policy
from typing import Any

import facturx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from tests.support.api import Merchant, drain, new_merchant, order_event, order_meta, post_event

from caisse.config import Settings
from caisse.invoices.facturx import validate
from caisse.providers.stripe import simulate
from caisse.storage import models as m

YEAR = dt.datetime.now(dt.UTC).year
LEGAL = {
    "legal_name": "Hôtel du Port SAS",
    "address_line1": "1 quai de la Fosse",
    "postcode": "44000",
    "city": "Nantes",
    "country": "FR",
    "vat_number": "FR12345678901",
    "registration_number": "12345678900012",
    "invoice_footer": "Hôtel du Port SAS au capital de 10 000 € – RCS Nantes",
    "email": "compta@hotel-du-port.example",
}
# 1×1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def merchant(client: Any, rt: Any) -> Merchant:
    merchant = new_merchant(client, rt, envs=("test", "live"))
    r = client.patch(
        "/v1/tenant", json={"legal": {**LEGAL, "language": "fr"}}, headers=merchant.auth("test")
    )
    assert r.status_code == 200, r.text
    return merchant


def pay(
    client: Any,
    merchant: Merchant,
    env: str = "test",
    *,
    scenario: str = "card_payment_succeeded",
    refunds: list[int] | None = None,
    email: str = "jeanne@example.org",
    rt: Any = None,
    customer: dict[str, Any] | None = None,
    lines: list[dict[str, Any]] | None = None,
    key: str = "",
) -> dict[str, Any]:
    """Create an order (two VAT rates) and play a Stripe scenario for it; with ``rt``, each
    event is processed before the next is sent (Stripe's order, no overtaking)."""
    body = {
        "reference": "RES-2042",
        "customer": {
            "email": email,
            "name": "Jeanne Dupont",
            "address": {
                "line1": "3 avenue Foch",
                "postal_code": "69006",
                "city": "Lyon",
                "country": "FR",
            },
            **(customer or {}),
        },
        "currency": "eur",
        "lines": lines
        or [
            {
                "description": "Nuitée chambre double",
                "quantity": 2,
                "unit_amount": 11000,
                "tax_rate": "10",
            },
            {
                "description": "Petit-déjeuner",
                "quantity": 2,
                "unit_amount": 1200,
                "tax_rate": "5.5",
            },
        ],
    }
    r = client.post(
        "/v1/orders",
        json=body,
        headers={**merchant.auth(env), "Idempotency-Key": f"k-{env}-{scenario}{key}"},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    events = simulate.scenario(
        scenario,
        livemode=env == "live",
        amount=order["amount_total"],
        payment_intent_id=order["payment"]["payment_intent"],
        metadata=order_meta(merchant, order),
        refunds=refunds,
    )
    for event in events:
        assert post_event(client, merchant, event, env=env).status_code == 200
        if rt is not None:
            drain(rt)
    return dict(order)


def test_test_mode_invoice_is_marked_test_and_mail_stays_in_the_test_mailbox(
    client, rt, merchant, smtp
):
    order = pay(client, merchant, "test")
    drain(rt)

    view = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert view["status"] == "paid"
    summary = view["invoice"]
    assert summary["number"] == f"TEST-{YEAR}-000001"
    assert summary["kind"] == "invoice"
    assert view["credit_notes"] == []

    invoice = client.get(f"/v1/invoices/{summary['id']}", headers=merchant.auth()).json()
    assert invoice["livemode"] is False
    assert invoice["facturx"] is False
    assert invoice["status"] == "issued"
    assert invoice["amount_gross"] == 24400
    assert invoice["amount_net"] + invoice["amount_tax"] == 24400
    assert {v["rate"] for v in invoice["vat"]} == {"10", "5.5"}
    assert invoice["seller"]["legal_name"] == "Hôtel du Port SAS"
    assert invoice["buyer"]["email"] == "jeanne@example.org"

    r = client.get(f"/v1/invoices/{summary['id']}/pdf", headers=merchant.auth())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    text = text_of(r.content)
    assert "TEST" in text
    assert "sans valeur comptable" in text
    assert f"TEST-{YEAR}-000001" in text
    assert "244,00 €" in text
    assert "Récapitulatif TVA" in text
    assert "SIRET" in text
    assert "Pénalités de retard" not in text  # a consumer: the B2B mentions do not apply
    assert invoice["pdf_sha256"] == __import__("hashlib").sha256(r.content).hexdigest()

    # The buyer's e-mail went to the test mailbox, and nothing reached the SMTP server.
    emails = client.get("/v1/emails", headers=merchant.auth()).json()["data"]
    assert len(emails) == 1
    email = emails[0]
    assert email["status"] == "captured"
    assert email["to"] == "jeanne@example.org"
    assert email["subject"].startswith("[TEST] Votre facture")
    assert email["attachments"][0]["filename"] == f"TEST-{YEAR}-000001.pdf"
    assert smtp.envelopes == []
    assert smtp.connections == 0
    assert client.get("/v1/emails", headers=merchant.auth("live")).json()["data"] == []

    # The partner message is written through the outbox.
    with rt.db.read() as s:
        types = s.scalars(select(m.Message.type).where(m.Message.order_id == order["id"])).all()
    assert "invoice.issued" in types

    # Listing, filtered by order; live sees none of it.
    listed = client.get(
        "/v1/invoices", params={"order_id": order["id"]}, headers=merchant.auth()
    ).json()
    assert [i["id"] for i in listed["data"]] == [summary["id"]]
    assert client.get("/v1/invoices", headers=merchant.auth("live")).json()["data"] == []
    assert (
        client.get(f"/v1/invoices/{summary['id']}", headers=merchant.auth("live")).status_code
        == 404
    )


def test_live_invoice_is_factur_x_and_mailed_over_smtp(client, rt, merchant, smtp):
    order = pay(client, merchant, "live")
    drain(rt)

    summary = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth("live")).json()[
        "invoice"
    ]
    assert summary["number"] == f"F{YEAR}-000001"
    pdf = client.get(summary["pdf_url"], headers=merchant.auth("live")).content
    text = text_of(pdf)
    assert "TEST" not in text
    assert f"F{YEAR}-000001" in text
    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml"
    validate(xml)
    assert f"F{YEAR}-000001".encode() in xml
    assert b"<ram:TypeCode>380" in xml

    assert len(smtp.envelopes) == 1
    envelope = smtp.envelopes[0]
    assert envelope.rcpt_tos == ["jeanne@example.org"]
    received = message_from_bytes(envelope.original_content, policy=policy.default)
    assert received["Subject"] == f"Votre facture F{YEAR}-000001 – Hôtel du Port SAS"
    assert received["Reply-To"] == "compta@hotel-du-port.example"
    (attachment,) = list(received.iter_attachments())
    assert attachment.get_filename() == f"F{YEAR}-000001.pdf"
    assert attachment.get_content() == pdf

    (email,) = client.get("/v1/emails", headers=merchant.auth("live")).json()["data"]
    assert email["status"] == "sent"
    assert email["sent"] is not None


def test_live_without_smtp_records_not_sent_and_finishes(client, rt, merchant, smtp):
    rt.settings = Settings(**{**rt.settings.__dict__, "smtp_url": None})  # type: ignore[arg-type]
    pay(client, merchant, "live")
    drain(rt)
    (email,) = client.get("/v1/emails", headers=merchant.auth("live")).json()["data"]
    assert email["status"] == "not_sent"
    assert "CAISSE_SMTP_URL" in email["error"]
    with rt.db.read() as s:
        statuses = set(s.scalars(select(m.Job.status)).all())
    assert statuses == {"done"}


def test_successive_refunds_issue_credit_notes_up_to_the_invoice(client, rt, merchant):
    order = pay(client, merchant, "test", scenario="full_refund", refunds=[4000, 20400], rt=rt)
    drain(rt)
    view = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert view["status"] == "refunded"
    invoice = view["invoice"]
    notes = view["credit_notes"]
    assert [n["number"] for n in notes] == [f"TEST-{YEAR}-000002", f"TEST-{YEAR}-000003"]
    assert [n["amount_gross"] for n in notes] == [4000, 20400]
    first = client.get(f"/v1/invoices/{notes[0]['id']}", headers=merchant.auth()).json()
    assert first["kind"] == "credit_note"
    assert first["related_invoice"] == invoice["id"]
    assert first["related_invoice_number"] == invoice["number"]
    # The partial refund is shared between the invoice's two VAT rates.
    assert {v["rate"] for v in first["vat"]} == {"10", "5.5"}
    pdf = client.get(first["pdf_url"], headers=merchant.auth()).content
    text = text_of(pdf)
    assert "AVOIR" in text
    assert invoice["number"] in text
    assert "40,00 €" in text
    # Replaying the refund events issues nothing more.
    drain(rt)
    with rt.db.read() as s:
        assert len(s.scalars(select(m.Invoice.id)).all()) == 3


def test_patch_tenant_validates_seller_details(client, rt, merchant):
    auth = merchant.auth()
    r = client.patch("/v1/tenant", json={"legal": {"country": "France"}}, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "legal.country"
    r = client.patch(
        "/v1/tenant", json={"legal": {"logo": base64.b64encode(b"GIF89a").decode()}}, headers=auth
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "legal.logo"
    r = client.patch("/v1/tenant", json={"legal": {"logo": "A" * 400_000}}, headers=auth)
    assert r.status_code == 400
    r = client.patch(
        "/v1/tenant",
        json={
            "legal": {"logo": base64.b64encode(PNG).decode(), "language": "en", "postcode": None}
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    legal = r.json()["legal"]
    assert legal["logo"] == {"content_type": "image/png", "size": len(PNG)}
    assert legal["language"] == "en"
    assert "postcode" not in legal
    assert legal["legal_name"] == "Hôtel du Port SAS"
    # English invoice with the logo.
    order = pay(client, merchant, "test")
    drain(rt)
    summary = client.get(f"/v1/orders/{order['id']}", headers=auth).json()["invoice"]
    text = text_of(client.get(summary["pdf_url"], headers=auth).content)
    assert "INVOICE" in text
    assert "VAT breakdown" in text


def test_a_partial_capture_is_invoiced_and_its_rest_credited(client, rt, merchant):
    """Held for 244 €, captured 150 €: the invoice states the order as sold, a credit note the
    94 € never charged (shared between the VAT rates, under its own label), and a later refund
    its own credit note, so the documents add up to what the buyer paid."""
    r = client.post(
        "/v1/orders",
        json={
            "reference": "RES-2043",
            "customer": {"email": "jeanne@example.org", "name": "Jeanne Dupont"},
            "currency": "eur",
            "lines": [
                {"description": "Nuitée", "quantity": 2, "unit_amount": 11000, "tax_rate": "10"},
                {"description": "Repas", "quantity": 2, "unit_amount": 1200, "tax_rate": "5.5"},
            ],
        },
        headers={**merchant.auth("test"), "Idempotency-Key": "k-partial-capture"},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount_total"] == 24400

    def about(event_type: str, created: int, **overrides: Any) -> dict[str, Any]:
        return order_event(merchant, order, event_type, created=created, overrides=overrides)

    t0 = int(dt.datetime.now(dt.UTC).timestamp()) - 600
    held = about("payment_intent.amount_capturable_updated", t0, amount_capturable=24400)
    captured = about(
        "payment_intent.succeeded", t0 + 60, amount_received=15000, amount_capturable=0
    )
    for event in (held, captured):
        assert post_event(client, merchant, event).status_code == 200
        drain(rt)
    drain(rt)
    view = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert (view["status"], view["amount_paid"]) == ("paid", 15000)
    assert view["invoice"]["amount_gross"] == 24400
    (note,) = view["credit_notes"]
    assert note["amount_gross"] == 9400
    credit = client.get(f"/v1/invoices/{note['id']}", headers=merchant.auth()).json()
    assert credit["related_invoice"] == view["invoice"]["id"]
    assert {v["rate"] for v in credit["vat"]} == {"10", "5.5"}
    assert sum(int(v["gross"]) for v in credit["vat"]) == 9400
    text = text_of(client.get(credit["pdf_url"], headers=merchant.auth()).content)
    assert "AVOIR" in text
    assert "Montant non prélevé (capture partielle)" in text
    assert "94,00 €" in text

    # Replays issue nothing more; a refund of 50 € is credited on its own.
    for event in (held, captured):
        assert post_event(client, merchant, event).status_code == 200
    drain(rt)
    refund = about("refund.updated", t0 + 120)
    refund["data"]["object"]["amount"] = 5000
    assert post_event(client, merchant, refund).status_code == 200
    drain(rt)
    view = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert view["amount_refunded"] == 5000
    assert [n["amount_gross"] for n in view["credit_notes"]] == [9400, 5000]
    credited = sum(n["amount_gross"] for n in view["credit_notes"])
    assert view["invoice"]["amount_gross"] - credited == view["amount_paid"] - 5000
    last = client.get(f"/v1/invoices/{view['credit_notes'][1]['id']}", headers=merchant.auth())
    pdf = client.get(last.json()["pdf_url"], headers=merchant.auth()).content
    assert "Remboursement partiel" in text_of(pdf)
    assert "non prélevé" not in text_of(pdf)

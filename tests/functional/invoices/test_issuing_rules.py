"""What may take a live number, and what a document says: dirty customer data, missing fonts,
French mentions, refunds that fail. Driven through the API and signed Stripe events."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import select
from tests.functional.invoices.test_invoices import LEGAL, YEAR, pay
from tests.support.api import Merchant, drain, new_merchant, order_meta, post_event

from caisse.invoices import render
from caisse.invoices.facturx import validate
from caisse.invoices.sink import ISSUE_CREDIT_NOTE, ISSUE_INVOICE
from caisse.providers.stripe import simulate
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

RAM = "{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}"


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def with_legal(client: Any, rt: Any, legal: dict[str, Any]) -> Merchant:
    merchant = new_merchant(client, rt, envs=("test", "live"))
    r = client.patch("/v1/tenant", json={"legal": legal}, headers=merchant.auth())
    assert r.status_code == 200, r.text
    return merchant


def documents(rt: Any) -> list[Any]:
    with rt.db.read() as s:
        return list(s.execute(select(m.Invoice).order_by(m.Invoice.sequence)).scalars())


def job(rt: Any, kind: str) -> Any:
    """The job of ``kind``; among several, the one that failed."""
    with rt.db.read() as s:
        rows = s.execute(select(m.Job).where(m.Job.kind == kind)).scalars().all()
    failed = [r for r in rows if r.last_error]
    (row,) = failed if len(rows) > 1 else rows
    return row


def run_again(rt: Any, kind: str) -> None:
    """The retry a worker would make later (the job's backoff, fast-forwarded)."""
    row = job(rt, kind)
    with rt.db.write() as s:
        jobstore.requeue(s, kind, row.key, row.payload, now=rt.clock.now())
    drain(rt)


def test_dirty_customer_data_still_gets_a_number_and_a_valid_factur_x(client, rt):
    merchant = with_legal(client, rt, LEGAL)
    line = {"description": "Nuitée\x0b\x01 vue mer", "quantity": 1, "unit_amount": 12000}
    pay(
        client,
        merchant,
        "live",
        customer={"name": "Jeanne\x0bDupont\x01", "vat_number": {"not": "a string"}},
        lines=[{**line, "tax_rate": "10"}],
    )
    drain(rt)
    (row,) = documents(rt)
    assert row.number == f"F{YEAR}-000001"
    assert row.status == "issued"
    assert row.facturx is True
    assert row.snapshot["buyer"]["legal_name"] == "Jeanne Dupont"
    assert row.snapshot["buyer"]["vat_number"] is None
    assert row.snapshot["lines"][0]["description"] == "Nuitée vue mer"
    _, xml = facturx.get_xml_from_pdf(row.pdf, check_xsd=False)
    validate(xml)
    assert "Jeanne Dupont" in text_of(row.pdf)


def test_a_numeric_buyer_vat_number_is_kept_as_text(client, rt):
    merchant = with_legal(client, rt, LEGAL)
    pay(client, merchant, "live", customer={"company": "Gîtes SARL", "vat_number": 12345678901})
    drain(rt)
    (row,) = documents(rt)
    assert row.snapshot["buyer"]["vat_number"] == "12345678901"
    assert row.snapshot["buyer"]["legal_name"] == "Gîtes SARL"
    _, xml = facturx.get_xml_from_pdf(row.pdf, check_xsd=True)
    assert b"12345678901" in xml


def test_live_refusal_for_missing_siret_leaves_no_gap(client, rt):
    legal = {k: v for k, v in LEGAL.items() if k != "registration_number"}
    merchant = with_legal(client, rt, legal)
    pay(client, merchant, "live")
    drain(rt)
    assert documents(rt) == []
    failed = job(rt, ISSUE_INVOICE)
    assert "registration_number" in failed.last_error
    assert "SellerDetailsIncomplete" in failed.last_error
    with rt.db.read() as s:
        assert s.scalars(select(m.InvoiceSequence)).all() == []  # no number was taken
    # Test mode is not held back: test documents carry no legal value.
    pay(client, merchant, "test")
    drain(rt)
    assert [d.number for d in documents(rt)] == [f"TEST-{YEAR}-000001"]
    # Once the merchant completes the details, the retry takes the first live number.
    r = client.patch(
        "/v1/tenant",
        json={"legal": {"registration_number": "12345678900012"}},
        headers=merchant.auth("live"),
    )
    assert r.status_code == 200, r.text
    run_again(rt, ISSUE_INVOICE)
    live = [d.number for d in documents(rt) if d.environment == "live"]
    assert live == [f"F{YEAR}-000001"]


def test_vat_rated_lines_need_the_seller_vat_number(client, rt):
    legal = {k: v for k, v in LEGAL.items() if k != "vat_number"}
    merchant = with_legal(client, rt, legal)
    pay(client, merchant, "live")
    drain(rt)
    assert documents(rt) == []
    assert "BR-S-02" in job(rt, ISSUE_INVOICE).last_error


def test_franchise_seller_gets_the_293_b_mention(client, rt):
    legal = {k: v for k, v in LEGAL.items() if k != "vat_number"}
    merchant = with_legal(client, rt, legal)
    lines = [{"description": "Cours de yoga", "quantity": 1, "unit_amount": 3000, "tax_rate": "0"}]
    pay(client, merchant, "live", lines=lines)
    drain(rt)
    (row,) = documents(rt)
    text = text_of(row.pdf)
    assert "TVA non applicable, art. 293 B du CGI" in text
    _, xml = facturx.get_xml_from_pdf(row.pdf, check_xsd=True)
    tax = etree.fromstring(xml).find(
        f".//{RAM}ApplicableHeaderTradeSettlement/{RAM}ApplicableTradeTax"
    )
    assert tax is not None
    assert tax.findtext(f"{RAM}CategoryCode") == "E"
    assert tax.findtext(f"{RAM}ExemptionReason") == "TVA non applicable, art. 293 B du CGI"


def test_business_buyer_gets_the_b2b_mentions_and_company_details(client, rt):
    legal = {**LEGAL, "legal_form": "SAS", "share_capital": "10 000 €", "rcs": "Nantes 123456789"}
    merchant = with_legal(client, rt, legal)
    view = client.get("/v1/tenant", headers=merchant.auth()).json()
    assert view["legal"]["rcs"] == "RCS Nantes 123 456 789"
    pay(client, merchant, "test", customer={"company": "Gîtes de Loire SARL"})
    pay(client, merchant, "test", key="consumer")
    drain(rt)
    by_kind = {d.snapshot["buyer"]["is_business"]: text_of(d.pdf) for d in documents(rt)}
    business, consumer = by_kind[True], by_kind[False]
    for text in (business, consumer):
        assert "SAS au capital de 10 000 €" in text
        assert "RCS Nantes 123 456 789" in text
        assert "SIRET : 12345678900012" in text
    assert "Gîtes de Loire SARL" in business
    assert "Pénalités de retard" in business
    assert "Indemnité forfaitaire pour frais de recouvrement de 40 €" in business
    assert "Pénalités de retard" not in consumer
    assert "40 €" not in consumer


@pytest.mark.parametrize(
    ("legal", "param"),
    [
        ({"rcs": "Nantes"}, "legal.rcs"),
        ({"rcs": "RCS Nantes 999 999 999"}, "legal.rcs"),  # not the SIRET's SIREN
        ({"registration_number": "1234"}, "legal.registration_number"),
        ({"share_capital": "beaucoup"}, "legal.share_capital"),
        ({"legal_form": 12}, "legal.legal_form"),
    ],
)
def test_patch_tenant_refuses_bad_french_details(client, rt, legal, param):
    merchant = with_legal(client, rt, LEGAL)
    r = client.patch("/v1/tenant", json={"legal": legal}, headers=merchant.auth())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_live_documents_wait_for_the_fonts_instead_of_losing_factur_x(
    client, rt, tmp_path, monkeypatch
):
    """A machine without DejaVu Sans: no live number is taken (test documents still print)."""
    merchant = with_legal(client, rt, LEGAL)
    monkeypatch.setattr(render, "_FONT_DIRS", (str(tmp_path),))
    render._find_fonts.cache_clear()
    try:
        pay(client, merchant, "live")
        pay(client, merchant, "test")
        drain(rt)
        assert [d.number for d in documents(rt)] == [f"TEST-{YEAR}-000001"]
        with rt.db.read() as s:
            errors = s.scalars(select(m.Job.last_error).where(m.Job.kind == ISSUE_INVOICE)).all()
        assert any(e and "fonts-dejavu-core" in e for e in errors)
    finally:
        monkeypatch.undo()
        render._find_fonts.cache_clear()
    with rt.db.read() as s:
        live_job = s.execute(
            select(m.Job).where(m.Job.kind == ISSUE_INVOICE, m.Job.last_error.is_not(None))
        ).scalar_one()
    with rt.db.write() as s:
        jobstore.requeue(s, ISSUE_INVOICE, live_job.key, live_job.payload, now=rt.clock.now())
    drain(rt)
    live = [d for d in documents(rt) if d.environment == "live"]
    assert [(d.number, d.facturx) for d in live] == [(f"F{YEAR}-000001", True)]


# -- refunds that fail ------------------------------------------------------------------------

T0 = int(dt.datetime.now(dt.UTC).timestamp()) - 3600


def refund_events(order: dict[str, Any], merchant: Merchant, status: str) -> list[dict[str, Any]]:
    pi, meta = order["payment"]["payment_intent"], order_meta(merchant, order)
    base = {"livemode": False, "payment_intent_id": pi, "amount": order["amount_total"]}
    paid = simulate.build_event("payment_intent.succeeded", metadata=meta, created=T0, **base)
    pending = simulate.build_event(
        "refund.created",
        created=T0 + 60,
        overrides={"id": "re_inflight", "amount": 4000, "status": "pending"},
        **base,
    )
    if status == "failed":
        final = simulate.build_event(
            "refund.failed",
            created=T0 + 120,
            overrides={"id": "re_inflight", "amount": 4000},
            **base,
        )
    else:
        final = simulate.build_event(
            "refund.updated",
            created=T0 + 120,
            overrides={"id": "re_inflight", "amount": 4000, "status": "succeeded"},
            **base,
        )
    return [paid, pending, final]


def order_for_refunds(client: Any, merchant: Merchant) -> dict[str, Any]:
    r = client.post(
        "/v1/orders",
        json={
            "customer": {"email": "jeanne@example.org", "name": "Jeanne Dupont"},
            "currency": "eur",
            "lines": [
                {"description": "Nuitée", "quantity": 1, "unit_amount": 24400, "tax_rate": "10"}
            ],
        },
        headers={**merchant.auth(), "Idempotency-Key": "refund-order"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize("outcome", ["failed", "succeeded"])
def test_only_settled_refunds_are_credited(client, rt, outcome):
    merchant = with_legal(client, rt, LEGAL)
    order = order_for_refunds(client, merchant)
    paid, pending, final = refund_events(order, merchant, outcome)
    for event in (paid, pending):
        assert post_event(client, merchant, event).status_code == 200
        drain(rt)
    # The refund is counted on the order, but not credited while it may still fail.
    assert [d.kind for d in documents(rt)] == ["invoice"]
    waiting = job(rt, ISSUE_CREDIT_NOTE)
    assert waiting.status == "queued"
    assert waiting.run_at > waiting.updated_at  # it looks again later
    assert post_event(client, merchant, final).status_code == 200
    drain(rt)
    run_again(rt, ISSUE_CREDIT_NOTE)
    docs = documents(rt)
    if outcome == "failed":
        assert [d.kind for d in docs] == ["invoice"]
        assert job(rt, ISSUE_CREDIT_NOTE).status == "done"
    else:
        assert [(d.kind, d.amount_gross) for d in docs] == [
            ("invoice", 24400),
            ("credit_note", 4000),
        ]
        note = docs[1]
        assert note.number == f"TEST-{YEAR}-000002"
        # The refund date printed is the refund's (the provider's event time), not today's.
        refunded_on = dt.datetime.fromtimestamp(T0 + 120, dt.UTC)
        assert note.snapshot["payment_date"] in {
            (refunded_on + dt.timedelta(hours=h)).date().isoformat() for h in (0, 1, 2)
        }
        assert job(rt, ISSUE_CREDIT_NOTE).status == "done"

"""Documents on their way out: e-mail retries, live credit notes over SMTP, partners, listing,
immutability. Real aiosmtpd, real partner server on loopback, PDFs read back."""

from __future__ import annotations

import datetime as dt
import hashlib
from email import message_from_bytes, policy
from typing import Any

import facturx
from sqlalchemy import select
from standardwebhooks import Webhook
from tests.functional.invoices.test_invoices import LEGAL, YEAR, pay
from tests.support import partners
from tests.support.api import Merchant, drain, new_merchant

from caisse.invoices.facturx import validate
from caisse.invoices.jobs import EMAIL_RETRY_SCHEDULE
from caisse.invoices.sink import SEND_EMAIL
from caisse.storage import jobs as jobstore
from caisse.storage import models as m


def merchant_with_details(client: Any, rt: Any) -> Merchant:
    merchant = new_merchant(client, rt, envs=("test", "live"))
    r = client.patch("/v1/tenant", json={"legal": LEGAL}, headers=merchant.auth())
    assert r.status_code == 200, r.text
    return merchant


def test_the_retry_schedule_spans_about_a_day() -> None:
    total = sum(EMAIL_RETRY_SCHEDULE, dt.timedelta())
    assert dt.timedelta(hours=20) <= total <= dt.timedelta(hours=28)
    assert list(EMAIL_RETRY_SCHEDULE) == sorted(EMAIL_RETRY_SCHEDULE)


def test_a_deferred_email_is_retried_later_with_the_same_message_id(client, rt, smtp):
    merchant = merchant_with_details(client, rt)
    smtp.defer = 1
    pay(client, merchant, "live")
    drain(rt)
    (email,) = client.get("/v1/emails", headers=merchant.auth("live")).json()["data"]
    assert email["status"] == "retrying"
    assert "451" in email["error"]
    with rt.db.read() as s:
        row = s.get(m.Email, email["id"])
        job = s.execute(select(m.Job).where(m.Job.kind == SEND_EMAIL)).scalar_one()
    assert row is not None
    first_id = row.message_id
    assert job.status == "queued"
    wait = job.run_at - job.updated_at
    assert EMAIL_RETRY_SCHEDULE[0] * 0.9 <= wait <= EMAIL_RETRY_SCHEDULE[0] * 1.1
    (deferred,) = smtp.deferred
    assert message_from_bytes(deferred)["Message-ID"] == first_id
    # The schedule comes round (fast-forwarded): the server accepts this time.
    with rt.db.write() as s:
        jobstore.requeue(s, SEND_EMAIL, job.key, job.payload, now=rt.clock.now())
    drain(rt)
    (email,) = client.get("/v1/emails", headers=merchant.auth("live")).json()["data"]
    assert email["status"] == "sent"
    (envelope,) = smtp.envelopes
    assert message_from_bytes(envelope.original_content)["Message-ID"] == first_id
    with rt.db.read() as s:
        row = s.get(m.Email, email["id"])
        assert row is not None
        assert row.attempts == 2


def test_live_credit_note_is_factur_x_381_and_mailed(client, rt, smtp):
    merchant = merchant_with_details(client, rt)
    order = pay(client, merchant, "live", scenario="full_refund", rt=rt)
    drain(rt)
    view = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth("live")).json()
    invoice, (note,) = view["invoice"], view["credit_notes"]
    assert note["number"] == f"F{YEAR}-000002"
    assert len(smtp.envelopes) == 2
    received = message_from_bytes(smtp.envelopes[1].original_content, policy=policy.default)
    assert received["Subject"] == f"Votre avoir F{YEAR}-000002 – Hôtel du Port SAS"
    (attachment,) = list(received.iter_attachments())
    pdf = attachment.get_content()
    assert pdf == client.get(note["pdf_url"], headers=merchant.auth("live")).content
    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    validate(xml)
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert invoice["number"].encode() in xml  # BT-25: the invoice it corrects


def test_invoice_issued_reaches_a_partner_endpoint(client, rt):
    merchant = merchant_with_details(client, rt)
    with partners.ok() as partner:
        r = client.post(
            "/v1/endpoints",
            json={"url": partner.url, "event_types": ["invoice.issued"]},
            headers=merchant.auth(),
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        order = pay(client, merchant, "test")
        drain(rt)
        (request,) = partner.requests
    message = Webhook(secret).verify(request.body, request.header_dict)
    assert message["type"] == "invoice.issued"
    assert message["data"]["invoice"]["number"] == f"TEST-{YEAR}-000001"
    assert message["data"]["order"]["id"] == order["id"]


def test_listing_is_paginated(client, rt):
    merchant = merchant_with_details(client, rt)
    for i in range(3):
        pay(client, merchant, "test", key=str(i))
    drain(rt)
    auth = merchant.auth()
    first = client.get("/v1/invoices", params={"limit": 2}, headers=auth).json()
    assert len(first["data"]) == 2
    assert first["has_more"] is True
    rest = client.get(
        "/v1/invoices", params={"limit": 2, "starting_after": first["data"][-1]["id"]}, headers=auth
    ).json()
    assert len(rest["data"]) == 1
    assert rest["has_more"] is False
    numbers = [i["number"] for i in first["data"] + rest["data"]]
    assert sorted(numbers) == [f"TEST-{YEAR}-00000{n}" for n in (1, 2, 3)]
    assert len(set(numbers)) == 3


def test_changing_seller_details_leaves_issued_pdfs_untouched(client, rt):
    merchant = merchant_with_details(client, rt)
    order = pay(client, merchant, "live")
    drain(rt)
    auth = merchant.auth("live")
    summary = client.get(f"/v1/orders/{order['id']}", headers=auth).json()["invoice"]
    before = client.get(summary["pdf_url"], headers=auth).content
    r = client.patch(
        "/v1/tenant",
        json={"legal": {"legal_name": "Nouveau Nom SAS", "city": "Brest", "postcode": "29200"}},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    drain(rt)
    after = client.get(summary["pdf_url"], headers=auth)
    assert after.content == before
    assert after.headers["etag"] == f'"{hashlib.sha256(before).hexdigest()}"'
    invoice = client.get(f"/v1/invoices/{summary['id']}", headers=auth).json()
    assert invoice["pdf_sha256"] == hashlib.sha256(before).hexdigest()
    assert invoice["seller"]["legal_name"] == "Hôtel du Port SAS"

"""Xsolla settings, the catalogue, seller details and invoice downloads in the extranet, over
plain HTTP on both engines; what a form saves is read back through the API (one service)."""

from __future__ import annotations

import io
import re
import secrets

from pypdf import PdfReader
from sqlalchemy import select
from tests.support.api import create_order, drain, new_merchant, order_meta, post_event
from tests.support.extranet import login, new_user, pay_order, switch

from caisse.providers.stripe import simulate
from caisse.storage import models as m
from caisse.tenants.credentials import xsolla_accounts

NO_REDIRECT = {"follow_redirects": False}


def post(client, path, csrf, data=None):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf, **(data or {})}, **NO_REDIRECT)


def xsolla_form(**extra: str) -> dict[str, str]:
    return {
        "merchant_id": "123456",
        "project_id": "271828",
        "api_key": "xs-api-" + secrets.token_hex(16),
        "webhook_secret": "xs-hook-" + secrets.token_hex(16),
        "firebase_project_id": "demo-game-shop",
        "return_url_allowlist": "https://game.example/after-pay\r\nmygame://paid",
        **extra,
    }


def test_xsolla_settings_masked_and_kept(client, rt, ui):
    switch(client, ui.csrf, "test")
    page = client.get("/ui/settings/xsolla").text
    assert "Xsolla is not set up for this environment" in page
    assert f"/callbacks/v1.0/xsolla/{ui.merchant.tenant_id}" in page
    form = xsolla_form()
    r = post(client, "/ui/settings/xsolla", ui.csrf, form)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert "Xsolla settings saved" in page
    assert form["api_key"] not in page
    assert form["webhook_secret"] not in page
    assert form["api_key"][-4:] in page  # masked: the last characters only
    assert "271828" in page
    assert "123456" in page
    # The API reads what the form saved.
    api = client.get("/v1/providers/xsolla", headers=ui.merchant.auth("test")).json()
    assert api["project_id"] == "271828"
    assert api["return_url_allowlist"] == ["https://game.example/after-pay", "mygame://paid"]
    # Empty secret fields keep the saved secrets.
    r = post(
        client,
        "/ui/settings/xsolla",
        ui.csrf,
        xsolla_form(api_key="", webhook_secret="", project_id="314159"),
    )
    assert r.status_code == 303
    with rt.db.read() as s:
        account = xsolla_accounts(s, rt.box, ui.merchant.tenant_id)["test"]
    assert (account.project_id, account.api_key) == ("314159", form["api_key"])
    assert account.webhook_secret == form["webhook_secret"]
    # Live is separate.
    switch(client, ui.csrf, "live")
    assert "Xsolla is not set up for this environment" in client.get("/ui/settings/xsolla").text


def test_xsolla_validation_is_the_apis(client, rt, ui):
    switch(client, ui.csrf, "test")
    for bad, message in (
        ({"project_id": "abc"}, "project_id is Xsolla&#39;s numeric project id"),
        ({"firebase_project_id": "X"}, "firebase_project_id is a Firebase project id"),
        ({"return_url_allowlist": "javascript:alert(1)"}, "An allowed return URL"),
        ({"api_key": "short"}, "api_key must be 8 to 255 printable characters"),
    ):
        form = xsolla_form(**bad)
        r = post(client, "/ui/settings/xsolla", ui.csrf, form)
        assert r.status_code == 400, bad
        assert message in r.text, (bad, r.text[-1500:])
        assert form["webhook_secret"] not in r.text  # secrets are never echoed back
        api = client.put("/v1/providers/xsolla", json=_api_body(form), headers=ui.merchant.auth())
        assert api.status_code == 400, bad  # the API refuses the same values
    with rt.db.read() as s:
        assert xsolla_accounts(s, rt.box, ui.merchant.tenant_id) == {}


def _api_body(form: dict[str, str]) -> dict[str, object]:
    return {
        "project_id": form["project_id"],
        "api_key": form["api_key"],
        "webhook_secret": form["webhook_secret"],
        "firebase_project_id": form["firebase_project_id"],
        "return_url_allowlist": form["return_url_allowlist"].split(),
    }


def test_catalog_add_edit_and_errors(client, rt, ui):
    switch(client, ui.csrf, "test")
    item = {"sku": "gems.100", "name": "100 gems", "price": "4.99", "currency": "EUR"}
    r = post(client, "/ui/catalog", ui.csrf, {**item, "description": "A bag of gems"})
    assert r.status_code == 303, r.text
    page = client.get("/ui/catalog").text
    assert "gems.100" in page
    assert "4.99 EUR" in page
    api = client.get("/v1/catalog/items/gems.100", headers=ui.merchant.auth()).json()
    assert api["price"] == {"amount": 499, "currency": "eur", "display": "4.99"}
    assert api["available"] is True

    edit = client.get("/ui/catalog/gems.100").text
    assert 'value="4.99"' in edit
    assert 'value="EUR"' in edit
    r = post(
        client,
        "/ui/catalog/gems.100",
        ui.csrf,
        {"name": "100 gems (sale)", "price": "3,50", "currency": "eur", "status": "unavailable"},
    )
    assert r.status_code == 303, r.text
    api = client.get("/v1/catalog/items/gems.100", headers=ui.merchant.auth()).json()
    assert (api["name"], api["price"]["amount"], api["available"]) == (
        "100 gems (sale)",
        350,
        False,
    )

    for bad, message in (
        (item, "exists already"),
        ({**item, "sku": "bad sku!"}, "A SKU is 1 to 100 Latin letters"),
        ({**item, "sku": "x1", "price": "abc"}, "The price is a number"),
        ({**item, "sku": "x1", "price": "4.999"}, "more than 2 decimals"),
        ({**item, "sku": "x1", "price": "0"}, "price.amount"),
        ({**item, "sku": "x1", "currency": "EURO"}, "Invalid currency"),
        ({**item, "sku": "x1", "name": ""}, "name"),
    ):
        r = post(client, "/ui/catalog", ui.csrf, bad)
        assert r.status_code == 400, bad
        assert message in r.text, (bad, r.text[-1500:])
    r = post(
        client, "/ui/catalog/gems.100", ui.csrf, {"name": "n", "price": "-1", "currency": "EUR"}
    )
    assert r.status_code == 400
    assert (
        client.get("/v1/catalog/items", headers=ui.merchant.auth()).json()["data"][0]["sku"]
        == "gems.100"
    )
    assert len(client.get("/v1/catalog/items", headers=ui.merchant.auth()).json()["data"]) == 1
    # Live has its own catalogue; a test SKU is not found there.
    switch(client, ui.csrf, "live")
    assert "gems.100" not in client.get("/ui/catalog").text
    assert client.get("/ui/catalog/gems.100").status_code == 404
    r = post(
        client, "/ui/catalog/gems.100", ui.csrf, {"name": "x", "price": "1", "currency": "EUR"}
    )
    assert r.status_code == 404


def test_seller_details_feed_the_checklist_and_the_api(client, rt, ui):
    step = 'data-step="dash.check.seller"'
    assert f'class="todo" {step}' in client.get("/ui/").text
    r = post(client, "/ui/settings/seller", ui.csrf, {"legal_name": "x", "country": "France"})
    assert r.status_code == 400
    assert "country is an ISO 3166-1 alpha-2 code" in r.text
    assert 'value="France"' in r.text
    details = {
        "legal_name": "Hôtel A SARL",
        "address_line1": "1 quai de la Fosse",
        "postcode": "44000",
        "city": "Nantes",
        "country": "fr",
        "vat_number": "FR12345678901",
        "language": "fr",
    }
    assert post(client, "/ui/settings/seller", ui.csrf, details).status_code == 303
    legal = client.get("/v1/tenant", headers=ui.merchant.auth()).json()["legal"]
    assert legal["legal_name"] == "Hôtel A SARL"
    assert legal["country"] == "FR"
    assert f'class="done" {step}' in client.get("/ui/").text
    # An emptied field removes that detail.
    post(client, "/ui/settings/seller", ui.csrf, {**details, "vat_number": ""})
    legal = client.get("/v1/tenant", headers=ui.merchant.auth()).json()["legal"]
    assert "vat_number" not in legal


def test_xsolla_step_on_the_dashboard(client, rt, ui):
    switch(client, ui.csrf, "test")
    assert 'class="todo" data-step="dash.check.xsolla"' in client.get("/ui/").text
    post(client, "/ui/settings/xsolla", ui.csrf, xsolla_form())
    assert 'class="done" data-step="dash.check.xsolla"' in client.get("/ui/").text


def test_invoice_download_checks_tenant_and_environment(client, rt, ui):
    switch(client, ui.csrf, "test")
    order = pay_order(client, rt, ui.merchant)
    with rt.db.read() as s:
        invoice_id, number = s.execute(
            select(m.Invoice.id, m.Invoice.number).where(m.Invoice.order_id == order["id"])
        ).one()
    page = client.get(f"/ui/orders/{order['id']}").text
    assert f'href="/ui/invoices/{invoice_id}.pdf"' in page
    r = client.get(f"/ui/invoices/{invoice_id}.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert "attachment" in r.headers["content-disposition"]
    assert "/" not in r.headers["content-disposition"].split("filename=")[1]
    assert number.replace("/", "-") in r.headers["content-disposition"]
    # Not in live mode, not for another tenant.
    switch(client, ui.csrf, "live")
    assert client.get(f"/ui/invoices/{invoice_id}.pdf").status_code == 404
    other = new_merchant(client, rt, name="Other")
    email, password = new_user(rt, other.tenant_id)
    client.cookies.clear()
    csrf = login(client, email, password)
    switch(client, csrf, "test")
    r = client.get(f"/ui/invoices/{invoice_id}.pdf")
    assert r.status_code == 404
    assert b"%PDF" not in r.content


def test_credit_note_is_downloaded_from_the_order_page(client, rt, ui):
    """A refund (signed Stripe events), the worker issues the credit note, the order page
    links to its PDF, which reads back as a credit note for the refunded amount."""
    switch(client, ui.csrf, "test")
    order = create_order(client, ui.merchant)
    for event in simulate.scenario(
        "full_refund",
        livemode=False,
        amount=order["amount_total"],
        payment_intent_id=order["payment"]["payment_intent"],
        metadata=order_meta(ui.merchant, order),
    ):
        assert post_event(client, ui.merchant, event).status_code == 200
        drain(rt)
    with rt.db.read() as s:
        note_id, number = s.execute(
            select(m.Invoice.id, m.Invoice.number).where(
                m.Invoice.order_id == order["id"], m.Invoice.kind == "credit_note"
            )
        ).one()
    page = client.get(f"/ui/orders/{order['id']}").text
    links = re.findall(r'href="(/ui/invoices/[^"]+\.pdf)"', page)
    assert f"/ui/invoices/{note_id}.pdf" in links
    assert len(links) == 2
    r = client.get(f"/ui/invoices/{note_id}.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert number.replace("/", "-") in r.headers["content-disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert number in text
    assert re.search(r"avoir|credit note", text, re.IGNORECASE)
    assert "20,00" in text or "20.00" in text

"""Stripe settings, the seeds' flow: paste the keys (shown masked afterwards), copy the webhook
URL and the exact event list into Stripe, paste the signing secret; add or retire signing
secrets; check the keys with Stripe; send a signed test event to the tenant's own webhook URL.

Everything is saved through :mod:`caisse.tenants.credentials` (same validation as the API); a
saved secret is never sent back to the browser, only its masked form.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from caisse.errors import CaisseError, InvalidRequest, NotFound
from caisse.extranet import queries
from caisse.extranet.pages import FormDep, Page, PageDep, error_text, redirect, render
from caisse.providers.stripe import simulate
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY
from caisse.storage import models as m
from caisse.tenants import credentials

router = APIRouter()

DONE = {
    "saved": "stripe.saved",
    "secret_added": "stripe.secret_added",
    "secret_retired": "stripe.secret_retired",
}


def _page(page: Page, *, status: int = 200, **extra: Any) -> Response:
    rt = page.rt
    with rt.db.read() as s:
        row = queries.stripe_account(s, page.caller)
        view = credentials.stripe_view(row, rt.box, rt.settings.public_url) if row else None
        orders = queries.recent_orders(s, page.caller) if page.test else []
    done = DONE.get(page.request.query_params.get("done", ""))
    return render(
        page,
        "stripe.html",
        view=view,
        webhook_url=credentials.webhook_url(rt.settings.public_url, "stripe", page.user.tenant_id),
        events=[(t, page.t("stripe.event." + t)) for t in SUBSCRIBED_EVENT_TYPES],
        orders=orders,
        done=done,
        status=status,
        **extra,
    )


@router.get("/settings/stripe")
def settings(page: PageDep) -> Response:
    return _page(page)


def _current(page: Page) -> tuple[m.ProviderAccount | None, str | None, list[str]]:
    """The saved row, its secret key and signing secrets (decrypted, server side only)."""
    with page.rt.db.read() as s:
        row = queries.stripe_account(s, page.caller)
    if row is None:
        return None, None, []
    box = page.rt.box
    sk = box.decrypt(row.secrets["secret_key"]) if row.secrets.get("secret_key") else None
    whsecs = [box.decrypt(x) for x in row.secrets.get("webhook_secrets", [])]
    return row, sk, whsecs


def _save(page: Page, body: dict[str, Any]) -> None:
    with page.rt.db.write() as s:
        credentials.put_stripe(s, page.rt.box, page.rt.clock, page.caller, body)
    # The ingest path caches signing secrets briefly; a new one must work at once.
    page.request.app.state.stripe_secrets.invalidate(page.user.tenant_id)


def _failed(page: Page, exc: CaisseError, form: dict[str, str] | None = None) -> Response:
    return _page(page, status=400, error=exc, param=exc.param, form=form or {})


@router.post("/settings/stripe")
def save_keys(page: PageDep, fields: FormDep) -> Response:
    """Empty secret key: keep the saved one. A signing secret, if given, is added to the
    active ones (never replaces them, so rolling a secret loses no event)."""
    _, sk, whsecs = _current(page)
    new_secret = fields.get("webhook_secret", "").strip()
    body: dict[str, Any] = {
        "publishable_key": fields.get("publishable_key", ""),
        "secret_key": fields.get("secret_key", "").strip() or sk or "",
        "webhook_secrets": [*whsecs, new_secret] if new_secret else whsecs,
    }
    account = fields.get("account_id", "").strip()
    if account:
        body["account_id"] = account
    try:
        _save(page, body)
    except CaisseError as exc:
        kept = {k: fields.get(k, "")[:255] for k in ("publishable_key", "account_id")}
        return _failed(page, exc, kept)
    return redirect("/ui/settings/stripe?done=saved")


def _existing_body(row: m.ProviderAccount, sk: str | None, whsecs: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "publishable_key": (row.config or {}).get("publishable_key") or "",
        "secret_key": sk or "",
        "webhook_secrets": whsecs,
    }
    if (row.config or {}).get("account_id"):
        body["account_id"] = row.config["account_id"]
    return body


@router.post("/settings/stripe/secrets")
def add_secret(page: PageDep, fields: FormDep) -> Response:
    row, sk, whsecs = _current(page)
    try:
        if row is None:
            raise NotFound("Save the Stripe keys first")
        secret = fields.get("webhook_secret", "").strip()
        if not secret:
            raise InvalidRequest("A webhook secret starts with whsec_", param="webhook_secret")
        _save(page, {**_existing_body(row, sk, whsecs), "webhook_secrets": [*whsecs, secret]})
    except CaisseError as exc:
        return _failed(page, exc)
    return redirect("/ui/settings/stripe?done=secret_added")


@router.post("/settings/stripe/secrets/retire")
def retire_secret(page: PageDep, fields: FormDep) -> Response:
    row, sk, whsecs = _current(page)
    try:
        if row is None:
            raise NotFound("No Stripe settings for this environment")
        index = int(fields.get("index", "-1")) if fields.get("index", "").isdigit() else -1
        if not 0 <= index < len(whsecs):
            raise InvalidRequest("No such signing secret", param="index")
        if len(whsecs) == 1:
            raise InvalidRequest(page.t("stripe.last_secret"), param="index")
        kept = [s for i, s in enumerate(whsecs) if i != index]
        _save(page, {**_existing_body(row, sk, whsecs), "webhook_secrets": kept})
    except CaisseError as exc:
        return _failed(page, exc)
    return redirect("/ui/settings/stripe?done=secret_retired")


@router.post("/settings/stripe/check")
def check_keys(page: PageDep, fields: FormDep) -> Response:
    """Account retrieve with the saved secret key: proves the key works and whose it is."""
    row, sk, _ = _current(page)
    if row is None or not sk:
        return _failed(page, NotFound("Save the Stripe keys first"))
    try:
        account = page.rt.stripe(sk, credentials.stripe_account_header(row)).retrieve_account()
    except CaisseError as exc:
        return _page(page, check={"ok": False, "message": error_text(page.lang, exc)})
    return _page(
        page,
        check={
            "ok": True,
            "id": account.get("id"),
            "name": (account.get("business_profile") or {}).get("name")
            or (account.get("settings") or {}).get("dashboard", {}).get("display_name"),
            "country": account.get("country"),
            "charges_enabled": account.get("charges_enabled"),
            "payouts_enabled": account.get("payouts_enabled"),
        },
    )


@router.post("/settings/stripe/test-event")
async def send_test_event(page: PageDep, fields: FormDep) -> Response:
    """Build a realistic event (about an order if one is picked), sign it with the tenant's
    signing secrets and POST it to the tenant's webhook route in-process, through the very
    receiver Stripe calls. Test mode only: a live event must come from Stripe."""
    from starlette.concurrency import run_in_threadpool

    try:
        if not page.test:
            raise InvalidRequest(page.t("stripe.test_event_live"), param="environment")
        event_type = fields.get("event_type", "")
        if event_type not in SUBSCRIBED_EVENT_TYPES:
            raise InvalidRequest("Unknown event type", param="event_type")
        event, secrets = await run_in_threadpool(
            _build_event, page, event_type, fields.get("order_id", "")
        )
        body, headers = simulate.signed_delivery(event, secrets)
        parent = page.request.app.state.parent_app
        transport = httpx.ASGITransport(app=parent, client=("127.0.0.1", 0))
        path = f"/callbacks/v1.0/stripe/{page.user.tenant_id}"
        headers["User-Agent"] = "caisse-extranet (test event)"
        async with httpx.AsyncClient(transport=transport, base_url="http://caisse") as client:
            response = await client.post(path, content=body, headers=headers)
        if response.status_code != 200:
            message = response.json().get("error", {}).get("message", "")
            raise InvalidRequest(f"{response.status_code} {message}".strip(), param="event_type")
        event_id = await run_in_threadpool(_stored_id, page, event["id"])
    except CaisseError as exc:
        return _page(page, status=400, error=exc, param=exc.param)
    order_id = fields.get("order_id", "")
    if fields.get("return") == "order" and order_id:
        return redirect(f"/ui/orders/{order_id}?sent={event_type}")
    return redirect(f"/ui/events/{event_id}?sent=1")


def _build_event(page: Page, event_type: str, order_id: str) -> tuple[dict[str, Any], list[str]]:
    row, _, secrets = _current(page)
    if row is None or not secrets:
        raise NotFound("Save the Stripe keys and a signing secret first")
    facts: dict[str, Any] = {}
    if order_id:
        with page.rt.db.read() as s:
            order = queries.get_order(s, page.caller, order_id)
            facts = {
                "payment_intent_id": order.provider_payment_id,
                "amount": order.amount_total,
                "currency": order.currency,
                "metadata": {
                    ORDER_METADATA_KEY: order.id,
                    TENANT_METADATA_KEY: page.user.tenant_id,
                },
            }
    event = simulate.build_event(
        event_type, livemode=False, account=row.provider_account_id, **facts
    )
    return event, secrets


def _stored_id(page: Page, provider_event_id: str) -> str:
    with page.rt.db.read() as s:
        found = s.execute(
            select(m.InboundEvent.id).where(
                m.InboundEvent.tenant_id == page.user.tenant_id,
                m.InboundEvent.environment == page.user.environment,
                m.InboundEvent.provider == "stripe",
                m.InboundEvent.provider_event_id == provider_event_id,
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFound("The event was acknowledged but is not stored yet")
    return found

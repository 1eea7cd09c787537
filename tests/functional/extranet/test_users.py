"""Users of a tenant, on both engines: an invitation is a single-use, expiring link shown once
to the inviter and mailed (to a real SMTP server, aiosmtpd) to the invitee, who chooses their
own password; users can be switched off and on by the others, never by themselves."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import make_settings
from tests.support.api import drain
from tests.support.extranet import csrf_of, login, new_user
from tests.support.smtp import Recorder, smtp_server

from caisse.clock import FrozenClock
from caisse.config import Secret, Settings
from caisse.extranet import invites
from caisse.storage import models as m

NO_REDIRECT = {"follow_redirects": False}
_LINK = re.compile(r"https?://[^\s\"<]+/ui/invite/[A-Za-z0-9_-]+")


@pytest.fixture
def mailbox() -> Iterator[Recorder]:
    with smtp_server() as recorder:
        yield recorder


@pytest.fixture
def settings(tmp_path: Path, db_url: str, mailbox: Recorder) -> Settings:
    url = f"smtp://127.0.0.1:{mailbox.port}"
    return make_settings(
        tmp_path, db_url, smtp_url=Secret(url), mail_from="Caisse <no-reply@caisse.example>"
    )


def _invite(client: Any, csrf: str, email: str) -> Any:
    return client.post("/ui/users", data={"email": email, "csrf_token": csrf}, **NO_REDIRECT)


def _accept(client: Any, link: str, password: str, confirm: str | None = None) -> Any:
    path = link.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path)
    assert page.status_code == 200, page.text
    data = {"password": password, "confirm": confirm or password, "csrf_token": csrf_of(page.text)}
    return client.post("/" + path, data=data, **NO_REDIRECT)


def test_invitation_link_is_shown_once_mailed_and_single_use(client, rt, ui, mailbox):
    r = _invite(client, ui.csrf, "New.Colleague@Example.com")
    assert r.status_code == 200, r.text
    shown = _LINK.findall(r.text)
    assert len(set(shown)) == 1
    link = shown[0]
    token = link.rsplit("/", 1)[1]
    assert link.startswith(rt.settings.public_url + "/ui/invite/")
    assert _LINK.search(client.get("/ui/users").text) is None  # once: a reload has no link

    drain(rt)
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["To"] == "new.colleague@example.com"
    assert "Hôtel A" in str(mail["Subject"])
    body = mail.get_content()
    assert ui.email in body
    assert link in body
    with rt.db.read() as s:
        user = s.execute(
            select(m.User).where(m.User.email == "new.colleague@example.com")
        ).scalar_one()
        assert user.tenant_id == ui.merchant.tenant_id
        assert not user.active
        assert token not in user.password_hash  # only its hash is kept
        assert invites.token_hash(token) in user.password_hash
        jobs = s.scalars(select(m.Job).where(m.Job.kind == "extranet_invite_email")).all()
        assert [j.status for j in jobs] == ["done"]
        assert "link" not in jobs[0].payload
        assert token not in repr(jobs[0].payload)

    client.cookies.clear()  # the invitee's browser
    # Not signed in with the invitation: the account cannot sign in before accepting.
    assert _accept(client, link, "short").status_code == 400
    r = _accept(client, link, "a good long password", "another long password")
    assert r.status_code == 400
    r = _accept(client, link, "a good long password")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/"
    home = client.get("/ui/")
    assert home.status_code == 200
    assert "new.colleague@example.com" in home.text

    client.cookies.clear()
    assert client.get(link.split(rt.settings.public_url, 1)[1]).status_code == 404  # spent
    assert login(client, "new.colleague@example.com", "a good long password")


def test_a_new_link_replaces_the_old_one_and_links_expire(client, rt, ui):
    first = _LINK.search(_invite(client, ui.csrf, "late@example.com").text)
    second = _LINK.search(_invite(client, ui.csrf, "late@example.com").text)
    assert first
    assert second
    assert first.group(0) != second.group(0)
    path = lambda link: link.split(rt.settings.public_url, 1)[1]  # noqa: E731
    assert client.get(path(first.group(0))).status_code == 404
    assert client.get(path(second.group(0))).status_code == 200
    rt.clock = FrozenClock(dt.datetime.now(dt.UTC) + invites.TTL + dt.timedelta(minutes=1))
    assert client.get(path(second.group(0))).status_code == 404


def test_an_existing_user_cannot_be_invited_again(client, rt, ui):
    other = new_merchant_user(client, rt)
    for email in (ui.email, other):
        r = _invite(client, ui.csrf, email)
        assert r.status_code == 400
        assert "A user with this email exists" in r.text
        assert _LINK.search(r.text) is None


def new_merchant_user(client: Any, rt: Any) -> str:
    from tests.support.api import new_merchant

    b = new_merchant(client, rt, name="Tenant B")
    email, _ = new_user(rt, b.tenant_id)
    return email


def _status(client: Any, csrf: str, user_id: str, active: bool) -> Any:
    data = {"active": "1" if active else "0", "csrf_token": csrf}
    return client.post(f"/ui/users/{user_id}/status", data=data, **NO_REDIRECT)


def _user_id(rt: Any, email: str) -> str:
    with rt.db.read() as s:
        return str(s.execute(select(m.User.id).where(m.User.email == email)).scalar_one())


def test_deactivate_and_reactivate_another_user_never_oneself(client, rt, ui):
    from starlette.testclient import TestClient

    colleague, password = new_user(rt, ui.merchant.tenant_id)
    with TestClient(client.app) as other_browser:
        login(other_browser, colleague, password)
        assert _status(client, ui.csrf, _user_id(rt, colleague), False).status_code == 303
        # Their open session ends at once, and they cannot sign in again.
        assert other_browser.get("/ui/", **NO_REDIRECT).status_code == 303
        page = other_browser.get("/ui/login")
        r = other_browser.post(
            "/ui/login",
            data={"email": colleague, "password": password, "csrf_token": csrf_of(page.text)},
            **NO_REDIRECT,
        )
        assert r.status_code == 401
        assert "deactivated" in client.get("/ui/users").text
        assert _status(client, ui.csrf, _user_id(rt, colleague), True).status_code == 303
        login(other_browser, colleague, password)

    r = _status(client, ui.csrf, _user_id(rt, ui.email), False)
    assert r.status_code == 400
    assert "You cannot deactivate yourself" in r.text
    assert client.get("/ui/", **NO_REDIRECT).status_code == 200  # still signed in

    _invite(client, ui.csrf, "withdrawn@example.com")
    assert _status(client, ui.csrf, _user_id(rt, "withdrawn@example.com"), False).status_code == 303
    with rt.db.read() as s:
        assert (
            s.execute(select(m.User).where(m.User.email == "withdrawn@example.com")).first() is None
        )


def test_french_pages_show_french_errors(client, rt, ui):
    client.get("/ui/lang/fr?next=/ui/users")
    r = _invite(client, ui.csrf, "not an email")
    assert r.status_code == 400
    assert "Adresse e-mail non valable." in r.text
    assert "Invalid email address" not in r.text
    r = _status(client, ui.csrf, _user_id(rt, ui.email), False)
    assert "Vous ne pouvez pas vous désactiver vous-même." in r.text
    # A message without a French entry stays English, and says so for screen readers.
    r = client.post(
        "/ui/partners/ep_missing/replay",
        data={"since": "x", "csrf_token": ui.csrf},
        **NO_REDIRECT,
    )
    assert r.status_code == 404
    assert "rien ici" in r.text
    r = client.post(
        "/ui/settings/stripe/secrets/retire", data={"index": "7", "csrf_token": ui.csrf}
    )
    assert r.status_code == 400
    assert re.search(r'<p class="error"[^>]* lang="en">No such signing secret</p>', r.text)

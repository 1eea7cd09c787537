"""Where caisse is published changes two things a browser sees: which ``Origin`` a form may come
from (the public URL's too, since a reverse proxy may rewrite ``Host``) and whether cookies are
``Secure`` (always, except on this machine). Checked through real requests on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.conftest import make_settings
from tests.support.extranet import csrf_of

from caisse.runtime import Runtime
from caisse.tenants.services import create_tenant
from caisse.tenants.users import create_user
from caisse.web.app import create_app

EMAIL, PASSWORD = "proxy@example.com", "correct horse battery"
NO_REDIRECT = {"follow_redirects": False}


@contextmanager
def published_at(
    tmp_path: Path, db_url: str, public_url: str, base_url: str
) -> Iterator[TestClient]:
    """The app with ``CAISSE_PUBLIC_URL=public_url``, reached by a browser at ``base_url``,
    with one extranet user."""
    rt = Runtime.build(make_settings(tmp_path, db_url, public_url=public_url))
    try:
        with rt.db.write() as s:
            tenant, _ = create_tenant(s, rt.clock, "Proxied")
            create_user(s, rt.clock, tenant.id, EMAIL, PASSWORD)
        app = create_app(runtime=rt, run_worker=False)
        with TestClient(app, base_url=base_url, raise_server_exceptions=False) as client:
            yield client
    finally:
        rt.close()


def _login(client: TestClient, headers: dict[str, str]) -> int:
    page = client.get("/ui/login", headers=headers)
    assert page.status_code == 200
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    return client.post("/ui/login", data=data, headers=headers, **NO_REDIRECT).status_code


def test_forms_from_the_public_origin_pass_when_a_proxy_rewrites_host(tmp_path, db_url):
    with published_at(tmp_path, db_url, "https://pay.example.com", "https://pay.example.com") as c:
        # The proxy forwards to the app as "127.0.0.1:8000"; the browser says where it was.
        inside = {"Host": "127.0.0.1:8000"}
        assert _login(c, {**inside, "Origin": "https://evil.example"}) == 403
        assert _login(c, {**inside, "Origin": "http://pay.example.com"}) == 403  # scheme counts
        assert _login(c, {**inside, "Origin": "https://pay.example.com:8443"}) == 403
        assert _login(c, {**inside, "Origin": "https://pay.example.com"}) == 303
        home = c.get("/ui/", headers=inside)
        assert home.status_code == 200
        csrf = csrf_of(home.text)
        r = c.post(
            "/ui/mode",
            data={"environment": "test", "csrf_token": csrf, "next": "/ui/"},
            headers={**inside, "Origin": "https://pay.example.com:443"},
            **NO_REDIRECT,
        )
        assert r.status_code == 303
        assert "test-banner" in c.get("/ui/", headers=inside).text


def _set_cookies(client: TestClient) -> list[str]:
    page = client.get("/ui/login")
    cookies = page.headers.get_list("set-cookie")
    assert cookies
    return cookies


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [
        ("http://shop.example", True),
        ("https://shop.example", True),
        ("http://10.0.0.5:8000", True),
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://caisse.localhost", False),
        ("http://[::1]:8000", False),
    ],
)
def test_cookies_are_secure_except_on_localhost(tmp_path, db_url, public_url, secure):
    with published_at(tmp_path, db_url, public_url, "https://testserver") as client:
        for cookie in _set_cookies(client):
            assert ("; secure" in cookie.lower()) is secure, cookie
            assert "httponly" in cookie.lower()
            assert "samesite=lax" in cookie.lower()
        assert _login(client, {}) == 303
        assert client.get("/ui/", **NO_REDIRECT).status_code == 200  # the session cookie works

"""Fixtures for the extranet: a merchant with a signed-in user, over plain HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from tests.support.api import Merchant, new_merchant
from tests.support.extranet import login, new_user


@dataclass
class SignedIn:
    merchant: Merchant
    email: str
    password: str
    csrf: str


@pytest.fixture
def ui(client, rt):  # type: ignore[no-untyped-def]
    """Tenant A (Stripe set up in test and live through the API), signed in."""
    merchant = new_merchant(client, rt, name="Hôtel A", envs=("test", "live"))
    email, password = new_user(rt, merchant.tenant_id)
    csrf = login(client, email, password)
    return SignedIn(merchant, email, password, csrf)

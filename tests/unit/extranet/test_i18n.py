"""The message catalogue: French covers English, templates use only known keys, and the
language is chosen as documented."""

from __future__ import annotations

import re

import pytest

from caisse.extranet import i18n
from caisse.extranet.pages import TEMPLATES


def test_french_has_every_english_key():
    # err.* entries exist in French only: English pages show the service's own message.
    assert {k for k in i18n.FR if not k.startswith("err.")} == set(i18n.EN)


def test_errors_are_translated_by_code_and_param_with_an_english_fallback():
    from caisse.errors import Conflict, InvalidRequest
    from caisse.extranet.pages import error_text

    bad_email = InvalidRequest("Invalid email address", param="email")
    assert error_text("en", bad_email).text == "Invalid email address"
    assert error_text("en", bad_email).lang is None
    assert error_text("fr", bad_email).text == "Adresse e-mail non valable."
    assert error_text("fr", bad_email).lang is None
    unknown = Conflict("Something rare happened")
    assert (error_text("fr", unknown).text, error_text("fr", unknown).lang) == (
        unknown.message,
        "en",
    )
    already = InvalidRequest(i18n.FR["stripe.last_secret"], param="index")
    assert error_text("fr", already).lang is None


def test_templates_use_only_known_keys():
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*\)""", path.read_text()))
    assert used
    assert used - set(i18n.EN) == set()


@pytest.mark.parametrize(
    ("chosen", "header", "expected"),
    [
        ("fr", "en-US,en;q=0.9", "fr"),
        (None, "fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de-DE,de;q=0.9,en;q=0.5,fr;q=0.7", "fr"),
        (None, "", "en"),
        ("xx", "es", "en"),
    ],
)
def test_negotiate(chosen, header, expected):
    assert i18n.negotiate(chosen, header) == expected

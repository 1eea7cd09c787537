"""The message catalogue: French covers English, templates use only known keys, and the
language is chosen as documented."""

from __future__ import annotations

import re

import pytest

from caisse.extranet import i18n
from caisse.extranet.pages import TEMPLATES


def test_french_has_every_english_key():
    assert set(i18n.FR) == set(i18n.EN)


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

"""Fonts parsed once and forked per document give the very bytes fpdf2's add_font gives."""

from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal

import pytest

from caisse.invoices import fonts, render
from caisse.invoices.document import InvoiceLine
from caisse.invoices.render import render_pdf

pytestmark = pytest.mark.skipif(render._find_fonts() is None, reason="DejaVu Sans not installed")

UNUSUAL = "Ωμέγα Привет ǅ ŀ ﬁ Ǻ ‰ ™ № ½ ß Æ œ ₤ ‐ ‑ “ ” „"


def documents(make_document):  # type: ignore[no-untyped-def]
    base = make_document()
    return [
        base,
        dataclasses.replace(base, test_mode=True, number="TEST-2026-000007"),
        dataclasses.replace(
            base, lines=(InvoiceLine(UNUSUAL, 3, 1234, Decimal("5.5")),), language="en"
        ),
        make_document(line_count=80),  # several pages
    ]


def test_forked_fonts_render_the_same_bytes_as_add_font(make_document, monkeypatch) -> None:
    docs = documents(make_document)
    forked = [render_pdf(doc) for doc in docs]
    again = [render_pdf(doc) for doc in docs]  # the master fonts were not altered

    def add_font(pdf, family, style, path):  # type: ignore[no-untyped-def]
        pdf.add_font(family, style, str(path))  # fpdf2's own path: parse, subset in place

    monkeypatch.setattr(fonts, "install", add_font)
    reference = [render_pdf(doc) for doc in docs]
    assert forked == reference
    assert again == reference


def test_concurrent_renders_do_not_interfere(make_document) -> None:
    docs = documents(make_document)
    expected = [render_pdf(doc) for doc in docs]
    results: dict[int, list[bytes]] = {}

    def run(n: int) -> None:
        results[n] = [render_pdf(doc) for doc in docs]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(result == expected for result in results.values())

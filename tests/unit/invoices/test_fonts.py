"""Per-document font subsets built from raw glyphs: valid TrueType, every drawn glyph present,
widths as in the font, text extractable in any script the font covers."""

from __future__ import annotations

import dataclasses
import io
import threading
from decimal import Decimal
from typing import Any

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from caisse.invoices import render
from caisse.invoices.document import InvoiceLine
from caisse.invoices.fonts import true_type_face
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


def embedded_fonts(pdf: bytes) -> list[tuple[Any, TTFont, list[int]]]:
    """Per font: the CID font dictionary, its program, and CID -> glyph id in the program."""
    reader = PdfReader(io.BytesIO(pdf))
    found = []
    for ref in reader.pages[0]["/Resources"]["/Font"].values():
        cid = ref.get_object()["/DescendantFonts"][0].get_object()
        program = cid["/FontDescriptor"]["/FontFile2"].get_object().get_data()
        raw = cid["/CIDToGIDMap"].get_object().get_data()
        mapping = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        found.append((cid, TTFont(io.BytesIO(program)), mapping))
    return found


def test_subset_holds_the_drawn_glyphs_with_the_fonts_widths(make_document) -> None:
    doc = dataclasses.replace(
        make_document(), lines=(InvoiceLine(UNUSUAL, 3, 1234, Decimal("5.5")),)
    )
    fonts = embedded_fonts(render_pdf(doc))
    assert len(fonts) == 2
    found = render._find_fonts()
    assert found is not None
    face = true_type_face(found.regular)
    original = TTFont(str(found.regular))
    cid_font, font, to_gid = next(f for f in fonts if "Bold" not in str(f[0]["/BaseFont"]))
    glyf, order = font["glyf"], font.getGlyphOrder()
    assert len(order) < 200  # a subset, not the 6 000 glyphs of the font
    for ch in UNUSUAL.replace(" ", ""):
        cid = face.gid[ch]  # the content streams use the font's own glyph ids as CIDs
        glyph = glyf[order[to_gid[cid]]]
        assert glyph.numberOfContours != 0, ch  # outline (or composite) present
        reference = original["glyf"][original.getGlyphOrder()[cid]]
        assert glyph.numberOfContours == reference.numberOfContours, ch
        if glyph.isComposite():  # components renumbered to glyphs that are there
            for component in glyph.components:
                assert glyf[component.glyphName].numberOfContours != 0
        else:
            glyph.expand(glyf)
            reference.expand(original["glyf"])
            assert list(glyph.coordinates) == list(reference.coordinates), ch
    # /W widths are the font's advances (PDF/A asks them to agree with the program)
    widths = cid_font["/W"]
    pairs = dict(zip(widths[::2], (w[0] for w in widths[1::2]), strict=True))
    assert len(pairs) >= len(set(UNUSUAL.replace(" ", "")))
    for cid, width in pairs.items():
        advance = font["hmtx"][order[to_gid[cid]]][0]
        assert abs(width - advance * 1000 / font["head"].unitsPerEm) <= 1


def test_unusual_characters_extract_as_typed(make_document) -> None:
    doc = documents(make_document)[2]
    text = PdfReader(io.BytesIO(render_pdf(doc))).pages[0].extract_text()
    for word in UNUSUAL.split(" "):
        assert word in text


def test_missing_glyph_keeps_the_text_layer(make_document) -> None:
    doc = dataclasses.replace(make_document(), lines=(InvoiceLine("Tea 🍵", 1, 500, Decimal(20)),))
    text = PdfReader(io.BytesIO(render_pdf(doc))).pages[0].extract_text()
    assert "Tea" in text


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

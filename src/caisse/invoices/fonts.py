"""TrueType fonts parsed once per process and handed to each PDF as a cheap fork.

fpdf2's ``add_font`` parses the whole TTF (cmap, metrics, glyph names, outlines) for every
document, and at output fontTools subsets that parsed font *in place*, so a parsed font cannot
simply be shared between documents. Rendering an invoice spent most of its time there.

Policy: each font file is parsed once (``_Master``: fpdf2's own ``TTFFont`` for the metrics and
the fontTools tables fully decompiled). Every document gets a **fork**: a ``TTFFont`` sharing the
immutable metrics, with its own subset map, and a fontTools font whose tables are copies of the
master's containers, so the in-place subsetting of one document never touches the master or
another document. Glyph outlines are created per document from the master's raw bytes, only for
the glyphs the subsetter asks for. Every document still embeds a subset holding exactly the
glyphs it uses, of the full font: no character is dropped, and the bytes are the same as with
``add_font`` (checked by the tests).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fontTools import ttLib
from fontTools.ttLib.tables._g_l_y_f import Glyph
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

__all__ = ["install"]

# Tables fpdf2 drops from every embedded subset anyway (fpdf.output._add_fonts): parsing and
# copying them per document would be wasted work.
_DROPPED = frozenset(
    {"FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT"}
    | {"EBLC", "EBSC", "SVG ", "CPAL", "COLR", "kern"}
)
_DEPTH = 4  # table -> subtables -> their containers -> items
_ATOMIC = (str, bytes, int, float, bool, type(None), tuple, frozenset)


class _Glyphs(dict[str, Any]):
    """``glyf.glyphs`` of a fork: a fresh ``Glyph`` from the master's bytes on each access.

    The subsetter rewrites composite glyphs' component ids in place (``remapComponentsFast``)
    and compiling expands glyphs: fresh objects keep those writes inside one document.
    """

    def __getitem__(self, name: str) -> Glyph:
        return Glyph(dict.__getitem__(self, name))

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default  # noqa: SIM401 (no recursion)

    def values(self) -> Iterator[Glyph]:  # type: ignore[override]
        return (self[name] for name in self)

    def items(self) -> Iterator[tuple[str, Glyph]]:  # type: ignore[override]
        return ((name, self[name]) for name in self)


def _clone(value: Any, depth: int, atomic: set[int]) -> Any:
    """Copy containers and table objects ``depth`` levels down; leaves stay shared.

    ``atomic`` holds the ids of the master's containers whose items are all immutable, which
    a shallow copy suffices for (the master lives as long as the process, so ids are stable).
    """
    if depth <= 0 or isinstance(value, _ATOMIC):
        return value
    if id(value) in atomic:
        return value.copy()
    if isinstance(value, dict):
        return {k: _clone(v, depth - 1, atomic) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v, depth - 1, atomic) for v in value]
    if hasattr(value, "__dict__"):
        twin = copy.copy(value)
        for name, attr in vars(value).items():
            setattr(twin, name, _clone(attr, depth - 1, atomic))
        return twin
    return copy.copy(value)


def _atomic_containers(value: Any, depth: int, found: set[int]) -> None:
    """Collect the ids of dicts and lists (``depth`` levels down) holding immutable items."""
    if depth <= 0 or isinstance(value, _ATOMIC):
        return
    if isinstance(value, dict | list):
        items = list(value.values() if isinstance(value, dict) else value)
        if all(isinstance(v, _ATOMIC) for v in items):
            found.add(id(value))
            return
        for item in items:
            _atomic_containers(item, depth - 1, found)
    elif hasattr(value, "__dict__"):
        for attr in vars(value).values():
            _atomic_containers(attr, depth - 1, found)


class _Master:
    """One font file, parsed once: fpdf2's metrics and the decompiled fontTools tables."""

    def __init__(self, path: Path) -> None:
        self.template = TTFFont(FPDF(), path, "template", "")
        font = ttLib.TTFont(str(path), recalcTimestamp=False)
        for tag in _DROPPED & set(font.keys()):
            del font[tag]
        self.glyph_order = list(font.getGlyphOrder())
        self.sfnt_version = font.sfntVersion
        self.tables: dict[str, Any] = {}
        tags = font.keys()  # a TTFont is not iterable over its tags
        for tag in tags:
            if tag == "GlyphOrder":
                continue
            self.tables[tag] = font[tag]  # decompiles the table
        glyf = self.tables.get("glyf")
        self.raw_glyphs: dict[str, bytes] | None = None
        if glyf is not None:
            self.raw_glyphs = {}
            for name in self.glyph_order:
                glyph = glyf.glyphs[name]
                data = getattr(glyph, "data", None)
                if data is None:  # an expanded glyph: its bytes as in the file
                    data = glyph.compile(glyf, recalcBBoxes=False)
                self.raw_glyphs[name] = bytes(data)
        font.close()
        self.atomic: set[int] = set()
        for tag, table in self.tables.items():
            if tag != "glyf":
                _atomic_containers(table, _DEPTH, self.atomic)
        # Per cmap subtable: glyph name -> the code points mapped to it.
        self.cmap_by_glyph: list[dict[str, list[int]] | None] = []
        for sub in getattr(self.tables.get("cmap"), "tables", []):
            if isinstance(getattr(sub, "cmap", None), dict):
                by_glyph: dict[str, list[int]] = {}
                for code, name in sub.cmap.items():
                    by_glyph.setdefault(name, []).append(code)
                self.cmap_by_glyph.append(by_glyph)
            else:
                self.cmap_by_glyph.append(None)

    def fork_ttfont(self, used: set[str] | None = None) -> ttLib.TTFont:
        """A fontTools font the subsetter may change in place. With ``used`` (the glyph names
        the document drew), the cmap keeps only those glyphs' entries: the subsetter would drop
        the others anyway, after scanning every entry of every subtable."""
        font = ttLib.TTFont(recalcTimestamp=False)
        font.sfntVersion = self.sfnt_version
        font.setGlyphOrder(list(self.glyph_order))
        for tag, table in self.tables.items():
            if tag == "glyf" and self.raw_glyphs is not None:
                twin = copy.copy(table)
                twin.glyphs = _Glyphs(self.raw_glyphs)
                twin.glyphOrder = list(table.glyphOrder)
                if hasattr(twin, "_reverseGlyphOrder"):
                    del twin._reverseGlyphOrder
            elif tag == "cmap" and used is not None:
                twin = copy.copy(table)
                twin.tables = []
                for sub, by_glyph in zip(table.tables, self.cmap_by_glyph, strict=True):
                    if by_glyph is None:
                        twin.tables.append(_clone(sub, _DEPTH - 1, self.atomic))
                        continue
                    sub_twin = copy.copy(sub)
                    codes = sorted(c for name in used for c in by_glyph.get(name, ()))
                    sub_twin.cmap = {code: sub.cmap[code] for code in codes}
                    twin.tables.append(sub_twin)
            else:
                twin = _clone(table, _DEPTH, self.atomic)
            font[tag] = twin
        return font


_LOCK = threading.Lock()


@functools.cache
def _master(path: str) -> _Master:
    return _Master(Path(path))


def _get_master(path: Path) -> _Master:
    with _LOCK:  # parse each file once even when several threads render at start-up
        return _master(str(path))


class _ForkedFont(TTFFont):
    """fpdf2's font object, whose fontTools font is forked from the master when fpdf2 first
    asks for it: at output, to subset it, once the document has drawn all its text."""

    __slots__ = ("_fork", "_master")
    _fork: ttLib.TTFont | None
    _master: _Master

    @property
    def ttfont(self) -> ttLib.TTFont:
        if self._fork is None:
            self._fork = self._master.fork_ttfont(set(self.subset.get_all_glyph_names()))
        return self._fork


def install(pdf: FPDF, family: str, style: str, path: Path) -> None:
    """``pdf.add_font(family, style, path)``, without parsing the font file again."""
    master = _get_master(path)
    template = master.template
    style = "".join(sorted(style.upper()))
    fontkey = f"{family.lower()}{style}"
    font = _ForkedFont.__new__(_ForkedFont)
    font._master = master
    font._fork = None
    font.i = len(pdf.fonts) + 1
    font.type = "TTF"
    font.ttffile = template.ttffile
    font.is_compressed = False
    font._hbfont = None
    font.fontkey = fontkey
    font.biggest_size_pt = 0
    font.collection_font_number = 0
    font.is_cff = template.is_cff
    font.is_cid_keyed = template.is_cid_keyed
    font.is_symbol = template.is_symbol
    font.cff_ros = template.cff_ros
    font.scale = template.scale
    font.desc = template.desc
    font.cw = defaultdict(template.cw.default_factory, template.cw)  # type: ignore[attr-defined]
    font.cmap = template.cmap
    font.glyph_ids = dict(template.glyph_ids)
    font.missing_glyphs = []
    font.name = template.name
    font.up, font.ut, font.sp, font.ss = template.up, template.ut, template.sp, template.ss
    font.emphasis = template.emphasis.coerce(style)
    font.palette_index = 0
    font.color_font = None  # DejaVu has no colour tables (COLR/CPAL/sbix are dropped)
    font.subset = SubsetMap(font)
    pdf.fonts[fontkey] = font

"""Fonts for the invoice PDFs: a TrueType face parsed once per process, subset per document.

Why not a general PDF library's font code: parsing a full Unicode TTF (DejaVu Sans, 6 000
glyphs) and subsetting it with fontTools for every document cost most of an invoice's time.

Policy:

* ``TrueTypeFace`` reads a font file once (fontTools, at first use) and keeps what a document
  needs: the character map, the advance widths, each glyph's raw ``glyf`` bytes (without
  hinting instructions) and the small tables a PDF viewer needs (head, hhea, maxp, OS/2).
* Each document embeds its own **subset**, built from raw bytes: the glyphs it drew (plus the
  components of composite glyphs and ``.notdef``), renumbered in order; only composite glyphs'
  component ids are patched, no glyph program is decompiled. The content streams use the
  original glyph ids as CIDs (a CIDFontType2, Identity-H) and a ``/CIDToGIDMap`` stream maps
  them to the subset's ids, so the text can be written before the subset is known.
* Any character of the font can be printed, so names in any script the font covers print as
  typed; a character the font lacks prints as ``.notdef`` (a box), never silently dropped from
  the text layer (the ToUnicode map still carries it).
* ``CoreFace`` is the fallback when no DejaVu file exists: the standard Helvetica, not
  embedded, Latin-1 text only (the renderer transliterates), and the PDF is then not PDF/A.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import sys
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

from fontTools import ttLib

__all__ = ["CoreFace", "Face", "FontUse", "TrueTypeFace", "true_type_face"]

# Tables copied as they are into every subset; the others are rebuilt or left out (cmap, name
# and glyph names are not used by PDF viewers for a CID-keyed font with a ToUnicode map, and
# the hinting programs go with the glyphs' instructions, see ``_unhinted``).
_COPIED = ("hhea", "maxp", "OS/2")
_SWAP = sys.byteorder == "little"


def _u32_words(data: bytes) -> array[int]:
    words = array("I")
    words.frombytes(data + b"\0" * (-len(data) % 4))
    if _SWAP:
        words.byteswap()
    return words


def _checksum(data: bytes) -> int:
    return sum(_u32_words(data)) & 0xFFFFFFFF


def _unhinted(glyph: bytes) -> bytes:
    """The glyph without its TrueType instructions (hinting): half the bytes of DejaVu's
    glyphs, and PDF viewers render outlines without them (as most PDF producers embed them)."""
    if len(glyph) < 10:
        return glyph
    contours = struct.unpack_from(">h", glyph)[0]
    if contours >= 0:
        at = 10 + 2 * contours  # instructionLength follows endPtsOfContours
        length = struct.unpack_from(">H", glyph, at)[0]
        return glyph[:at] + b"\0\0" + glyph[at + 2 + length :]
    data, pos = bytearray(glyph), 10
    while True:
        flags = struct.unpack_from(">H", data, pos)[0]
        struct.pack_into(">H", data, pos, flags & ~0x0100)  # WE_HAVE_INSTRUCTIONS off
        pos += 4 + (4 if flags & 0x0001 else 2)
        pos += 2 if flags & 0x0008 else 4 if flags & 0x0040 else 8 if flags & 0x0080 else 0
        if not flags & 0x0020:
            return bytes(data[:pos])


def _components(glyph: bytes) -> list[tuple[int, int]]:
    """``(offset, glyph id)`` of each component of a composite glyph (none for a simple one)."""
    if len(glyph) < 10 or struct.unpack_from(">h", glyph)[0] >= 0:
        return []
    found, pos = [], 10
    while True:
        flags, gid = struct.unpack_from(">HH", glyph, pos)
        found.append((pos + 2, gid))
        pos += 4 + (4 if flags & 0x0001 else 2)  # ARG_1_AND_2_ARE_WORDS
        if flags & 0x0008:  # WE_HAVE_A_SCALE
            pos += 2
        elif flags & 0x0040:  # WE_HAVE_AN_X_AND_Y_SCALE
            pos += 4
        elif flags & 0x0080:  # WE_HAVE_A_TWO_BY_TWO
            pos += 8
        if not flags & 0x0020:  # MORE_COMPONENTS
            return found


class TrueTypeFace:
    """One TrueType file, read once: metrics for layout and raw glyphs for subsets."""

    def __init__(self, path: Path) -> None:
        font = ttLib.TTFont(str(path), lazy=True)
        try:
            head = font.reader["head"]
            self.units = struct.unpack_from(">H", head, 18)[0]
            self.bbox = [round(v * 1000 / self.units) for v in struct.unpack_from(">4h", head, 36)]
            long_loca = struct.unpack_from(">h", head, 50)[0] == 1
            self.num_glyphs = struct.unpack_from(">H", font.reader["maxp"], 4)[0]
            loca = font.reader["loca"]
            offsets = array("I" if long_loca else "H")
            offsets.frombytes(loca[: (self.num_glyphs + 1) * offsets.itemsize])
            if _SWAP:
                offsets.byteswap()
            scale = 1 if long_loca else 2
            glyf = font.reader["glyf"]
            self.glyphs = [
                _unhinted(bytes(glyf[offsets[i] * scale : offsets[i + 1] * scale]))
                for i in range(self.num_glyphs)
            ]
            # Composite glyphs (accented letters…): where their component ids sit.
            self.composites = {
                gid: found for gid, data in enumerate(self.glyphs) if (found := _components(data))
            }
            self.head = bytes(head)
            self.tables = {tag: bytes(font.reader[tag]) for tag in _COPIED if tag in font.reader}
            self.post_header = bytes(font.reader["post"][:32])
            self.hmtx = bytes(font.reader["hmtx"])
            self.num_hmetrics = struct.unpack_from(">H", self.tables["hhea"], 34)[0]
            hhea = self.tables["hhea"]
            ascent, descent = struct.unpack_from(">hh", hhea, 4)
            self.ascent = round(ascent * 1000 / self.units)
            self.descent = round(descent * 1000 / self.units)
            os2 = self.tables.get("OS/2", b"")
            weight = struct.unpack_from(">H", os2, 4)[0] if len(os2) > 6 else 400
            cap = struct.unpack_from(">h", os2, 88)[0] if len(os2) >= 90 else ascent
            self.cap_height = round(cap * 1000 / self.units)
            self.bold = weight >= 600
            self.stem_v = 50 + int((weight / 65) ** 2)
            self.italic_angle = struct.unpack_from(">i", self.post_header, 4)[0] / 65536
            self.name = str(font["name"].getDebugName(6) or path.stem).replace(" ", "")
            order = font.getGlyphOrder()
            gid_of = {name: gid for gid, name in enumerate(order)}
            self.gid: dict[str, int] = {
                chr(code): gid_of[name] for code, name in (font.getBestCmap() or {}).items()
            }
        finally:
            font.close()
        # Advance widths in 1/1000 em, per glyph id and per character (for layout).
        advances = array("H")
        advances.frombytes(self.hmtx[: self.num_hmetrics * 4])
        if _SWAP:
            advances.byteswap()
        last = advances[(self.num_hmetrics - 1) * 2]
        self.advance = [
            (advances[g * 2] if g < self.num_hmetrics else last) * 1000 / self.units
            for g in range(self.num_glyphs)
        ]
        self.width: dict[str, float] = {ch: self.advance[g] for ch, g in self.gid.items()}
        self.missing_width = self.advance[0]

    def text_width(self, text: str, size: float) -> float:
        """Width of ``text`` in points at ``size`` points."""
        units: float = sum(map(self.width.get, text, repeat(self.missing_width, len(text))))
        return units * size / 1000

    def subset(self, gids: Iterable[int]) -> tuple[bytes, bytes]:
        """A TrueType program holding these glyphs (with their components and ``.notdef``),
        renumbered 0…n-1 in glyph id order, and the ``/CIDToGIDMap`` stream data mapping each
        original glyph id (the CID used in the content streams) to its new id."""
        keep = {0, *gids}
        composites = self.composites
        todo = [gid for gid in keep if gid in composites]
        while todo:
            for _, comp in composites[todo.pop()]:
                if comp not in keep and comp < self.num_glyphs:
                    keep.add(comp)
                    if comp in composites:
                        todo.append(comp)
        ordered = sorted(keep)
        new_id = {gid: i for i, gid in enumerate(ordered)}
        count = len(ordered)
        loca = array("I", [0])
        chunks: list[bytes] = []
        hmtx: list[bytes] = []
        pos, nh, old = 0, self.num_hmetrics, self.hmtx
        for gid in ordered:
            data = self.glyphs[gid]
            components = composites.get(gid)
            if components:  # point the components at their new ids
                patched = bytearray(data)
                for at, comp in components:
                    struct.pack_into(">H", patched, at, new_id.get(comp, 0))
                data = bytes(patched)
            data += b"\0" * (-len(data) % 4)
            chunks.append(data)
            pos += len(data)
            loca.append(pos)
            if gid < nh:
                hmtx.append(old[gid * 4 : gid * 4 + 4])
            else:  # past the long metrics: the last advance, its own side bearing
                at = nh * 4 + (gid - nh) * 2
                hmtx.append(old[nh * 4 - 4 : nh * 4 - 2] + old[at : at + 2])
        if _SWAP:
            loca.byteswap()
        head = bytearray(self.head)
        head[8:12] = b"\0\0\0\0"  # checkSumAdjustment, set by _assemble
        head[50:52] = b"\0\1"  # long loca offsets
        maxp = bytearray(self.tables["maxp"])
        struct.pack_into(">H", maxp, 4, count)
        hhea = bytearray(self.tables["hhea"])
        struct.pack_into(">H", hhea, 34, count)
        tables = {
            **self.tables,
            "glyf": b"".join(chunks),
            "head": bytes(head),
            "hhea": bytes(hhea),
            "hmtx": b"".join(hmtx),
            "loca": loca.tobytes(),
            "maxp": bytes(maxp),
            "post": b"\0\3\0\0" + self.post_header[4:32],  # format 3: no glyph names
        }
        cid_to_gid = array("H", bytes(2 * (ordered[-1] + 1)))
        for gid, new in new_id.items():
            cid_to_gid[gid] = new
        if _SWAP:
            cid_to_gid.byteswap()
        return _assemble(tables), cid_to_gid.tobytes()


def _assemble(tables: dict[str, bytes]) -> bytes:
    """An sfnt file from its tables, with checksums and ``head.checkSumAdjustment``."""
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(
        ">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, count * 16 - power * 16
    )
    offset = 12 + 16 * count
    records, bodies, head_at = [], [], 0
    for tag in tags:
        data = tables[tag]
        if tag == "head":
            head_at = offset
        records.append(
            struct.pack(">4sIII", tag.encode("latin-1"), _checksum(data), offset, len(data))
        )
        padded = data + b"\0" * (-len(data) % 4)
        bodies.append(padded)
        offset += len(padded)
    directory = header + b"".join(records)
    total = _checksum(directory) + sum(_checksum(body) for body in bodies)
    font = bytearray(directory + b"".join(bodies))
    struct.pack_into(">I", font, head_at + 8, (0xB1B0AFBA - total) & 0xFFFFFFFF)
    return bytes(font)


_LOCK = threading.Lock()


@functools.cache
def _face(path: str) -> TrueTypeFace:
    return TrueTypeFace(Path(path))


def true_type_face(path: Path) -> TrueTypeFace:
    """The face of a font file, read once per process (thread-safe)."""
    with _LOCK:
        return _face(str(path))


@dataclass(frozen=True, slots=True)
class CoreFace:
    """A standard PDF font (Helvetica), not embedded: Latin-1 text, widths from fpdf2's AFM data."""

    name: str
    width: dict[str, int]
    bold: bool

    missing_width: float = 500.0

    def text_width(self, text: str, size: float) -> float:
        units: int = sum(map(self.width.get, text, repeat(500, len(text))))
        return units * size / 1000


@functools.cache
def core_face(bold: bool) -> CoreFace:
    from fpdf.fonts import CORE_FONTS_CHARWIDTHS  # the AFM widths of the 14 standard fonts

    key = "helveticaB" if bold else "helvetica"
    return CoreFace("Helvetica-Bold" if bold else "Helvetica", CORE_FONTS_CHARWIDTHS[key], bold)


Face = TrueTypeFace | CoreFace


@dataclass(slots=True)
class FontUse:
    """A face as used by one document: resource name and the characters drawn with it."""

    face: Face
    resource: str  # "F1"
    chars: dict[str, int] = field(default_factory=dict)  # char -> glyph id (TrueType)
    _hex: dict[str, str] = field(default_factory=dict)  # char -> glyph id as 4 hex digits

    def encode(self, text: str) -> str:
        """``text`` as a PDF string operand for ``Tj``: glyph ids (hex) or Latin-1 literal."""
        face = self.face
        if isinstance(face, CoreFace):
            raw = text.encode("latin-1", "replace").decode("latin-1")
            return (
                "("
                + raw.replace("\\", "\\\\")
                .replace("(", "\\(")
                .replace(")", "\\)")
                .replace("\r", "\\r")
                + ")"
            )
        hexes = self._hex
        try:
            return "<" + "".join(map(hexes.__getitem__, text)) + ">"
        except KeyError:
            for ch in text:
                if ch not in hexes:
                    gid = self.chars[ch] = face.gid.get(ch, 0)
                    hexes[ch] = f"{gid:04X}"
            return "<" + "".join(map(hexes.__getitem__, text)) + ">"

    def subset_tag(self) -> str:
        """Six capital letters naming this subset, derived from its glyphs (deterministic)."""
        digest = hashlib.md5(
            repr(sorted(set(self.chars.values()))).encode(), usedforsecurity=False
        ).digest()
        return "".join(chr(65 + b % 26) for b in digest[:6])


def to_unicode_cmap(chars: dict[str, int]) -> bytes:
    """The ToUnicode CMap of a CID font whose CIDs are glyph ids (text extraction, search)."""
    first: dict[int, str] = {}
    for ch, gid in sorted(chars.items(), key=lambda item: item[0]):
        first.setdefault(gid, ch)
    entries = [
        f"<{gid:04X}> <{ch.encode('utf-16-be').hex().upper()}>" for gid, ch in sorted(first.items())
    ]
    blocks = []
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("ascii")

"""A small PDF writer for invoices: text, lines, boxes, an image, PDF/A-3 and an attachment.

Why its own writer: an invoice is a few dozen text runs and rules, and issuing one must cost a
few milliseconds (issue #4 aims at 100 invoices/s on one core); a general-purpose PDF library
spent ten times that on its object model and font handling, and the Factur-X library then read
and rewrote the whole file with pypdf to attach the XML.

What it writes, and why each part is there:

* **PDF/A-3B** (ISO 19005-3) when the fonts are embedded: an sRGB output intent (the ICC
  profile file shipped with fpdf2), XMP metadata (uncompressed, as PDF/A wants it), a file /ID,
  embedded font subsets with widths matching the font (``caisse.invoices.fonts``), a
  transparency group on each page (the TEST mark is translucent).
* **Associated file** (PDF/A-3's ``/AF``): the Factur-X XML as an embedded file
  (``/AFRelationship /Data``, ``text/xml``, size, MD5, date) listed in ``/Names`` and ``/AF``,
  exactly the structure the ``factur-x`` library writes, plus its XMP extension schema
  (``fx:DocumentType`` …) so that Factur-X readers recognise the file.
* **Determinism**: no clock; dates come from the caller and the /ID is a hash of the content,
  so the same input always gives the same bytes.

Coordinates given to ``Page`` are millimetres from the top-left corner, like the layout code
thinks; they are converted to PDF points (bottom-left origin) here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import cos, radians, sin
from pathlib import Path

from caisse.invoices.fonts import CoreFace, Face, FontUse, TrueTypeFace, to_unicode_cmap

__all__ = ["Attachment", "Document", "Page"]

K = 72 / 25.4  # points per millimetre
A4 = (210.0, 297.0)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


@functools.cache
def _color(rgb: tuple[int, int, int]) -> str:
    return " ".join(_num(c / 255) for c in rgb)


def _pdf_text(text: str) -> bytes:
    """A literal string for a dictionary value (ASCII text: names of files, languages)."""
    raw = text.encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


@functools.cache
def _srgb_profile() -> bytes:
    """The sRGB ICC profile (deflated once per process) for the PDF/A output intent."""
    spec = importlib.util.find_spec("fpdf")  # located, not imported: fpdf2 is a big package
    assert spec is not None
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)), "data", "color_profiles")
    return zlib.compress((folder / "sRGB2014.icc").read_bytes())


@dataclass(frozen=True, slots=True)
class Attachment:
    """An embedded file associated with the document (PDF/A-3 ``/AF``)."""

    name: str
    data: bytes
    mime: str  # "text/xml"
    description: str
    relationship: str  # "Data", "Source", "Alternative"
    date: str  # PDF date, "D:20260131000000+00'00'"


@dataclass(slots=True)
class Page:
    """One page's content stream, drawn in millimetres from the top-left corner."""

    height: float
    ops: list[str] = field(default_factory=list)
    uses_image: bool = False

    def text(
        self,
        x: float,
        y: float,
        font: FontUse,
        size: float,
        text: str,
        color: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """``text`` with its baseline starting at (x, y)."""
        if not text:
            return
        self.ops.append(
            f"BT {_color(color)} rg /{font.resource} {size:.2f} Tf {x * K:.2f} "
            f"{(self.height - y) * K:.2f} Td {font.encode(text)} Tj ET"
        )

    def rotated_text(
        self,
        x: float,
        y: float,
        angle: float,
        font: FontUse,
        size: float,
        text: str,
        color: tuple[int, int, int],
        alpha_state: str,
    ) -> None:
        """``text`` turned ``angle`` degrees counter-clockwise about (x, y), translucent."""
        c, s = cos(radians(angle)), sin(radians(angle))
        self.ops.append(
            f"q /{alpha_state} gs {_num(c)} {_num(s)} {_num(-s)} {_num(c)} {_num(x * K)} "
            f"{_num((self.height - y) * K)} cm BT {_color(color)} rg /{font.resource} "
            f"{_num(size)} Tf 0 0 Td {font.encode(text)} Tj ET Q"
        )

    def hline(self, x1: float, x2: float, y: float, width: float = 0.2) -> None:
        yy = f"{(self.height - y) * K:.2f}"
        self.ops.append(f"0 G {width * K:.2f} w {x1 * K:.2f} {yy} m {x2 * K:.2f} {yy} l S")

    def fill_rect(
        self, x: float, y: float, w: float, h: float, color: tuple[int, int, int]
    ) -> None:
        self.ops.append(
            f"{_color(color)} rg {x * K:.2f} {(self.height - y - h) * K:.2f} {w * K:.2f} "
            f"{h * K:.2f} re f"
        )

    def image(self, x: float, y: float, w: float, h: float) -> None:
        """The document's image (``Document.set_image``) in this box."""
        self.uses_image = True
        self.ops.append(
            f"q {w * K:.2f} 0 0 {h * K:.2f} {x * K:.2f} {(self.height - y - h) * K:.2f} cm "
            "/Im1 Do Q"
        )


class Document:
    """Pages, fonts, one optional image and attachments; ``output`` gives the file bytes."""

    def __init__(self, fonts: Sequence[Face], *, size: tuple[float, float] = A4) -> None:
        self.width, self.height = size
        self.fonts = [FontUse(face, f"F{i}") for i, face in enumerate(fonts, start=1)]
        self.pages: list[Page] = []
        self.image_size: tuple[int, int] | None = None
        self._image: bytes | None = None
        self.pdfa = all(isinstance(font.face, TrueTypeFace) for font in self.fonts)

    def add_page(self) -> Page:
        page = Page(self.height)
        self.pages.append(page)
        return page

    def set_image(self, data: bytes) -> tuple[int, int]:
        """Decode a PNG or JPEG (through Pillow) into an RGB image; returns its pixel size."""
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                rgb = flat
            else:
                rgb = img.convert("RGB")
            self.image_size = rgb.size
            self._image = zlib.compress(rgb.tobytes())
        return self.image_size

    def output(
        self,
        *,
        title: str,
        author: str,
        lang: str,
        date: str,
        xmp_date: str,
        attachments: Sequence[Attachment] = (),
        xmp_extra: str = "",
    ) -> bytes:
        """The PDF file. ``date``/``xmp_date``: the document's date in PDF and XMP syntax."""
        objects: list[bytes | None] = [None]  # 1-based numbering; slot 0 unused

        def reserve() -> int:
            objects.append(None)
            return len(objects) - 1

        def put(body: bytes, number: int | None = None) -> int:
            if number is None:
                number = reserve()
            objects[number] = body
            return number

        def stream(meta: bytes, data: bytes, *, deflate: bool = True) -> bytes:
            if deflate:
                data = zlib.compress(data)
                meta += b" /Filter /FlateDecode"
            return b"<<%s /Length %d>>\nstream\n%s\nendstream" % (meta, len(data), data)

        catalog, pages_id = reserve(), reserve()
        font_refs = [self._put_font(font, put, stream) for font in self.fonts]
        font_dict = b" ".join(
            b"/%s %d 0 R" % (font.resource.encode(), ref)
            for font, ref in zip(self.fonts, font_refs, strict=True)
        )
        image_ref = None
        if self._image is not None and self.image_size is not None:
            w, h = self.image_size
            image_ref = put(
                b"<</Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d>>\nstream\n%s\nendstream"
                % (w, h, len(self._image), self._image)
            )
        gstate = put(b"<</Type /ExtGState /ca 0.18 /CA 0.18>>")
        resources = put(
            b"<</Font <<%s>> /ExtGState <</GS1 %d 0 R>>%s /ProcSet [/PDF /Text /ImageC]>>"
            % (font_dict, gstate, b" /XObject <</Im1 %d 0 R>>" % image_ref if image_ref else b"")
        )
        kids = []
        for page in self.pages:
            content = put(stream(b"", "\n".join(page.ops).encode("latin-1")))
            kids.append(
                put(
                    b"<</Type /Page /Parent %d 0 R /Resources %d 0 R /Contents %d 0 R "
                    b"/Group <</Type /Group /S /Transparency /CS /DeviceRGB>>>>"
                    % (pages_id, resources, content)
                )
            )
        put(
            b"<</Type /Pages /Count %d /Kids [%s] /MediaBox [0 0 %s %s]>>"
            % (
                len(kids),
                b" ".join(b"%d 0 R" % k for k in kids),
                _num(self.width * K).encode(),
                _num(self.height * K).encode(),
            ),
            pages_id,
        )

        extra = b""
        if self.pdfa:
            xmp = _xmp(title, author, xmp_date, xmp_extra).encode("utf-8")
            metadata = put(stream(b"/Type /Metadata /Subtype /XML", xmp, deflate=False))
            icc = _srgb_profile()
            profile = put(
                b"<</N 3 /Alternate /DeviceRGB /Filter /FlateDecode /Length %d>>\nstream\n"
                b"%s\nendstream" % (len(icc), icc)
            )
            extra += (
                b" /Metadata %d 0 R /OutputIntents [<</Type /OutputIntent /S /GTS_PDFA1 "
                b"/OutputConditionIdentifier (sRGB) /Info (sRGB2014 \\(v2\\)) /RegistryName "
                b"(http://www.color.org) /DestOutputProfile %d 0 R>>]" % (metadata, profile)
            )
        if attachments:
            specs = []
            for item in attachments:
                digest = hashlib.md5(item.data, usedforsecurity=False).hexdigest().upper().encode()
                subtype = item.mime.replace("/", "#2F").encode()
                embedded = put(
                    stream(
                        b"/Type /EmbeddedFile /Subtype /%s /Params <</Size %d /CheckSum <%s> "
                        b"/ModDate %s>>" % (subtype, len(item.data), digest, _pdf_text(item.date)),
                        item.data,
                    )
                )
                name = _pdf_text(item.name)
                specs.append(
                    (
                        name,
                        put(
                            b"<</Type /Filespec /F %s /UF %s /EF <</F %d 0 R /UF %d 0 R>> /Desc %s "
                            b"/AFRelationship /%s>>"
                            % (
                                name,
                                name,
                                embedded,
                                embedded,
                                _pdf_text(item.description),
                                item.relationship.encode(),
                            )
                        ),
                    )
                )
            specs.sort()
            extra += (
                b" /Names <</EmbeddedFiles <</Names [%s]>>>> /AF [%s] /PageMode /UseAttachments"
                % (
                    b" ".join(b"%s %d 0 R" % (name, ref) for name, ref in specs),
                    b" ".join(b"%d 0 R" % ref for _, ref in specs),
                )
            )
        put(
            b"<</Type /Catalog /Pages %d 0 R /Lang %s%s>>" % (pages_id, _pdf_text(lang), extra),
            catalog,
        )
        return _serialise(objects, catalog, date)

    def _put_font(self, font: FontUse, put, stream) -> int:  # type: ignore[no-untyped-def]
        face = font.face
        if isinstance(face, CoreFace):
            return int(
                put(
                    b"<</Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding>>"
                    % face.name.encode()
                )
            )
        if not font.chars:
            font.encode(" ")  # an unused font still needs a valid (tiny) program
        gids = sorted(set(font.chars.values()))
        program, cid_to_gid = face.subset(gids)
        base = f"{font.subset_tag()}+{face.name}".encode()
        file_ref = put(stream(b"/Length1 %d" % len(program), program))
        map_ref = put(stream(b"", cid_to_gid))
        descriptor = put(
            b"<</Type /FontDescriptor /FontName /%s /Flags %d /FontBBox [%s] /ItalicAngle %s "
            b"/Ascent %d /Descent %d /CapHeight %d /StemV %d /FontFile2 %d 0 R>>"
            % (
                base,
                4 | (1 << 18 if face.bold else 0),
                " ".join(map(str, face.bbox)).encode(),
                _num(face.italic_angle).encode(),
                face.ascent,
                face.descent,
                face.cap_height,
                face.stem_v,
                file_ref,
            )
        )
        widths = b" ".join(b"%d [%d]" % (g, round(face.advance[g])) for g in gids)
        cid = put(
            b"<</Type /Font /Subtype /CIDFontType2 /BaseFont /%s /CIDSystemInfo <</Registry "
            b"(Adobe) /Ordering (Identity) /Supplement 0>> /FontDescriptor %d 0 R "
            b"/CIDToGIDMap %d 0 R /DW %d /W [%s]>>"
            % (base, descriptor, map_ref, round(face.missing_width), widths)
        )
        cmap = put(stream(b"", to_unicode_cmap(font.chars)))
        return int(
            put(
                b"<</Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H "
                b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R>>" % (base, cid, cmap)
            )
        )


def _serialise(objects: list[bytes | None], root: int, date: str) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe9\xeb\xf1\xbf\n")
    offsets = []
    for number, body in enumerate(objects[1:], start=1):
        assert body is not None, number
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    digest = hashlib.md5(bytes(out) + date.encode(), usedforsecurity=False)
    file_id = digest.hexdigest().upper().encode()
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects))
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d /Root %d 0 R /ID [<%s> <%s>]>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects),
        root,
        file_id,
        file_id,
        xref,
    )
    return bytes(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xmp(title: str, author: str, date: str, extra: str) -> str:
    """PDF/A-3B identification and document info, dated by the document, not by the clock."""
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about=""
        xmlns:dc="http://purl.org/dc/elements/1.1/"
        xmlns:xmp="http://ns.adobe.com/xap/1.0/"
        xmlns:pdf="http://ns.adobe.com/pdf/1.3/"
        xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
      <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_escape(title)}</rdf:li></rdf:Alt></dc:title>
      <dc:creator><rdf:Seq><rdf:li>{_escape(author)}</rdf:li></rdf:Seq></dc:creator>
      <xmp:CreatorTool>caisse</xmp:CreatorTool>
      <xmp:CreateDate>{date}</xmp:CreateDate>
      <xmp:ModifyDate>{date}</xmp:ModifyDate>
      <xmp:MetadataDate>{date}</xmp:MetadataDate>
      <pdf:Producer>caisse</pdf:Producer>
      <pdfaid:part>3</pdfaid:part>
      <pdfaid:conformance>B</pdfaid:conformance>
    </rdf:Description>{extra}
  </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

"""Just enough JPEG (ISO/IEC 10918-1) parsing to pass compressed bytes through.

We never re-encode a JPEG we can keep: we read its frame header to learn the size,
the process (baseline, extended, progressive, lossless) and the colour model, which
fix the DICOM Transfer Syntax and Photometric Interpretation, and we merge the shared
tables of a TIFF tile (JPEGTables) into each tile so that every frame is a complete,
standalone JPEG.

# PS3.5 8.2.1 (JPEG image compression), PS3.5 A.4.1 (JPEG transfer syntaxes),
# PS3.3 C.7.6.3.1.2 (Photometric Interpretation of compressed data)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from archive.errors import InvalidInput

__all__ = ["JpegInfo", "merge_jpeg_tables", "read_jpeg_info", "transfer_syntax_for"]

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
# Start-of-frame markers and the process each names (ITU T.81 Table B.1).
_SOF = {
    0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
    0xC5: "differential", 0xC6: "differential", 0xC7: "differential",
    0xC9: "arithmetic", 0xCA: "arithmetic", 0xCB: "arithmetic",
    0xCD: "arithmetic", 0xCE: "arithmetic", 0xCF: "arithmetic",
}
_STANDALONE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9}


@dataclass(frozen=True)
class JpegInfo:
    """What the frame header of a JPEG says."""

    rows: int
    columns: int
    components: int
    precision: int
    process: str
    subsampled: bool
    adobe_transform: int | None
    component_ids: tuple[int, ...]
    lossless_predictor: int = 0

    @property
    def photometric_interpretation(self) -> str:
        """The colour model of the compressed data (PS3.5 8.2.1)."""
        if self.components == 1:
            return "MONOCHROME2"
        if self.components == 3:
            rgb_ids = self.component_ids == (ord("R"), ord("G"), ord("B"))
            if self.adobe_transform == 0 or rgb_ids:
                return "RGB"
            return "YBR_FULL_422" if self.subsampled else "YBR_FULL"
        raise InvalidInput(f"JPEG with {self.components} components is not supported")


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, payload start, payload end) for each header segment up to SOS."""
    if not data.startswith(_SOI):
        raise InvalidInput(f"JPEG must start with FFD8, got {data[:2].hex().upper()!r}")
    out = []
    pos = 2
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise InvalidInput(f"JPEG marker expected at byte {pos}, got 0x{data[pos]:02X}")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            out.append((marker, pos, pos))
            if marker == 0xD9:
                break
            continue
        if pos + 2 > n:
            raise InvalidInput("JPEG is truncated inside a segment header")
        (seg_len,) = struct.unpack(">H", data[pos:pos + 2])
        if seg_len < 2 or pos + seg_len > n:
            raise InvalidInput(f"JPEG segment 0x{marker:02X} at byte {pos} is truncated")
        out.append((marker, pos + 2, pos + seg_len))
        pos += seg_len
        if marker == 0xDA:  # entropy-coded data follows; the header ends here
            break
    return out


def read_jpeg_info(data: bytes) -> JpegInfo:
    """Parse the frame header (SOF) of a JPEG.

    Raises
    ------
    InvalidInput
        If the bytes are not a JPEG or carry no frame header.
    """
    adobe: int | None = None
    for marker, start, end in _segments(data):
        if marker == 0xEE and data[start:start + 5] == b"Adobe" and end - start >= 12:
            adobe = data[start + 11]
        if marker in _SOF:
            precision, rows, columns, ncomp = struct.unpack(">BHHB", data[start:start + 6])
            comps = [data[start + 6 + 3 * i:start + 9 + 3 * i] for i in range(ncomp)]
            if any(len(c) < 3 for c in comps):
                raise InvalidInput("JPEG frame header is truncated")
            ids = tuple(c[0] for c in comps)
            factors = {c[1] for c in comps}
            predictor = 0
            if _SOF[marker] == "lossless":
                predictor = _lossless_predictor(data)
            return JpegInfo(
                rows=rows, columns=columns, components=ncomp, precision=precision,
                process=_SOF[marker], subsampled=len(factors) > 1, adobe_transform=adobe,
                component_ids=ids, lossless_predictor=predictor,
            )
    raise InvalidInput("JPEG has no frame header (SOF) before its scan")


def _lossless_predictor(data: bytes) -> int:
    """Ss of the first scan header, the predictor of a lossless JPEG (T.81 H.1.2.1)."""
    for marker, start, _end in _segments(data):
        if marker == 0xDA:
            ncomp = data[start]
            return data[start + 1 + 2 * ncomp]
    return 0


def transfer_syntax_for(info: JpegInfo) -> str | None:
    """The transfer syntax that carries this JPEG unchanged, or None if none does.

    Progressive, hierarchical and arithmetic-coded JPEG have only retired syntaxes.
    """
    if info.process == "baseline" and info.precision == 8:
        return "1.2.840.10008.1.2.4.50"
    if info.process in ("baseline", "extended") and info.precision in (8, 12):
        return "1.2.840.10008.1.2.4.51"
    if info.process == "lossless":
        return "1.2.840.10008.1.2.4.70" if info.lossless_predictor == 1 else "1.2.840.10008.1.2.4.57"
    return None


# APP14 "Adobe" segment with transform 0: tells decoders the 3 components are RGB,
# not YCbCr (the convention libjpeg and Pillow follow when no JFIF marker is present).
_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


def merge_jpeg_tables(tile: bytes, tables: bytes | None, *, mark_rgb: bool = False) -> bytes:
    """Make an abbreviated TIFF tile a standalone JPEG by inserting the shared tables.

    ``tables`` is the JPEGTables tag value (SOI, DQT/DHT..., EOI); its inner segments
    go straight after the tile's SOI, before the tile's own segments, so tables the
    tile carries itself still win. ``mark_rgb`` adds an Adobe APP14 segment saying the
    components are RGB (TIFF Photometric RGB with JPEG, as in Aperio SVS), so that any
    decoder reads the frame with the colours the TIFF meant. Entropy-coded data is
    never touched.
    """
    if not tile.startswith(_SOI):
        raise InvalidInput(f"JPEG tile must start with FFD8, got {tile[:2].hex().upper()!r}")
    inner = b""
    if tables:
        if not tables.startswith(_SOI):
            raise InvalidInput("JPEGTables must start with FFD8")
        inner = tables[2:-2] if tables.endswith(_EOI) else tables[2:]
    if mark_rgb:
        inner = _ADOBE_RGB + inner
    if not inner:
        return tile
    return _SOI + inner + tile[2:]

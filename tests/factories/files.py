"""Small, seeded generators of the files curators upload: STL, OBJ, PDF, images, stacks.

Every function is deterministic for a given seed and writes little data, so unit tests
stay fast; the benchmark (bench/bench_ingest.py) makes the big ones.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = [
    "ascii_stl",
    "binary_stl",
    "jpeg_bytes",
    "nifti_bytes",
    "obj_group",
    "pdf_bytes",
    "png_bytes",
    "pyramidal_jpeg_tiff",
    "split_jpeg_tables",
    "tiff_bytes",
    "tiff_stack",
    "zip_bytes",
]


def _tetra_triangles(scale: float = 10.0) -> np.ndarray:
    """A closed tetrahedron, outward-facing: (4, 3, 3) float32."""
    p = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32) * scale
    return np.array([[p[0], p[2], p[1]], [p[0], p[1], p[3]], [p[0], p[3], p[2]], [p[1], p[2], p[3]]])


def binary_stl(triangles: int | None = None, *, seed: int = 0, header: bytes = b"vitrine test") -> bytes:
    """A binary STL: a closed 10 mm tetrahedron, or ``triangles`` random ones."""
    if triangles is None:
        tris = _tetra_triangles()
    else:
        tris = np.random.default_rng(seed).normal(size=(triangles, 3, 3)).astype(np.float32)
    rec = np.zeros(len(tris), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["v"] = tris
    return header.ljust(80, b" ")[:80] + struct.pack("<I", len(tris)) + rec.tobytes()


def ascii_stl() -> bytes:
    """The tetrahedron of ``binary_stl()`` as ASCII STL (odd length on purpose)."""
    lines = ["solid tetra"]
    for tri in _tetra_triangles():
        lines += ["  facet normal 0 0 0", "    outer loop"]
        lines += [f"      vertex {x:g} {y:g} {z:g}" for x, y, z in tri]
        lines += ["    endloop", "  endfacet"]
    text = "\n".join(lines + ["endsolid tetra"]) + "\n"
    data = text.encode()
    return data if len(data) % 2 else data + b" "


def pdf_bytes(pages: int = 1) -> bytes:
    """A minimal valid PDF with ``pages`` empty pages (odd length)."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    objs += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"] * pages
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer << /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    data = out.getvalue()
    return data if len(data) % 2 else data + b"\n"


def _pattern(shape: tuple[int, int], channels: int, seed: int) -> np.ndarray:
    """A smooth seeded colour pattern (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    layers = []
    for _ in range(channels):
        fx, fy, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6.28)]
        layers.append(127.5 + 120 * np.sin(x * fx + ph) * np.cos(y * fy))
    arr = np.stack(layers, axis=-1).clip(0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def _exif(orientation: int | None, taken: datetime | None) -> bytes | None:
    from PIL import Image

    if orientation is None and taken is None:
        return None
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()


def jpeg_bytes(
    shape: tuple[int, int] = (48, 64), *, seed: int = 0, gray: bool = False,
    orientation: int | None = None, taken: datetime | None = None,
    progressive: bool = False, quality: int = 90,
) -> bytes:
    """A baseline (or progressive) JPEG of a seeded pattern, with optional EXIF."""
    from PIL import Image

    img = Image.fromarray(_pattern(shape, 1 if gray else 3, seed))
    out = io.BytesIO()
    kwargs: dict[str, object] = {"quality": quality, "progressive": progressive}
    exif = _exif(orientation, taken)
    if exif:
        kwargs["exif"] = exif
    img.save(out, "JPEG", **kwargs)
    return out.getvalue()


def png_bytes(shape: tuple[int, int] = (40, 30), *, seed: int = 0, mode: str = "RGB",
              orientation: int | None = None) -> bytes:
    from PIL import Image

    arr = _pattern(shape, 1 if mode == "L" else 3, seed)
    img = Image.fromarray(arr)
    if mode == "RGBA":
        img.putalpha(200)
    out = io.BytesIO()
    exif = _exif(orientation, None)
    img.save(out, "PNG", **({"exif": exif} if exif else {}))
    return out.getvalue()


def tiff_bytes(shape: tuple[int, int] = (40, 30), *, seed: int = 0) -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, _pattern(shape, 3, seed), photometric="rgb")
    return out.getvalue()


def obj_group(folder: Path, *, texture: str = "skin.jpg", with_mtl: bool = True,
              with_texture: bool = True, texture_ref: str | None = None) -> Path:
    """A textured tetrahedron: ``model.obj``, ``model.mtl``, a JPEG texture. Returns the OBJ."""
    folder.mkdir(parents=True, exist_ok=True)
    obj = (
        "# vitrine test\nmtllib model.mtl\n"
        "v 0 0 0\nv 10 0 0\nv 0 10 0\nv 0 0 10\n"
        "vt 0 0\nvt 1 0\nvt 0 1\n"
        "usemtl skin\n"
        "f 1/1 3/3 2/2\nf 1/1 2/2 4/3\nf 1/1 4/3 3/2\nf 2/1 3/2 4/3\n"
    )
    (folder / "model.obj").write_text(obj)
    if with_mtl:
        ref = texture_ref or texture
        (folder / "model.mtl").write_text(f"newmtl skin\nKd 1 1 1\nmap_Kd {ref}\n")
    if with_texture:
        (folder / texture).parent.mkdir(parents=True, exist_ok=True)
        (folder / texture).write_bytes(jpeg_bytes((32, 32), seed=3))
    return folder / "model.obj"


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data,
                        compress_type=compression)
    return out.getvalue()


def tiff_stack(folder: Path, *, slices: int = 5, shape: tuple[int, int] = (16, 12),
               dtype: str = "uint16", seed: int = 0, multipage: bool = False) -> Path:
    """Seeded CT-like slices: a folder of ``slice_000.tif``... or one multipage TIFF."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = 4000 if dtype == "uint16" else 255
    vol = rng.integers(0, top, size=(slices, *shape)).astype(dtype)
    if multipage:
        path = folder / "stack.tif"
        tifffile.imwrite(path, vol, photometric="minisblack")
        return path
    for i, plane in enumerate(vol):
        tifffile.imwrite(folder / f"slice_{i:03d}.tif", plane, photometric="minisblack")
    return folder


def nifti_bytes(vol: np.ndarray, *, spacing_mm: tuple[float, float, float] = (0.5, 0.5, 1.0),
                affine: np.ndarray | None = None, gz: bool = False, slope: float = 0.0,
                inter: float = 0.0) -> bytes:
    """A NIfTI-1 single file (.nii) of ``vol`` (x, y, z), written by hand (sform set)."""
    codes = {np.dtype("uint8"): (2, 8), np.dtype("int16"): (4, 16), np.dtype("uint16"): (512, 16),
             np.dtype("float32"): (16, 32)}
    code, bitpix = codes[vol.dtype]
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    dims = [3, *vol.shape, 1, 1, 1, 1]
    struct.pack_into("<8h", hdr, 40, *dims)
    struct.pack_into("<hh", hdr, 70, code, bitpix)
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing_mm, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<ff", hdr, 112, slope, inter)
    struct.pack_into("<B", hdr, 123, 2)  # xyzt_units: mm
    if affine is None:
        affine = np.diag([*spacing_mm, 1.0])
    struct.pack_into("<hh", hdr, 252, 0, 1)  # qform 0, sform 1 (scanner)
    for i, off in enumerate((280, 296, 312)):
        struct.pack_into("<4f", hdr, off, *affine[i])
    hdr[344:348] = b"n+1\x00"
    data = bytes(hdr) + b"\x00" * 4 + np.asfortranarray(vol).tobytes(order="F")
    return gzip.compress(data, mtime=0) if gz else data


def split_jpeg_tables(jpeg: bytes, *, drop: tuple[int, ...] = ()) -> tuple[bytes, bytes]:
    """Split a JPEG into (tables, abbreviated stream) as TIFF JPEGTables expects.

    Segments whose marker is in ``drop`` (e.g. 0xEE, Adobe APP14) are left out.
    """
    tables, rest = [b"\xff\xd8"], [b"\xff\xd8"]
    pos = 2
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        (length,) = struct.unpack(">H", jpeg[pos + 2:pos + 4])
        seg = jpeg[pos:pos + 2 + length]
        if marker == 0xDA:
            rest.append(jpeg[pos:])
            break
        if marker not in drop:
            (tables if marker in (0xDB, 0xC4) else rest).append(seg)
        pos += 2 + length
    tables.append(b"\xff\xd9")
    return b"".join(tables), b"".join(rest)


def _numeric_component_ids(jpeg: bytes) -> bytes:
    """Rename components 'R','G','B' to 1,2,3 in SOF and SOS (as many encoders write)."""
    out = bytearray(jpeg)
    pos = 2
    while pos < len(out):
        marker = out[pos + 1]
        (length,) = struct.unpack(">H", out[pos + 2:pos + 4])
        if marker in (0xC0, 0xDA):
            start, ncomp_at = (pos + 4 + 6, pos + 4 + 5) if marker == 0xC0 else (pos + 5, pos + 4)
            step = 3 if marker == 0xC0 else 2
            for i in range(out[ncomp_at]):
                out[start + step * i] = {0x52: 1, 0x47: 2, 0x42: 3}.get(out[start + step * i], out[start + step * i])
        if marker == 0xDA:
            break
        pos += 2 + length
    return bytes(out)


def pyramidal_jpeg_tiff(path: Path, *, size: tuple[int, int] = (2048, 1536), tile: int = 256,
                        levels: int = 3, seed: int = 0, quality: int = 90,
                        mpp: float | None = 0.25, rgb: bool = False) -> np.ndarray:
    """A tiled pyramidal TIFF with abbreviated JPEG tiles and shared JPEGTables.

    Levels are consecutive IFDs halving in size (the layout OpenSlide calls generic
    tiled TIFF). With ``rgb`` the tiles code RGB without a colour transform and the
    TIFF says Photometric RGB, as Aperio SVS does (no Adobe marker in the tiles).
    Returns level 0 as decoded from the tiles (what a reader must give).
    """
    import tifffile
    from PIL import Image

    width, height = size
    base = _pattern((height, width), 3, seed)
    decoded0 = np.zeros_like(base)
    with tifffile.TiffWriter(path) as tw:
        img = Image.fromarray(base)
        for level in range(levels):
            arr = np.asarray(img)
            h, w = arr.shape[:2]
            tiles, table = [], None
            for ty in range(0, h, tile):
                for tx in range(0, w, tile):
                    block = np.zeros((tile, tile, 3), np.uint8)
                    part = arr[ty:ty + tile, tx:tx + tile]
                    block[: part.shape[0], : part.shape[1]] = part
                    buf = io.BytesIO()
                    Image.fromarray(block).save(buf, "JPEG", quality=quality, subsampling=0 if rgb else 2,
                                                keep_rgb=rgb)
                    coded = _numeric_component_ids(buf.getvalue()) if rgb else buf.getvalue()
                    t, abbreviated = split_jpeg_tables(coded, drop=(0xEE,) if rgb else ())
                    table = table or t
                    tiles.append(abbreviated)
                    if level == 0:
                        full = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                        decoded0[ty:ty + tile, tx:tx + tile] = full[: part.shape[0], : part.shape[1]]
            res = {}
            if mpp:
                px_per_cm = 1e4 / (mpp * 2**level)
                res = {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}
            colour = ({"photometric": "rgb", "subsampling": (1, 1), "compressionargs": {"outcolorspace": "RGB"}}
                      if rgb else {"photometric": "ycbcr", "subsampling": (2, 2)})
            tw.write(iter(tiles), shape=(h, w, 3), dtype="uint8", tile=(tile, tile), compression="jpeg",
                     extratags=[(347, 7, len(table), table, True)], **colour, **res)
            img = img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BOX)
    return decoded0

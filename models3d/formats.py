"""Pure mesh writers (binary STL, OBJ, GLB) and STL readers: bytes <-> arrays.

Writers stream to a binary file object in chunks of ``chunk_faces`` triangles, so
writing a 400 MB STL needs only one chunk of extra memory, never a second copy of
the mesh. Readers return plain arrays.
"""

from __future__ import annotations

import io
import json
import re
import struct
from typing import BinaryIO

import numpy as np

from archive.errors import InvalidInput
from models3d.kernels.mesh import Mesh, check_mesh

CHUNK_FACES = 1 << 18
_STL_RECORD = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
_GLB_MAGIC, _GLB_JSON, _GLB_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942


def write_stl(mesh: Mesh, out: BinaryIO, chunk_faces: int = CHUNK_FACES,
              header: bytes = b"Vitrine binary STL") -> int:
    """Write binary STL (little-endian, 50 bytes per triangle) to ``out``.

    Parameters
    ----------
    mesh : Mesh
        (V, 3) float32 vertices in mm, (F, 3) int32 faces.
    out : binary file object
        Written sequentially; never seeked.
    chunk_faces : int
        Triangles converted per chunk (bounds the extra memory).

    Returns
    -------
    int
        Bytes written.
    """
    mesh = check_mesh(mesh)
    n = len(mesh.faces)
    if n >= 2**32:
        raise InvalidInput(f"binary STL holds at most 2**32-1 triangles, got {n}")
    out.write(header[:80].ljust(80, b"\0"))
    out.write(struct.pack("<I", n))
    record = np.zeros(min(n, chunk_faces), dtype=_STL_RECORD)
    for start in range(0, n, chunk_faces):
        f = mesh.faces[start:start + chunk_faces]
        rec = record[: len(f)]
        tri = mesh.vertices[f]  # (m, 3, 3)
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        length = np.linalg.norm(normal, axis=1, keepdims=True)
        rec["normal"] = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
        rec["v"] = tri
        out.write(rec.tobytes())
    return 84 + 50 * n


def write_obj(mesh: Mesh, out: BinaryIO, chunk_faces: int = CHUNK_FACES) -> None:
    """Write Wavefront OBJ text (``v x y z`` then 1-based ``f a b c``) to ``out``."""
    mesh = check_mesh(mesh)
    out.write(b"# Vitrine OBJ, units mm\n")
    for start in range(0, len(mesh.vertices), chunk_faces):
        buf = io.BytesIO()
        np.savetxt(buf, mesh.vertices[start:start + chunk_faces], fmt="v %.9g %.9g %.9g")
        out.write(buf.getvalue())
    for start in range(0, len(mesh.faces), chunk_faces):
        buf = io.BytesIO()
        one_based = mesh.faces[start:start + chunk_faces].astype(np.int64) + 1
        np.savetxt(buf, one_based, fmt="f %d %d %d")
        out.write(buf.getvalue())


def write_glb(mesh: Mesh, out: BinaryIO, chunk_faces: int = CHUNK_FACES) -> int:
    """Write a glTF 2.0 binary (one mesh, positions in metres, uint32 indices).

    glTF's unit is the metre (glTF 2.0 §3.6.1), so positions are scaled by 1/1000.
    Returns the bytes written.
    """
    mesh = check_mesh(mesh)
    nv, nf = len(mesh.vertices), len(mesh.faces)
    if nf == 0:
        raise InvalidInput("a GLB needs at least one triangle")
    pos_bytes, idx_bytes = 12 * nv, 12 * nf
    lo = (mesh.vertices.min(axis=0).astype(np.float64) / 1000).astype(np.float32)
    hi = (mesh.vertices.max(axis=0).astype(np.float64) / 1000).astype(np.float32)
    gltf = {
        "asset": {"version": "2.0", "generator": "Vitrine"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "buffers": [{"byteLength": pos_bytes + idx_bytes}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": pos_bytes, "target": 34962},
            {"buffer": 0, "byteOffset": pos_bytes, "byteLength": idx_bytes, "target": 34963},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": nv, "type": "VEC3",
             "min": [float(x) for x in lo], "max": [float(x) for x in hi]},
            {"bufferView": 1, "componentType": 5125, "count": 3 * nf, "type": "SCALAR"},
        ],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + pos_bytes + idx_bytes
    out.write(struct.pack("<III", _GLB_MAGIC, 2, total))
    out.write(struct.pack("<II", len(js), _GLB_JSON) + js)
    out.write(struct.pack("<II", pos_bytes + idx_bytes, _GLB_BIN))
    for start in range(0, nv, chunk_faces):
        chunk = mesh.vertices[start:start + chunk_faces].astype(np.float64) / 1000
        out.write(chunk.astype("<f4").tobytes())
    for start in range(0, nf, chunk_faces):
        out.write(mesh.faces[start:start + chunk_faces].astype("<u4").tobytes())
    return total


def read_glb(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read what :func:`write_glb` writes: ``(V, 3) float32`` mm and ``(F, 3) int64``."""
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC or version != 2 or total != len(data):
        raise InvalidInput("not a glTF 2.0 binary")
    js_len, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20:20 + js_len])
    bin_start = 20 + js_len + 8
    acc, views = gltf["accessors"], gltf["bufferViews"]
    pos = np.frombuffer(data, "<f4", acc[0]["count"] * 3, bin_start + views[0]["byteOffset"])
    idx = np.frombuffer(data, "<u4", acc[1]["count"], bin_start + views[1]["byteOffset"])
    return (pos.reshape(-1, 3) * 1000).astype(np.float32), idx.reshape(-1, 3).astype(np.int64)


def _merge(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3, 3) corners -> unique (V, 3) float32 vertices and (F, 3) int64 faces."""
    verts, inverse = np.unique(triangles.reshape(-1, 3), axis=0, return_inverse=True)
    return verts.astype(np.float32), inverse.reshape(-1, 3).astype(np.int64)


def read_stl(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read binary or ASCII STL; merge identical corners.

    Returns
    -------
    vertices : (V, 3) float32
    faces : (F, 3) int64
    """
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if len(data) == 84 + 50 * n:
            rec = np.frombuffer(data, dtype=_STL_RECORD, count=n, offset=84)
            return _merge(np.asarray(rec["v"], dtype=np.float32))
    text = data.decode("ascii", errors="strict") if data[:5].lower() == b"solid" else None
    if text is None:
        raise InvalidInput("not a binary STL (size mismatch) nor an ASCII STL")
    number = r"([-+0-9.eEinfa]+)"
    coords = re.findall(r"vertex\s+" + r"\s+".join([number] * 3), text)
    if len(coords) % 3:
        raise InvalidInput(f"ASCII STL has {len(coords)} vertices, not a multiple of 3")
    tri = np.array(coords, dtype=np.float64).reshape(-1, 3, 3)
    return _merge(tri.astype(np.float32))


def write_ascii_stl(mesh: Mesh, out: BinaryIO) -> None:
    """Write ASCII STL (for tests and small meshes)."""
    mesh = check_mesh(mesh)
    out.write(b"solid vitrine\n")
    for f in mesh.faces:
        out.write(b"facet normal 0 0 0\nouter loop\n")
        out.writelines(b"vertex %.9g %.9g %.9g\n" % tuple(float(x) for x in v)
                       for v in mesh.vertices[f])
        out.write(b"endloop\nendfacet\n")
    out.write(b"endsolid vitrine\n")


WRITERS = {"stl": write_stl, "obj": write_obj, "glb": write_glb}
READERS = {"stl": read_stl, "glb": read_glb}

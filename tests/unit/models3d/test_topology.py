"""Vertex -> face incidence built block by block, against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from models3d.kernels.topology import vertex_corners, vertex_faces, vertex_successors
from tests.factories.meshes import octasphere_mesh


def faces_around(faces: np.ndarray, n_vertices: int) -> list[list[int]]:
    around: list[list[int]] = [[] for _ in range(n_vertices)]
    for f, face in enumerate(faces.tolist()):
        for v in face:
            around[v].append(f)
    return around


@pytest.mark.parametrize("n_blocks", [1, 3, 16, 200])
@pytest.mark.parametrize("shuffle", [False, True])
def test_vertex_faces_match_a_plain_loop(n_blocks, shuffle):
    mesh = octasphere_mesh(2)
    faces = mesh.faces
    if shuffle:  # corners far apart in id: a face lands in up to three blocks
        faces = np.random.default_rng(1).permutation(len(mesh.vertices)).astype(np.int32)[faces]
    off, ref = vertex_faces(faces, len(mesh.vertices), n_blocks)
    expected = faces_around(faces, len(mesh.vertices))
    assert off[0] == 0 and off[-1] == 3 * len(faces)
    assert [ref[off[v]:off[v + 1]].tolist() for v in range(len(mesh.vertices))] == expected


def test_vertex_corners_are_the_half_edges_around_each_vertex():
    mesh = octasphere_mesh(1)
    start, corners = vertex_corners(mesh.faces, len(mesh.vertices), 4)
    for v, around in enumerate(faces_around(mesh.faces, len(mesh.vertices))):
        pairs = []
        for f in around:
            k = mesh.faces[f].tolist().index(v)
            pairs += [mesh.faces[f][(k + 1) % 3], mesh.faces[f][(k + 2) % 3]]
        assert corners[start[v]:start[v + 1]].tolist() == pairs


def test_vertex_successors_are_the_outgoing_half_edges():
    mesh = octasphere_mesh(1)
    start, successors = vertex_successors(mesh.faces, len(mesh.vertices), 3)
    for v, around in enumerate(faces_around(mesh.faces, len(mesh.vertices))):
        expected = [mesh.faces[f][(mesh.faces[f].tolist().index(v) + 1) % 3] for f in around]
        assert successors[start[v]:start[v + 1]].tolist() == expected


def test_isolated_vertices_and_empty_meshes():
    faces = np.array([[0, 2, 3]], np.int32)
    off, ref = vertex_faces(faces, 5, 2)
    assert off.tolist() == [0, 1, 1, 2, 3, 3] and ref.tolist() == [0, 0, 0]
    off, ref = vertex_faces(np.zeros((0, 3), np.int32), 0)
    assert off.tolist() == [0] and len(ref) == 0

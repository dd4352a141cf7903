"""Reading a user's head mesh: formats, units, vertex order, components and the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from mmface4d.character.mesh import HeadMesh, connected_components, load_head
from mmface4d.errors import InputError

ICT_OBJ = "generic_neutral_mesh.obj"


def _head(radius: float = 0.1) -> trimesh.Trimesh:
    """A 2,562-vertex sphere, vertex order shuffled so that a reordering reader would show."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    order = np.random.default_rng(0).permutation(len(sphere.vertices))
    inverse = np.argsort(order)
    return trimesh.Trimesh(sphere.vertices[order], inverse[sphere.faces], process=False)


def _write_obj(path: Path, vertices: np.ndarray, polygons: list[list[int]]) -> Path:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += ["f " + " ".join(str(i + 1) for i in polygon) for polygon in polygons]
    path.write_text("\n".join(lines) + "\n")
    return path


def _grid_quads(n: int = 40, size: float = 0.2) -> tuple[np.ndarray, list[list[int]]]:
    """An n x n vertex grid (size metres across) and its (n-1)^2 quads, counter-clockwise."""
    u, v = np.meshgrid(np.linspace(0, size, n), np.linspace(0, size, n), indexing="ij")
    vertices = np.stack([u.ravel(), v.ravel(), np.zeros(n * n)], axis=1)
    index = np.arange(n * n).reshape(n, n)
    quads = [
        [index[i, j], index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]]
        for i in range(n - 1)
        for j in range(n - 1)
    ]
    return vertices, quads


def test_obj_quads_are_fan_triangulated_with_vertex_order_and_winding_kept(tmp_path):
    vertices, quads = _grid_quads()
    head = load_head(_write_obj(tmp_path / "grid.obj", vertices, quads))
    assert isinstance(head, HeadMesh)
    assert head.vertices.dtype == np.float64 and head.faces.dtype == np.int64
    np.testing.assert_allclose(head.vertices, vertices, atol=1e-6)
    assert len(head.faces) == 2 * len(quads)
    a, b, c, d = quads[0]
    np.testing.assert_array_equal(head.faces[:2], [[a, b, c], [a, c, d]])
    normals = trimesh.Trimesh(head.vertices, head.faces, process=False).face_normals
    assert (normals[:, 2] > 0.99).all()  # every triangle keeps the quads' winding (+z)
    assert head.source_unit == "m" and head.num_vertices == 1600
    assert head.path == tmp_path / "grid.obj"


def test_ply_round_trip_keeps_vertices_and_faces(tmp_path):
    mesh = _head()
    mesh.export(tmp_path / "head.ply")
    head = load_head(tmp_path / "head.ply")
    np.testing.assert_allclose(head.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(head.faces, mesh.faces)


def test_glb_round_trip_applies_node_transforms_and_keeps_mesh_order(tmp_path):
    head, eye = _head(), trimesh.creation.icosphere(subdivisions=1, radius=0.01)
    scene = trimesh.Scene()
    scene.add_geometry(head, node_name="head", geom_name="head")
    shift = np.eye(4)
    shift[:3, 3] = [0.03, 0.02, 0.09]
    scene.add_geometry(eye, node_name="eye", geom_name="eye", transform=shift)
    scene.export(tmp_path / "head.glb")
    loaded = load_head(tmp_path / "head.glb")
    count = len(head.vertices)
    np.testing.assert_allclose(loaded.vertices[:count], head.vertices, atol=1e-6)
    np.testing.assert_allclose(loaded.vertices[count:], eye.vertices + shift[:3, 3], atol=1e-6)
    np.testing.assert_array_equal(loaded.faces[: len(head.faces)], head.faces)
    np.testing.assert_array_equal(loaded.faces[len(head.faces) :], eye.faces + count)


def test_npz_with_vertices_and_faces_is_read(tmp_path):
    mesh = _head()
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices, faces=mesh.faces)
    head = load_head(tmp_path / "head.npz")
    np.testing.assert_array_equal(head.vertices, mesh.vertices)
    np.testing.assert_array_equal(head.faces, mesh.faces)


@pytest.mark.parametrize(("unit", "factor"), [("m", 1.0), ("cm", 100.0), ("mm", 1000.0)])
def test_unit_is_detected_from_the_extent_and_converted_to_metres(tmp_path, unit, factor):
    mesh = _head(radius=0.11)  # a 22 cm head
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices * factor, faces=mesh.faces)
    head = load_head(tmp_path / "head.npz")
    assert head.source_unit == unit
    np.testing.assert_allclose(head.vertices, mesh.vertices, atol=1e-12)


def test_given_unit_overrides_detection(tmp_path):
    mesh = _head(radius=0.2)
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices * 100, faces=mesh.faces)  # 40 across
    assert load_head(tmp_path / "head.npz").source_unit == "cm"
    head = load_head(tmp_path / "head.npz", unit="mm")
    assert head.source_unit == "mm"
    np.testing.assert_allclose(head.vertices, mesh.vertices * 0.1)


def test_ambiguous_extent_asks_for_the_unit(tmp_path):
    mesh = _head(radius=1.5)  # 3 across: neither metres, centimetres nor millimetres
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices, faces=mesh.faces)
    with pytest.raises(InputError, match=r"head\.npz.*largest extent 3(\.0+)? .*--unit"):
        load_head(tmp_path / "head.npz")


def test_given_unit_giving_an_implausible_size_is_refused(tmp_path):
    mesh = _head(radius=0.1)
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices * 1000, faces=mesh.faces)
    with pytest.raises(InputError, match=r"head\.npz: with unit 'm' the head is 200 m"):
        load_head(tmp_path / "head.npz", unit="m")


def test_components_are_labelled_by_size(tmp_path):
    head = _head()
    left = trimesh.creation.icosphere(subdivisions=2, radius=0.012)  # 162 vertices
    right = trimesh.creation.icosphere(subdivisions=1, radius=0.012)  # 42 vertices
    # the small eye first in the file, then the head, then the bigger eye
    parts = [right.vertices + [-0.03, 0.02, 0.09], head.vertices, left.vertices + [0.03, 0, 0]]
    offsets = np.cumsum([0] + [len(p) for p in parts])
    faces = [right.faces, head.faces + offsets[1], left.faces + offsets[2]]
    np.savez(tmp_path / "head.npz", vertices=np.concatenate(parts), faces=np.concatenate(faces))
    labels = load_head(tmp_path / "head.npz").components
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels[: offsets[1]], 2)
    np.testing.assert_array_equal(labels[offsets[1] : offsets[2]], 0)
    np.testing.assert_array_equal(labels[offsets[2] :], 1)


def test_components_welded_join_a_surface_split_at_a_seam():
    sphere = _head()
    # faces with x > 0 get their own copies of the vertices: the halves share only positions
    right = sphere.vertices[sphere.faces].mean(axis=1)[:, 0] > 0
    faces = sphere.faces.copy()
    faces[right] += len(sphere.vertices)
    vertices = np.concatenate([sphere.vertices, sphere.vertices])
    used = np.unique(faces)
    assert len(np.unique(HeadMesh(vertices=vertices, faces=faces).components[used])) == 2
    welded = connected_components(vertices, faces, weld=True)
    np.testing.assert_array_equal(welded[used], 0)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.obj: head mesh file not found"):
        load_head(tmp_path / "nothere.obj")


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "head.fbx").write_bytes(b"")
    with pytest.raises(InputError, match=r"head\.fbx.*'\.fbx'.*\.obj, \.ply, \.gltf, \.glb, \.npz"):
        load_head(tmp_path / "head.fbx")


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "head.glb").write_bytes(b"not a glb at all")
    with pytest.raises(InputError, match=r"head\.glb: could not read the mesh"):
        load_head(tmp_path / "head.glb")


def test_unknown_unit_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"unit 'inch' unknown .*head\.obj.*m, cm, mm"):
        load_head(tmp_path / "head.obj", unit="inch")


def test_point_cloud_without_faces_is_refused(tmp_path):
    trimesh.PointCloud(_head().vertices).export(tmp_path / "points.ply")
    with pytest.raises(InputError, match=r"points\.ply: no faces"):
        load_head(tmp_path / "points.ply")
    _write_obj(tmp_path / "points.obj", _head().vertices, [])
    with pytest.raises(InputError, match=r"points\.obj: no faces"):
        load_head(tmp_path / "points.obj")


@pytest.mark.parametrize(("count", "what"), [(500, "500"), (600_000, "600,000")])
def test_vertex_count_outside_the_limits_is_refused(tmp_path, count, what):
    vertices = np.random.default_rng(0).uniform(0, 0.2, (count, 3))
    np.savez(tmp_path / "head.npz", vertices=vertices, faces=[[0, 1, 2]])
    with pytest.raises(
        InputError, match=rf"head\.npz: {what} vertices, expected .*1,000 to 500,000"
    ):
        load_head(tmp_path / "head.npz")


def test_nan_positions_are_refused(tmp_path):
    mesh = _head()
    vertices = mesh.vertices.copy()
    vertices[7, 1] = np.nan
    np.savez(tmp_path / "head.npz", vertices=vertices, faces=mesh.faces)
    with pytest.raises(InputError, match=r"head\.npz: .*finite, found nan at vertex 7, axis y"):
        load_head(tmp_path / "head.npz")


def test_faces_out_of_range_are_refused(tmp_path):
    mesh = _head()
    faces = mesh.faces.copy()
    faces[3, 2] = len(mesh.vertices) + 5
    np.savez(tmp_path / "head.npz", vertices=mesh.vertices, faces=faces)
    with pytest.raises(
        InputError, match=r"head\.npz: faces index vertices 0\.\.2567, expected 0\.\.2561"
    ):
        load_head(tmp_path / "head.npz")
    vertices, quads = _grid_quads()
    quads[5][1] = 5000
    with pytest.raises(InputError, match=r"grid\.obj: line \d+: face v index 5001 out of range"):
        load_head(_write_obj(tmp_path / "grid.obj", vertices, quads))


def test_ict_facekit_obj_is_read_in_centimetres(shared_data):
    path = shared_data / "ict_facekit" / ICT_OBJ
    if not path.is_file():
        pytest.skip(f"ICT FaceKit sample OBJ not found at {path}")
    head = load_head(path)
    assert head.source_unit == "cm"
    assert head.num_vertices == 26719
    assert 0.25 < np.ptp(head.vertices, axis=0).max() < 0.4  # a whole head with neck, metres
    labels = head.components
    assert (labels[:11248] == 0).all()  # face, head and neck: one part, the biggest
    assert (labels[21451:23021] != 0).all()  # the left eyeball: parts of its own

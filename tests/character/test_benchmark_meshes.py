"""The registration benchmark's test characters (benchmarks/character/meshes.py): truth moves
with the mesh, files read back, distances are exact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mmface4d.character.mesh import load_head

MODULE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "character" / "meshes.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("benchmark_character_meshes", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


meshes = _load_module()


@pytest.fixture(scope="module")
def synth_identity():
    return meshes.synth_sources(identities=1, seed=0)[1]


def test_surface_error_is_the_exact_distance_to_the_triangles():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    vertices, faces = meshes.decimate(sphere.vertices, sphere.faces, 200)  # uneven triangles
    faces = np.concatenate([faces, [[0, 0, 1], [2, 2, 2]]])  # and degenerate ones
    points = np.random.default_rng(0).normal(size=(300, 3)) * 0.8
    t = vertices[faces]
    brute = meshes._triangle_distance(points[:, None], t[None, :, 0], t[None, :, 1], t[None, :, 2])
    found = meshes.surface_error(points, vertices, faces)
    np.testing.assert_allclose(found, brute.min(axis=1), atol=1e-12)
    on_surface = vertices[faces[:50]].mean(axis=1)
    np.testing.assert_allclose(meshes.surface_error(on_surface, vertices, faces), 0, atol=1e-12)


def test_synth_case_truth_moves_with_the_mesh(synth_identity):
    source = synth_identity
    case = meshes.make_case(source, "decimated_5k_cm_rotated")
    assert case.name == "synth-id0-decimated_5k_cm_rotated" and case.unit == "cm"
    assert 4500 <= len(case.head_vertices) <= 5500
    turn = case.transform.rotation
    assert np.degrees(np.arccos((np.trace(turn) - 1) / 2)) == pytest.approx(30)
    expected = 100 * source.vertices[source.landmarks] @ turn.T
    np.testing.assert_allclose(case.landmarks_true, expected, atol=1e-9)
    back = case.transform.invert(case.landmarks_true)
    np.testing.assert_allclose(back, source.vertices[source.landmarks], atol=1e-12)
    np.testing.assert_allclose(case.truth_vertices, 100 * source.vertices @ turn.T, atol=1e-9)
    # the true landmarks lie on the truth surface and within a millimetre of the decimated head
    on_truth = meshes.surface_error(case.landmarks_true, case.truth_vertices, case.truth_faces)
    assert on_truth.max() < 1e-9
    to_head = meshes.surface_error(case.landmarks_true, case.head_vertices, case.head_faces)
    assert to_head.max() * case.mm_per_unit < 1.0
    assert len(case.truth_face_faces) > 0.7 * len(case.truth_face_vertices)


def test_vertex_keeping_variants_keep_the_truth_order(synth_identity):
    source = synth_identity
    rotated = meshes.make_case(source, "rotated30")
    np.testing.assert_allclose(rotated.head_vertices, rotated.truth_vertices)
    axis = meshes.rotation((0, 1, 0), 30)
    np.testing.assert_allclose(rotated.head_vertices, source.vertices @ axis.T, atol=1e-12)
    mm = meshes.make_case(source, "mm")
    np.testing.assert_allclose(mm.landmarks_true, 1000 * source.vertices[source.landmarks])
    flipped = meshes.make_case(source, "retriangulated")
    np.testing.assert_array_equal(flipped.head_vertices, flipped.truth_vertices)
    changed = (np.sort(flipped.head_faces, 1) != np.sort(source.faces, 1)).any(axis=1)
    assert changed.mean() > 0.5 and len(flipped.head_faces) == len(source.faces)


def test_written_case_reads_back_in_its_unit(tmp_path, synth_identity):
    case = meshes.make_case(synth_identity, "decimated_5k_cm_rotated")
    manifest = meshes.write_cases([case], tmp_path)
    head = load_head(tmp_path / f"{case.name}.obj")
    assert head.source_unit == "cm"
    np.testing.assert_allclose(head.vertices, case.head_vertices / 100, atol=1e-8)
    assert case.name in manifest.read_text()
    truth = np.load(tmp_path / f"{case.name}_truth.npz")
    np.testing.assert_array_equal(truth["landmarks_true"], case.landmarks_true)


def test_ict_cases_match_the_facekit_files(shared_data):
    folder = shared_data / "ict_facekit"
    if not (folder / "ict_facekit_light.npz").is_file():
        pytest.skip(f"ICT FaceKit light not found in {folder}")
    neutral, identity = meshes.ict_sources(folder, identities=1)
    obj = load_head(folder / "generic_neutral_mesh.obj")
    np.testing.assert_allclose(neutral.vertices, obj.vertices, atol=1e-6)
    case = meshes.make_case(identity, "retriangulated")
    assert case.name == "ict-id0-retriangulated"
    np.testing.assert_array_equal(case.head_vertices, case.truth_vertices)
    assert not (np.sort(case.head_faces[:100], 1) == np.sort(case.truth_faces[:100], 1)).all()
    shift = np.linalg.norm(identity.vertices - neutral.vertices, axis=1)
    assert 1e-3 < shift.mean() < 2e-2  # a different face, millimetres to a centimetre or two
    np.testing.assert_array_equal(case.truth_face_vertices, np.arange(9409))

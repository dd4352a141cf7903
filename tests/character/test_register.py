"""Registering the face model to a user's head and carrying its motion onto the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

pytest.importorskip("mediapipe", reason="landmark detection needs the mediapipe extra")

from mmface4d.character import landmarks as landmarks_module  # noqa: E402
from mmface4d.character.character import (  # noqa: E402
    Character,
    load_character,
    register_character,
)
from mmface4d.errors import InputError  # noqa: E402
from mmface4d.facemodel.regions import inner_lip_pairs  # noqa: E402
from mmface4d.facemodel.sources import load_face_model  # noqa: E402

ROTATION_DEGREES = 30.0


@pytest.fixture(scope="module")
def model():
    return load_face_model("synth")


def _rotation_y(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


@pytest.fixture(scope="module")
def identity_head(model, tmp_path_factory):
    """Another person of the model (seeded identity), in centimetres, turned 30 degrees: its
    vertices correspond one to one with the model's, which the tests use as the truth."""
    rng = np.random.default_rng(7)
    alpha = np.zeros(model.identity_dims)
    alpha[:10] = rng.normal(0, 1, 10)
    shape = model.mean + np.einsum("k,kvd->vd", alpha, model.identity_basis)
    rotation = _rotation_y(ROTATION_DEGREES)
    head_cm = shape @ rotation.T * 100.0
    path = tmp_path_factory.mktemp("head") / "person.ply"
    trimesh.Trimesh(head_cm, model.faces, process=False).export(path)
    return path, shape, rotation


@pytest.fixture(scope="module")
def character(model, identity_head, tmp_path_factory, monkeypatch_module):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch_module.setenv("MMFACE4D_CACHE_DIR", str(cache))
    path, _, _ = identity_head
    return register_character(path, model)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_registration_recovers_the_surface_and_landmarks_of_a_turned_head_in_cm(
    character, identity_head, model
):
    _, shape, rotation = identity_head
    assert character.source_unit == "cm"
    assert character.errors["surface_mean"] < 1.5
    # the fitted model's landmarks, carried into the head's frame, against the true ones
    truth = shape[model.landmarks] @ rotation.T @ character.to_source  # in character axes
    found = character.model_points(character.fitted[model.landmarks])
    error_mm = np.linalg.norm(found - truth, axis=1) * 1000
    assert np.median(error_mm[17:]) < 3.0  # eyes, brows, nose, mouth
    assert np.median(error_mm) < 3.0


def test_turned_head_comes_out_in_model_axes_since_30_degrees_is_no_axis_permutation(
    character, identity_head
):
    _, shape, _ = identity_head
    # not snapped: the character is the head turned back to face +z
    centred = character.vertices - character.vertices.mean(0)
    truth = shape - shape.mean(0)
    assert np.abs(centred - truth).max() < 0.01


def test_transferred_lips_follow_the_source_and_close_where_it_closes(character, model):
    upper, lower = inner_lip_pairs(model.landmarks)
    jaw = model.expression_basis[model.expression_index("jawOpen")]
    close = model.expression_basis[model.expression_index("mouthClose")]
    weights = np.linspace(0.0, 1.0, 12)
    frames = character.fitted[None] + weights[:, None, None] * jaw[None]
    frames = np.concatenate([frames, frames[-1:] + close[None]])  # open jaw, lips pressed
    head = character.animate_frames(frames)
    gap_source = np.linalg.norm(frames[:, upper] - frames[:, lower], axis=2).mean(1)
    gap_head = np.linalg.norm(head[:, upper] - head[:, lower], axis=2).mean(1)
    assert np.median(np.abs(gap_head - gap_source)) * 1000 < 1.0
    assert gap_head[-1] * 1000 < 1.5 or gap_source[-1] * 1000 > 1.0


def test_arkit_shapes_are_carried_onto_the_head(character, model):
    head_model = character.face_model(model)
    assert head_model.num_vertices == character.num_vertices
    assert head_model.expression_names == model.expression_names
    jaw = head_model.expression_basis[head_model.expression_index("jawOpen")]
    chin = head_model.landmarks[8]
    assert np.linalg.norm(jaw[chin]) > 0.005  # the chin drops by millimetres


def test_char_file_round_trips_and_a_second_registration_reads_the_cache(
    character, identity_head, model, tmp_path, monkeypatch
):
    saved = character.save(tmp_path / "person.char")
    loaded = load_character(saved).bind(model)
    frames = character.fitted[None] + model.expression_basis[:2]
    np.testing.assert_allclose(loaded.animate_frames(frames), character.animate_frames(frames))

    def no_registration(*args, **kwargs):
        raise AssertionError("registered again instead of reading the cache")

    monkeypatch.setattr("mmface4d.character.character._register", no_registration)
    again = register_character(identity_head[0], model)
    assert isinstance(again, Character)
    np.testing.assert_array_equal(again.triangles, character.triangles)


def test_a_character_registered_to_another_model_is_refused(character, model):
    other = load_face_model("synth")
    other.mean = other.mean * 1.01
    with pytest.raises(InputError, match="register the head again"):
        character.bind(other)


def test_a_mesh_that_is_not_a_face_gets_a_clear_error(model, tmp_path):
    ball = trimesh.creation.icosphere(subdivisions=4, radius=10.0)  # cm
    path = tmp_path / "ball.obj"
    ball.export(path)
    with pytest.raises(InputError, match="ball.obj: no face found"):
        register_character(path, model, cache=False)


def test_a_face_seen_only_from_behind_is_refused(model, monkeypatch):
    monkeypatch.setattr(landmarks_module, "VIEWS", (((0, 0, -1), (0, 1, 0)),))
    with pytest.raises(InputError, match="no face found"):
        landmarks_module.detect_landmarks(model.mean, model.faces, name="mask")


def test_ict_head_with_eyes_teeth_and_a_mouth_socket(shared_data, model, tmp_path, monkeypatch):
    """A real head of another topology: the back of the head and the ears stay still, the
    mouth opens without tearing, the eyes and teeth move rigidly."""
    monkeypatch.setenv("MMFACE4D_CACHE_DIR", str(tmp_path))
    character = register_character(shared_data / "ict_facekit" / "generic_neutral_mesh.obj", model)
    assert character.source_unit == "cm"
    assert character.errors["surface_median"] < 1.0
    jaw = model.expression_basis[model.expression_index("jawOpen")]
    frames = character.fitted[None] + np.linspace(0, 1, 6)[:, None, None] * jaw[None]
    head = character.animate_frames(frames)
    moved = np.linalg.norm(head - character.vertices[None], axis=2).max(0)
    back = character.vertices[:, 2] < character.vertices[:, 2].min() + 0.05
    assert moved[back].max() < 1e-4
    assert moved.max() > 0.005
    for part in character.parts:  # rigid: pairwise distances kept
        if len(part) < 3:
            continue
        a, b = part[0], part[len(part) // 2]
        rest = np.linalg.norm(character.vertices[a] - character.vertices[b])
        np.testing.assert_allclose(np.linalg.norm(head[:, a] - head[:, b], axis=1), rest, atol=1e-5)


def test_animate_with_a_character_writes_every_format_in_its_topology(
    character, tmp_path, monkeypatch
):
    from mmface4d import cli

    path = character.save(tmp_path / "person.char")
    out = tmp_path / "out"
    code = cli.main(
        [
            "animate",
            "--text",
            "bob",
            "--name",
            "bob",
            "--character",
            str(path),
            "-o",
            str(out),
            "--quiet",
            "--size",
            "128",
        ]
    )
    assert code in (0, None)
    data = np.load(out / "bob.npz")
    assert data["vertices"].shape[1:] == (character.num_vertices, 3)
    import pygltflib

    glb = pygltflib.GLTF2().load(str(out / "bob.glb"))
    primitive = glb.meshes[0].primitives[0]
    assert glb.accessors[primitive.attributes.POSITION].count == character.num_vertices
    assert len(primitive.targets) >= 52
    assert (out / "bob_arkit.csv").stat().st_size > 0
    assert (out / "bob.mp4").stat().st_size > 0


def test_character_register_cli_writes_the_file_and_figure(identity_head, tmp_path, monkeypatch):
    from mmface4d import cli

    monkeypatch.setenv("MMFACE4D_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "person.char"
    figure = tmp_path / "person.png"
    assert cli.main(
        [
            "character",
            "register",
            str(identity_head[0]),
            "-o",
            str(out),
            "--figure",
            str(figure),
            "--quiet",
        ]
    ) in (0, None)
    assert load_character(out).num_vertices == len(identity_head[1])
    assert figure.stat().st_size > 10_000


def test_missing_mesh_is_a_one_line_error(model, tmp_path):
    with pytest.raises(InputError, match="nothing.obj"):
        register_character(Path(tmp_path / "nothing.obj"), model)

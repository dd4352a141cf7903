"""ICT FaceKit loader on the real sample files in ../shared/data/ict_facekit."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mmface4d.cli import main
from mmface4d.errors import InputError
from mmface4d.facemodel import api
from mmface4d.facemodel.ict import (
    ICT_EXPRESSION_NAMES,
    ICT_LANDMARK_VERTICES,
    ICT_NUM_VERTICES,
    ICT_PARTS,
    ict_faces,
    load_ict,
)
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.regions import REQUIRED_REGIONS
from mmface4d.facemodel.sources import load_face_model
from mmface4d.geometry.mesh import vertex_normals
from mmface4d.geometry.obj import read_obj, read_obj_vertices

REAL_OBJS = ("generic_neutral_mesh.obj", "eyeBlink_L.obj", "jawOpen.obj", "mouthFunnel.obj")
#: Shift (cm) of the fabricated expression OBJ standing in for the 50 shapes not in the sample.
FAKE_SHIFT_CM = np.array([0.5, -0.25, 1.0], dtype=np.float32)


@pytest.fixture(scope="module")
def ict_dir(shared_data: Path) -> Path:
    return shared_data / "ict_facekit"


@pytest.fixture(scope="module")
def light(ict_dir: Path) -> dict[str, np.ndarray]:
    with np.load(ict_dir / "ict_facekit_light.npz") as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def npz_model(ict_dir: Path) -> FaceModel:
    return load_ict(ict_dir)


def _write_v_obj(path: Path, vertices: np.ndarray) -> None:
    np.savetxt(path, vertices, fmt="v %.5f %.5f %.5f")


def _facex_folder(folder: Path, ict_dir: Path, light: dict[str, np.ndarray]) -> Path:
    """A FaceXModel folder: the sample's real OBJs and JSON (symlinked), and for the 50
    expressions the sample lacks one fabricated OBJ (neutral + FAKE_SHIFT_CM)."""
    folder.mkdir(parents=True)
    for name in (*REAL_OBJS, "identity000.obj", "vertex_indices.json"):
        (folder / name).symlink_to(ict_dir / name)
    fake = folder.parent / f"{folder.name}_fake_expression.obj"
    _write_v_obj(fake, light["neutral"] + FAKE_SHIFT_CM)
    for name in ICT_EXPRESSION_NAMES:
        if not (folder / f"{name}.obj").exists():
            (folder / f"{name}.obj").symlink_to(fake)
    return folder


@pytest.fixture(scope="module")
def obj_model(
    tmp_path_factory: pytest.TempPathFactory, ict_dir: Path, light: dict[str, np.ndarray]
) -> FaceModel:
    folder = _facex_folder(tmp_path_factory.mktemp("ict") / "FaceXModel", ict_dir, light)
    # the npz beside a complete OBJ set: the OBJ route must win
    (folder / "ict_facekit_light.npz").symlink_to(ict_dir / "ict_facekit_light.npz")
    return load_ict(folder)


# ---------------------------------------------------------------------- npz route
def test_npz_route_sizes_names_units(npz_model: FaceModel, light: dict[str, np.ndarray]) -> None:
    model = npz_model
    assert model.metadata["source_route"] == "ict_facekit_light.npz"  # the OBJ set is partial
    assert model.num_vertices == ICT_NUM_VERTICES == 26719
    assert model.expression_names == list(ICT_EXPRESSION_NAMES)
    assert model.identity_dims == 100 and model.albedo_basis.shape == (0, 26719, 3)
    assert model.unit == "m" and model.metadata["scale_to_metres"] == 0.01
    assert model.metadata["source_unit"] == "cm"
    width, height, depth = model.mean.max(0) - model.mean.min(0)
    assert 0.1 < width < 0.3 and 0.2 < height < 0.4 and 0.1 < depth < 0.3
    np.testing.assert_allclose(model.mean, light["neutral"] * 0.01, rtol=1e-6)
    np.testing.assert_allclose(model.expression_basis, light["expression_deltas"] * 0.01, rtol=1e-6)
    np.testing.assert_allclose(model.identity_basis, light["identity_deltas"] * 0.01, rtol=1e-6)
    np.testing.assert_array_equal(model.faces, ict_faces(light["quads"], light["tris"]))
    assert len(model.faces) == 2 * 25836 + 548
    assert model.metadata["arkit_names"]["eyeBlink_L"] == "eyeBlinkLeft"
    assert model.metadata["arkit_names"]["jawOpen"] == "jawOpen"
    assert model.metadata["parts"]["teeth"] == [17039, 21450]


def test_npz_route_landmarks_regions_axes(npz_model: FaceModel) -> None:
    model = npz_model
    assert model.landmarks.shape == (68,)
    np.testing.assert_array_equal(model.landmarks, ICT_LANDMARK_VERTICES)
    for name in (*REQUIRED_REGIONS, "nose", "chin"):
        assert len(model.regions[name]) > 0, name
    np.testing.assert_array_equal(model.regions["face"], np.arange(9409))
    lm = model.mean[model.landmarks]
    # project axes: subject's left eye (42-47) at +x, brows above the chin, nose tip in front
    assert lm[42:48, 0].mean() > 0.02 > -0.02 > lm[36:42, 0].mean()
    assert lm[19, 1] > lm[8, 1] + 0.1
    assert lm[30, 2] == pytest.approx(model.mean[:9409, 2].max(), abs=0.002)
    lip_y = model.mean[model.regions["lip"], 1]
    assert lm[57, 1] - 0.01 < lip_y.mean() < lm[33, 1]
    normals = vertex_normals(torch.as_tensor(model.mean), torch.as_tensor(model.faces))
    assert normals[model.landmarks[30], 2] > 0.9  # counter-clockwise seen from outside


def test_albedo_per_part(npz_model: FaceModel) -> None:
    albedo = npz_model.albedo_mean
    skin, teeth, socket = albedo[100], albedo[ICT_PARTS["teeth"][0]], albedo[11300]
    assert skin[0] > skin[1] > skin[2] and teeth.min() > 0.85
    assert socket[0] > 2 * socket[1] and socket.sum() < skin.sum()
    assert albedo[ICT_PARTS["eyeball_left"][0]].min() > 0.85
    assert ((albedo >= 0) & (albedo <= 1)).all()


def test_parts_partition_the_vertices(light: dict[str, np.ndarray]) -> None:
    ranges = sorted(ICT_PARTS.values())
    assert ranges[0][0] == 0 and ranges[-1][1] == ICT_NUM_VERTICES - 1
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for name, (first, last) in ICT_PARTS.items():
        x = light["neutral"][first : last + 1, 0]
        if name.endswith("_left"):
            assert x.min() > 0, name
        elif name.endswith("_right"):
            assert x.max() < 0, name


def test_constants_match_upstream_files(ict_dir: Path, light: dict[str, np.ndarray]) -> None:
    upstream = json.loads((ict_dir / "vertex_indices.json").read_text())
    assert list(ICT_EXPRESSION_NAMES) == upstream["expressions"] == list(light["expression_names"])
    assert list(ICT_LANDMARK_VERTICES) == upstream["idx_to_landmark_verts"]
    np.testing.assert_array_equal(light["landmark_vertices"], ICT_LANDMARK_VERTICES)


def test_face_model_spec_and_cli(ict_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = load_face_model(f"ict:{ict_dir}")
    assert model.name == "ict" and model.num_vertices == 26719
    assert main(["facemodel", "info", f"ict:{ict_dir}"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vertices"] == 26719 and info["unit"] == "m"
    assert info["expression_dims"] == 53 and info["landmarks"] == 68


# ---------------------------------------------------------------------- OBJ files
def test_obj_reader_on_real_neutral(ict_dir: Path, light: dict[str, np.ndarray]) -> None:
    mesh = read_obj(ict_dir / "generic_neutral_mesh.obj")
    assert mesh.num_vertices == 26719
    np.testing.assert_array_equal(mesh.vertices, light["neutral"])
    np.testing.assert_array_equal(mesh.polygons(4), light["quads"])
    np.testing.assert_array_equal(mesh.polygons(3), light["tris"])
    assert len(mesh.triangles()) == len(ict_faces(light["quads"], light["tris"]))
    assert mesh.texcoords.shape == (28911, 2) and (mesh.polygon_texcoords >= 0).all()


def test_expression_obj_minus_neutral_is_the_delta(
    ict_dir: Path, light: dict[str, np.ndarray]
) -> None:
    names = list(light["expression_names"])
    for name in ("jawOpen", "eyeBlink_L"):
        delta = read_obj_vertices(ict_dir / f"{name}.obj") - light["neutral"]
        np.testing.assert_allclose(delta, light["expression_deltas"][names.index(name)], atol=1e-5)
    assert np.abs(light["expression_deltas"][names.index("jawOpen")]).max() > 1.0  # cm


def test_obj_route_end_to_end(obj_model: FaceModel, npz_model: FaceModel) -> None:
    model = obj_model
    assert model.metadata["source_route"] == "FaceXModel OBJ folder"
    assert model.expression_names == list(ICT_EXPRESSION_NAMES)
    np.testing.assert_array_equal(model.mean, npz_model.mean)
    np.testing.assert_array_equal(model.faces, npz_model.faces)
    np.testing.assert_array_equal(model.landmarks, npz_model.landmarks)
    for region, idx in npz_model.regions.items():
        np.testing.assert_array_equal(model.regions[region], idx)
    for k, name in enumerate(ICT_EXPRESSION_NAMES):
        if f"{name}.obj" in REAL_OBJS:  # real upstream shape, at its upstream position
            np.testing.assert_allclose(
                model.expression_basis[k], npz_model.expression_basis[k], atol=1e-7
            )
        else:
            np.testing.assert_allclose(
                model.expression_basis[k],
                np.broadcast_to(FAKE_SHIFT_CM * 0.01, (26719, 3)),
                atol=1e-6,
            )
    assert model.identity_dims == 1 and model.metadata["identity_names"] == ["identity000"]
    np.testing.assert_allclose(model.identity_basis[0], npz_model.identity_basis[0], atol=1e-7)


# ---------------------------------------------------------------------- errors
def test_partial_obj_folder_without_npz_lists_what_is_missing(
    tmp_path: Path, ict_dir: Path
) -> None:
    for name in (*REAL_OBJS, "vertex_indices.json"):
        (tmp_path / name).symlink_to(ict_dir / name)
    with pytest.raises(
        InputError,
        match=r"missing 51: identity###.obj \(at least one\), browDown_L.obj, browDown_R",
    ) as info:
        load_ict(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "identity###.obj" in message
    assert "ict_facekit_light.npz" in message and "\n" not in message


def test_empty_folder_and_facexmodel_subfolder(tmp_path: Path, ict_dir: Path) -> None:
    with pytest.raises(InputError, match=r"missing 55: generic_neutral_mesh.obj, identity###.obj"):
        load_ict(tmp_path)
    sub = tmp_path / "FaceXModel"
    sub.mkdir()
    (sub / "generic_neutral_mesh.obj").symlink_to(ict_dir / "generic_neutral_mesh.obj")
    with pytest.raises(InputError, match=r"FaceXModel: not an ICT FaceKit folder.*missing 54"):
        load_ict(tmp_path)  # the cloned repository's root is accepted: it looks inside


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere: folder not found"):
        load_face_model(f"ict:{tmp_path / 'nowhere'}")


def test_obj_with_wrong_vertex_count(
    tmp_path: Path, ict_dir: Path, light: dict[str, np.ndarray]
) -> None:
    folder = _facex_folder(tmp_path / "FaceXModel", ict_dir, light)
    (folder / "jawOpen.obj").unlink()
    _write_v_obj(folder / "jawOpen.obj", light["neutral"][:1000])
    with pytest.raises(InputError, match=r"jawOpen.obj: 1000 vertices, expected 26719"):
        load_ict(folder)
    (folder / "generic_neutral_mesh.obj").unlink()
    _write_v_obj(folder / "generic_neutral_mesh.obj", light["neutral"][:-1])
    with pytest.raises(InputError, match=r"generic_neutral_mesh.obj: 26718 vertices, expected"):
        load_ict(folder)


def test_malformed_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "ict_facekit_light.npz", neutral=np.zeros((10, 3)))
    with pytest.raises(InputError, match=r"ict_facekit_light.npz: missing arrays quads, tris"):
        load_ict(tmp_path)
    arrays = {
        "neutral": np.zeros((10, 3)),
        "quads": np.zeros((1, 4), int),
        "tris": np.zeros((1, 3), int),
        "expression_names": np.array(["jawOpen"]),
        "expression_deltas": np.zeros((1, 10, 3)),
        "identity_deltas": np.zeros((1, 10, 3)),
        "landmark_vertices": np.zeros(68, int),
    }
    np.savez(tmp_path / "ict_facekit_light.npz", **arrays)
    with pytest.raises(InputError, match=r"10 vertices, expected the ICT FaceKit topology"):
        load_ict(tmp_path)


# ---------------------------------------------------------------------- fetch
def _online() -> bool:
    try:
        socket.getaddrinfo("github.com", 443)
    except OSError:
        return False
    return True


def test_fetch_offline_fails_clearly(tmp_path: Path) -> None:
    if _online():
        pytest.skip("github.com resolves: the real fetch would download ICT FaceKit")
    with pytest.raises(InputError, match=r"could not download ICT FaceKit .*offline"):
        api.fetch("ict", tmp_path / "ict")


def test_fetch_failure_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_run(cmd: list[str], **kwargs: object) -> None:
        raise subprocess.CalledProcessError(128, cmd, stderr="fatal: unable to access\n")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(InputError, match=r"offline\?\): fatal: unable to access. Download it"):
        api.fetch("ict", tmp_path / "ict")
    with pytest.raises(InputError, match=r"only 'ict' can be downloaded"):
        api.fetch("bfm", tmp_path / "bfm")

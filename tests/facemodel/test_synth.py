import json

import numpy as np
import pytest
import torch

from mmface4d import cli
from mmface4d.cache import CACHE_ENV
from mmface4d.errors import InputError
from mmface4d.facemodel import ARKIT_52, FaceModel, load_face_model
from mmface4d.facemodel import synth as synth_module
from mmface4d.facemodel.synth import PARTS, SynthFaceConfig, build_synth_mesh
from mmface4d.geometry import vertex_normals


@pytest.fixture(scope="module")
def synth() -> FaceModel:
    return load_face_model("synth")


def posed(model: FaceModel, **weights: float) -> np.ndarray:
    return model.vertices(expression=torch.as_tensor(model.expression_vector(weights))).numpy()


def test_deterministic_and_sized(synth):
    again = load_face_model("synth")
    np.testing.assert_array_equal(again.mean, synth.mean)
    np.testing.assert_array_equal(again.expression_basis, synth.expression_basis)
    assert 5000 <= synth.num_vertices <= 15000
    assert synth.identity_dims >= 20 and synth.expression_names == list(ARKIT_52)
    for target in (5000, 15000):
        n = load_face_model(f"synth:vertices={target}").num_vertices
        assert 0.75 * target < n < 1.25 * target


def test_proportions_in_metres(synth):
    lm = synth.mean[synth.landmarks]
    ipd = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
    mouth = np.linalg.norm(lm[54] - lm[48])
    nasion_chin = lm[27, 1] - lm[8, 1]
    assert 0.058 < ipd < 0.070
    assert 0.045 < mouth < 0.055
    assert 0.10 < nasion_chin < 0.13
    assert lm[30, 2] == pytest.approx(synth.mean[synth.regions["face"], 2].max(), abs=1e-6)


def test_mirror_symmetric_neutral(synth):
    from scipy.spatial import cKDTree

    v = synth.mean
    mirrored = v * np.array([-1, 1, 1])
    dist, _ = cKDTree(v).query(mirrored)
    assert dist.max() < 1e-5


def test_outward_winding(synth):
    n = vertex_normals(torch.as_tensor(synth.mean), torch.as_tensor(synth.faces)).numpy()
    assert n[synth.landmarks[30], 2] > 0.9  # nose tip faces forward
    assert n[synth.landmarks[8], 1] < 0  # under the chin faces down
    face = synth.regions["face"]
    assert (n[face, 2] > 0).mean() > 0.95


def test_landmark_order(synth):
    lm = synth.mean[synth.landmarks]
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]  # jaw from the subject's right to left
    assert lm[8, 1] == lm[:, 1].min()  # chin lowest
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # eye corners left to right in x
    assert lm[37, 1] > lm[41, 1] and lm[43, 1] > lm[47, 1]  # upper lids above lower lids
    assert lm[51, 1] > lm[62, 1] >= lm[66, 1] > lm[57, 1]  # outer/inner lips top to bottom
    assert np.linalg.norm(lm[62] - lm[66]) < 1e-6  # the mouth is closed at rest


def test_mouth_really_opens(synth):
    lm = synth.landmarks
    v = posed(synth, jawOpen=1.0)
    gap = v[lm[62], 1] - v[lm[66], 1]
    assert 0.025 < gap < 0.045  # up to 4-5 cm at the widest
    assert np.linalg.norm(v[lm[62]] - synth.mean[lm[62]]) < 1e-3  # the upper lip stays
    speech = posed(synth, jawOpen=0.3)
    assert 0.005 < speech[lm[62], 1] - speech[lm[66], 1] < 0.015
    # lower teeth and tongue ride with the jaw; upper teeth do not
    for part, moves in (("teeth_lower", True), ("tongue", True), ("teeth_upper", False)):
        idx = np.nonzero(build_synth_mesh().part == PARTS.index(part))[0]
        moved = np.linalg.norm(v[idx] - synth.mean[idx], axis=1).mean()
        assert (moved > 0.01) == moves, part


def test_lids_close(synth):
    lm = synth.landmarks
    rest = np.linalg.norm(synth.mean[lm[43]] - synth.mean[lm[47]])
    assert rest > 0.006
    v = posed(synth, eyeBlinkLeft=1.0)
    assert np.linalg.norm(v[lm[43]] - v[lm[47]]) < 0.0015
    assert np.linalg.norm(v[lm[44]] - v[lm[46]]) < 0.0015
    np.testing.assert_allclose(v[lm[36:42]], synth.mean[lm[36:42]], atol=1e-6)  # right eye open


def test_expressions_are_plausible(synth):
    lm = synth.landmarks
    mean = synth.mean
    smile = posed(synth, mouthSmileLeft=1.0, mouthSmileRight=1.0)
    assert smile[lm[48], 1] > mean[lm[48], 1] + 0.004 and smile[lm[54], 1] > mean[lm[54], 1] + 0.004
    for name in ("mouthFunnel", "mouthPucker"):
        v = posed(synth, **{name: 1.0})
        assert v[lm[51], 2] > mean[lm[51], 2] + 0.004  # lips protrude
        assert v[lm[54], 0] - v[lm[48], 0] < mean[lm[54], 0] - mean[lm[48], 0] - 0.005  # narrow
    funnel = posed(synth, mouthFunnel=1.0)
    assert funnel[lm[62], 1] - funnel[lm[66], 1] > 0.004  # a rounded opening
    brows = posed(synth, browInnerUp=1.0)
    assert brows[lm[21], 1] > mean[lm[21], 1] + 0.004


def test_every_expression_is_local_and_mirrored(synth):
    for k, name in enumerate(synth.expression_names):
        delta = np.linalg.norm(synth.expression_basis[k], axis=1)
        assert delta.max() > 0.0015, name
        assert delta.max() < 0.05, name
        if name.endswith("Left"):
            left = synth.expression_basis[k]
            right = synth.expression_basis[synth.expression_index(name[:-4] + "Right")]
            # the right shape, mirrored, is the left one: compare total x/y/z motion
            np.testing.assert_allclose(
                np.abs(left).sum(0), np.abs(right).sum(0), rtol=0.02, err_msg=name
            )


def test_identity_components_smooth_and_distinct(synth):
    basis = synth.identity_basis.reshape(synth.identity_dims, -1)
    norms = np.linalg.norm(synth.identity_basis, axis=2).max(1)
    assert (norms > 5e-4).all() and (norms < 0.015).all()
    corr = np.corrcoef(basis)
    np.fill_diagonal(corr, 0)
    assert np.abs(corr).max() < 0.95  # no two components do the same thing
    names = synth.metadata["identity_names"]
    assert len(names) == synth.identity_dims and len(set(names)) == len(names)


def test_albedo(synth):
    a = synth.albedo_mean
    assert a.min() >= 0 and a.max() <= 1
    vermilion = synth.landmarks[[50, 51, 52, 56, 57, 58]]
    cheeks = synth.regions["cheeks"]
    redness = a[:, 0] / np.maximum(a[:, 1], 1e-3)
    assert np.median(redness[vermilion]) > np.median(redness[cheeks]) + 0.3
    assert synth.albedo_dims >= 4


@pytest.mark.parametrize("spec", ["synth:vertices=100", "synth:colour=3", "synth:grid_columns=x"])
def test_bad_synth_options(spec):
    with pytest.raises(InputError, match="synth"):
        load_face_model(spec)


def test_config_from_options():
    assert SynthFaceConfig.from_options({"grid_columns": "60"}).grid_columns == 60


def test_cli_info_and_export(tmp_path, capsys):
    assert cli.main(["facemodel", "info", "synth"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in (
        "vertices",
        "faces",
        "identity_dims",
        "expression_dims",
        "expression_names",
        "landmarks",
        "regions",
        "unit",
    ):
        assert key in info
    assert info["unit"] == "m" and info["landmarks"] == 68
    assert set(info["regions"]) >= {"lip", "upper_face", "face", "eyes"}
    out = tmp_path / "synth.npz"
    assert (
        cli.main(
            ["facemodel", "export", "synth", "-o", str(out), "--regions-dir", str(tmp_path / "r")]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["facemodel", "info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["vertices"] == info["vertices"]
    assert (tmp_path / "r" / "lip.txt").is_file()


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["facemodel", "info", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err
    show = ["facemodel", "show", "synth", "-o", str(tmp_path / "x.png")]
    assert cli.main([*show, "--expression", "notAShape=1"]) == 2
    assert "notAShape" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert cli.main([*show, "--expression", "jawOpen=nan"]) == 2


def test_mouth_close_cancels_jaw_open(synth):
    lm = synth.landmarks
    for jaw in (0.2, 0.5):
        v = posed(synth, jawOpen=jaw, mouthClose=jaw)
        assert np.linalg.norm(v[lm[62]] - v[lm[66]]) < 1e-4
        teeth = np.nonzero(build_synth_mesh().part == PARTS.index("teeth_lower"))[0]
        assert np.linalg.norm(v[teeth] - synth.mean[teeth], axis=1).mean() > 0.01 * jaw


def _assert_same_model(one: FaceModel, other: FaceModel) -> None:
    """Every field equal, arrays in value, dtype and shape."""
    for name in ("mean", "faces", "identity_basis", "expression_basis", "albedo_mean"):
        a, b = getattr(one, name), getattr(other, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(one.albedo_basis, other.albedo_basis)
    assert np.array_equal(one.landmarks, other.landmarks)
    assert one.regions.keys() == other.regions.keys()
    for key in one.regions:
        assert one.regions[key].dtype == other.regions[key].dtype
        assert np.array_equal(one.regions[key], other.regions[key]), key
    assert (one.name, one.unit, one.expression_names, one.metadata) == (
        other.name,
        other.unit,
        other.expression_names,
        other.metadata,
    )


def test_the_cached_synth_face_is_the_built_one(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    built = synth_module.build_synth_face()
    first = load_face_model("synth")  # builds and keeps it
    (entry,) = (tmp_path / "facemodel").glob("synth-*.npz")
    again = load_face_model("synth")  # reads it
    _assert_same_model(first, built)
    _assert_same_model(again, built)
    assert list((tmp_path / "facemodel").glob("synth-*.npz")) == [entry]


def test_a_damaged_or_outdated_cache_entry_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    load_face_model("synth:vertices=5000")
    (entry,) = (tmp_path / "facemodel").glob("synth-*.npz")
    entry.write_bytes(b"not a face model")
    _assert_same_model(
        load_face_model("synth:vertices=5000"), load_face_model("synth:vertices=5000")
    )
    assert FaceModel.load(entry).num_vertices > 0  # written again
    other_code = entry.with_name(entry.name.rsplit("-", 1)[0] + "-0123456789abcdef.npz")
    entry.rename(other_code)  # an entry of the same options written by other code
    load_face_model("synth:vertices=5000")
    assert [p.name for p in (tmp_path / "facemodel").glob("synth-*.npz")] == [entry.name]


def test_the_face_model_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert synth_module.cache_folder() is None
    load_face_model("synth:vertices=5000")
    assert not any(tmp_path.rglob("*.npz"))

"""Tests of the BFM09 / Deep3DFaceRecon loader on fabricated models.

The morphable model itself is licence-gated, so every test fabricates ``01_MorphableModel.mat``
and ``Exp_Pca.bin`` with the published structure (field names, shapes, 1-based indices) and few
components. Two fabrications: a tiny synthetic face (runs everywhere) and one with the real
auxiliary files of ``shared/data/bfm_aux`` whose front vertices carry a real reconstructed face
from the MMFace4D sample (skips without shared data). The conversion is checked against a slow,
obviously-correct per-vertex version written here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from mmface4d.cli import main as cli_main
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.bfm import RAW_FILES, load_bfm
from mmface4d.facemodel.regions import REQUIRED_REGIONS
from mmface4d.geometry import vertex_normals

K_ID, K_EXP, K_TEX = 5, 4, 3
AUX_FILES = ("BFM_exp_idx.mat", "BFM_front_idx.mat", "facemodel_info.mat", "std_exp.txt")


# ---------------------------------------------------------------------- fabrication helpers
def _write_exp_pca(path: Path, mean: np.ndarray, components: np.ndarray) -> None:
    """Guo et al. layout: int32 count n, the mean (3M float32), n components (3M float32 each)."""
    with path.open("wb") as fh:
        np.array([len(components)], dtype="<i4").tofile(fh)
        mean.astype("<f4").tofile(fh)
        components.astype("<f4").tofile(fh)


def _fabricate_raw(
    directory: Path,
    n_bfm: int,
    trim: np.ndarray,
    idx: np.ndarray,
    front_m: np.ndarray,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write 01_MorphableModel.mat and Exp_Pca.bin; the front vertices sit at ``front_m``.

    ``trim`` and ``idx`` are the 1-based index files' contents. Returns the fabricated arrays.
    """
    rng = np.random.default_rng(seed)
    m = len(trim)
    front = [int(trim[int(i) - 1]) - 1 for i in idx]  # BFM vertex of each front vertex
    shape_mu = rng.normal(size=(n_bfm, 3)) * 1e5  # micrometres
    shape_mu[front] = front_m * 1e6
    f = {
        "shapeMU": shape_mu.reshape(-1, 1).astype(np.float32),
        "shapePC": rng.normal(size=(3 * n_bfm, K_ID)).astype(np.float32),
        "shapeEV": rng.uniform(1e4, 1e5, size=(K_ID, 1)),
        "texMU": rng.uniform(0, 255, size=(3 * n_bfm, 1)).astype(np.float32),
        "texPC": rng.normal(size=(3 * n_bfm, K_TEX)).astype(np.float32),
        "texEV": rng.uniform(1, 30, size=(K_TEX, 1)),
    }
    scipy.io.savemat(directory / "01_MorphableModel.mat", f)
    f["exp_components"] = rng.normal(size=(K_EXP, 3 * m)).astype(np.float32)
    _write_exp_pca(directory / "Exp_Pca.bin", rng.normal(size=3 * m), f["exp_components"])
    return f


def _tiny_face(side: int = 41) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic face: (V, 3) sphere-cap grid in metres, (F, 3) CCW triangles, 68 landmarks."""
    g = np.linspace(-1.0, 1.0, side)
    x, y = np.meshgrid(g, g)
    z = np.sqrt(4.0 - x**2 - y**2)
    verts = np.stack([x, y, z], axis=-1).reshape(-1, 3) * 0.08
    a = (np.arange(side - 1)[:, None] * side + np.arange(side - 1)[None]).reshape(-1)
    faces = np.concatenate(
        [np.stack([a, a + 1, a + side + 1], 1), np.stack([a, a + side + 1, a + side], 1)]
    )

    def ellipse(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
        t = np.linspace(np.pi, -np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)

    theta = np.linspace(-np.pi / 2, np.pi / 2, 17)
    template = np.concatenate(
        [
            np.stack([0.75 * np.sin(theta), 0.2 - 1.1 * np.cos(theta)], 1),  # jaw 0-16
            np.stack([np.linspace(-0.6, -0.15, 5), np.full(5, 0.45)], 1),  # brows 17-26
            np.stack([np.linspace(0.15, 0.6, 5), np.full(5, 0.45)], 1),
            np.stack([np.zeros(4), np.linspace(0.3, -0.05, 4)], 1),  # bridge 27-30
            np.stack([np.linspace(-0.15, 0.15, 5), np.full(5, -0.2)], 1),  # nostrils 31-35
            ellipse(-0.35, 0.25, 0.15, 0.06, 6),  # eyes 36-47
            ellipse(0.35, 0.25, 0.15, 0.06, 6),
            ellipse(0.0, -0.5, 0.3, 0.12, 12),  # lips 48-67
            ellipse(0.0, -0.5, 0.2, 0.05, 8),
        ]
    )
    landmarks = np.linalg.norm(verts[None, :, :2] / 0.08 - template[:, None], axis=-1).argmin(1)
    return verts, faces, landmarks


@pytest.fixture
def tiny_raw(tmp_path: Path) -> tuple[Path, dict]:
    """A complete raw directory for the tiny face (no shared data needed)."""
    rng = np.random.default_rng(1)
    verts, faces, landmarks = _tiny_face()
    v = len(verts)
    m, n_bfm = v + 37, v + 90
    trim = np.sort(rng.choice(n_bfm, m, replace=False)) + 1
    idx = rng.choice(m, v, replace=False) + 1  # deliberately not sorted
    scipy.io.savemat(
        tmp_path / "BFM_exp_idx.mat", {"trimIndex": trim.reshape(-1, 1).astype(np.uint16)}
    )
    scipy.io.savemat(tmp_path / "BFM_front_idx.mat", {"idx": idx.reshape(-1, 1).astype(np.float32)})
    info = {
        "tri": (faces + 1).astype(np.float32),
        "keypoints": (landmarks + 1)[None].astype(np.float32),
    }
    scipy.io.savemat(tmp_path / "facemodel_info.mat", info)
    std = rng.uniform(1e4, 5e5, size=K_EXP + 3)
    np.savetxt(tmp_path / "std_exp.txt", std[None])
    fab = _fabricate_raw(tmp_path, n_bfm, trim, idx, verts)
    fab.update(trim=trim, idx=idx, std=std, verts=verts, faces=faces, landmarks=landmarks)
    return tmp_path, fab


def _reference(fab: dict, j: int) -> dict[str, np.ndarray]:
    """Front vertex j by the published recipe, one vertex at a time, in metres and [0, 1]."""
    b = int(fab["trim"][int(fab["idx"][j]) - 1]) - 1  # BFM09 vertex
    e = int(fab["idx"][j]) - 1  # expression-basis vertex
    rows = [3 * b, 3 * b + 1, 3 * b + 2]
    return {
        "mean_dm": fab["shapeMU"][rows, 0].astype(np.float64) / 1e5,
        "identity": np.array(
            [
                [fab["shapePC"][r, k] * fab["shapeEV"][k, 0] / 1e5 * 0.1 for r in rows]
                for k in range(K_ID)
            ]
        ),
        "expression": np.array(
            [
                [fab["exp_components"][k, 3 * e + c] * fab["std"][k] / 1e5 * 0.1 for c in range(3)]
                for k in range(K_EXP)
            ]
        ),
        "albedo_mean": fab["texMU"][rows, 0] / 255.0,
        "albedo": np.array(
            [[fab["texPC"][r, k] * fab["texEV"][k, 0] / 255.0 for r in rows] for k in range(K_TEX)]
        ),
    }


def _check_against_reference(model, fab: dict, vertices: np.ndarray) -> None:
    refs = [_reference(fab, int(j)) for j in vertices]
    all_refs = [_reference(fab, j)["mean_dm"] for j in range(len(fab["idx"]))]
    centroid_dm = np.mean(all_refs, axis=0)
    for j, ref in zip(vertices, refs, strict=True):
        np.testing.assert_allclose(model.mean[j], (ref["mean_dm"] - centroid_dm) * 0.1, atol=1e-7)
        np.testing.assert_allclose(model.identity_basis[:, j], ref["identity"], rtol=1e-5)
        np.testing.assert_allclose(model.expression_basis[:, j], ref["expression"], rtol=1e-5)
        np.testing.assert_allclose(model.albedo_mean[j], ref["albedo_mean"], rtol=1e-6)
        np.testing.assert_allclose(model.albedo_basis[:, j], ref["albedo"], rtol=1e-5)


# ---------------------------------------------------------------------- tiny synthetic model
def test_tiny_raw_conversion_matches_reference(tiny_raw):
    directory, fab = tiny_raw
    model = load_bfm(directory)
    v = len(fab["verts"])
    assert (model.num_vertices, model.identity_dims, model.expression_dims, model.albedo_dims) == (
        v,
        K_ID,
        K_EXP,
        K_TEX,
    )
    _check_against_reference(model, fab, np.arange(v))
    # The front vertices carry the tiny face: the mean is that face, re-centred, in metres.
    expected = fab["verts"] - fab["verts"].mean(0)
    np.testing.assert_allclose(model.mean, expected, atol=1e-6)
    assert np.abs(model.mean.mean(0)).max() < 1e-6


def test_tiny_raw_model_conventions(tiny_raw):
    directory, fab = tiny_raw
    model = load_bfm(directory)
    np.testing.assert_array_equal(model.faces, fab["faces"])
    np.testing.assert_array_equal(model.landmarks, fab["landmarks"])
    assert model.expression_names == ["exp_00", "exp_01", "exp_02", "exp_03"]
    assert model.unit == "m" and model.name == "bfm"
    np.testing.assert_array_equal(model.regions["face"], np.arange(model.num_vertices))
    for region in REQUIRED_REGIONS:
        assert len(model.regions[region]) > 0
    meta = model.metadata
    assert meta["source"] == "bfm09" and meta["scale_to_metres"] == 0.1 and meta["input"] == "raw"
    assert meta["faces_flipped"] is False
    assert meta["source_unit"] == "dm (Deep3DFaceRecon)" and "z: out of the face" in meta["axes"]
    normals = vertex_normals(torch.from_numpy(model.mean), torch.from_numpy(model.faces))
    assert normals[model.landmarks[30], 2] > 0.9


def test_reversed_winding_is_flipped(tiny_raw):
    directory, fab = tiny_raw
    reversed_tri = (fab["faces"][:, ::-1] + 1).astype(np.float32)
    info = {"tri": reversed_tri, "keypoints": (fab["landmarks"] + 1)[None].astype(np.float32)}
    scipy.io.savemat(directory / "facemodel_info.mat", info)
    model = load_bfm(directory)
    assert model.metadata["faces_flipped"] is True
    normals = vertex_normals(torch.from_numpy(model.mean), torch.from_numpy(model.faces))
    assert normals[model.landmarks[30], 2] > 0.9
    assert {tuple(sorted(f)) for f in model.faces} == {tuple(sorted(f)) for f in fab["faces"]}


def test_component_counts_are_clipped(tiny_raw):
    directory, _ = tiny_raw
    model = load_bfm(directory, identity_dims=2, expression_dims=64, albedo_dims=1)
    assert (model.identity_dims, model.expression_dims, model.albedo_dims) == (2, K_EXP, 1)
    full = load_bfm(directory)
    np.testing.assert_array_equal(model.identity_basis, full.identity_basis[:2])
    with pytest.raises(InputError, match="identity_dims must be a positive integer"):
        load_bfm(directory, identity_dims=0)


def test_spec_string_loads_tiny_model(tiny_raw):
    directory, fab = tiny_raw
    info = load_face_model(f"bfm:{directory}").info()
    assert info["vertices"] == len(fab["verts"]) and info["faces"] == len(fab["faces"])


def _write_converted(directory: Path, mean_dm, id_basis, exp_basis, meantex, tex_basis, tri, kp):
    """Deep3DFaceRecon's BFM_model_front.mat layout; bases given as (K, V, 3)."""
    flat = lambda b: b.transpose(1, 2, 0).reshape(-1, b.shape[0])  # noqa: E731 - (3V, K)
    scipy.io.savemat(
        directory / "BFM_model_front.mat",
        {
            "meanshape": mean_dm.reshape(1, -1).astype(np.float32),
            "idBase": flat(id_basis),
            "exBase": flat(exp_basis),
            "meantex": meantex.reshape(1, -1).astype(np.float32),
            "texBase": flat(tex_basis),
            "tri": (tri + 1).astype(np.float32),
            "keypoints": (kp + 1)[None].astype(np.float32),
            "point_buf": np.ones((len(mean_dm), 8), np.float32),
        },
    )


def test_converted_file_is_read_and_preferred(tiny_raw):
    directory, fab = tiny_raw
    rng = np.random.default_rng(7)
    v = len(fab["verts"])
    mean_dm = fab["verts"] * 10 + [0.1, -0.2, 3.0]
    bases = [rng.normal(size=(k, v, 3)).astype(np.float32) for k in (6, 7, 2)]
    meantex = rng.uniform(0, 255, size=(v, 3))
    _write_converted(
        directory, mean_dm, *bases[:2], meantex, bases[2], fab["faces"], fab["landmarks"]
    )
    model = load_bfm(directory)  # the raw files are there too: the converted file wins
    assert model.metadata["input"] == "BFM_model_front.mat"
    assert (model.identity_dims, model.expression_dims, model.albedo_dims) == (6, 7, 2)
    np.testing.assert_allclose(model.mean, (mean_dm - mean_dm.mean(0)) * 0.1, atol=1e-6)
    np.testing.assert_allclose(model.identity_basis, bases[0] * 0.1, rtol=1e-6)
    np.testing.assert_allclose(model.expression_basis, bases[1] * 0.1, rtol=1e-6)
    np.testing.assert_allclose(model.albedo_mean, meantex / 255.0, rtol=1e-5)
    np.testing.assert_allclose(model.albedo_basis, bases[2] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(model.faces, fab["faces"])
    np.testing.assert_array_equal(model.landmarks, fab["landmarks"])


def test_converted_file_wrong_shape(tiny_raw):
    directory, fab = tiny_raw
    v = len(fab["verts"])
    zeros = np.zeros((4, v, 3), np.float32)
    _write_converted(
        directory,
        fab["verts"],
        zeros,
        zeros,
        np.zeros((v, 3)),
        zeros,
        fab["faces"],
        fab["landmarks"],
    )
    data = scipy.io.loadmat(directory / "BFM_model_front.mat")
    data = {k: v for k, v in data.items() if not k.startswith("__")}
    data["idBase"] = data["idBase"][:-3]
    scipy.io.savemat(directory / "BFM_model_front.mat", data)
    with pytest.raises(InputError, match=rf"BFM_model_front.mat: field idBase .*\({3 * v}, K\)"):
        load_bfm(directory)


# ---------------------------------------------------------------------- error paths
def test_missing_directory_and_files(tmp_path):
    with pytest.raises(InputError, match="directory not found"):
        load_bfm(tmp_path / "nope")
    with pytest.raises(InputError) as err:
        load_bfm(tmp_path)
    assert f"bfm:{tmp_path}: missing {', '.join(RAW_FILES)};" in str(err.value)
    assert "BFM_model_front.mat" in str(err.value)


def test_partial_directory_lists_exactly_the_missing_files(tiny_raw):
    directory, _ = tiny_raw
    (directory / "Exp_Pca.bin").unlink()
    (directory / "std_exp.txt").unlink()
    with pytest.raises(InputError, match=r": missing Exp_Pca.bin, std_exp.txt; expected 01_Morph"):
        load_bfm(directory)


@pytest.mark.parametrize(
    ("file", "field", "value", "message"),
    [
        ("01_MorphableModel.mat", "shapePC", np.zeros((9, K_ID)), r"field shapePC must have shape"),
        ("01_MorphableModel.mat", "shapeEV", np.zeros((K_ID + 1, 1)), r"field shapeEV must have"),
        ("01_MorphableModel.mat", "texMU", None, r"missing field texMU"),
        ("facemodel_info.mat", "keypoints", np.ones((1, 67)), r"field keypoints must have shape"),
        (
            "facemodel_info.mat",
            "tri",
            np.array([[1, 2, 3], [1, 2, 99999]]),
            r"field tri holds indices 1..99999, exp",
        ),
        ("BFM_front_idx.mat", "idx", np.array([[0.0], [1.0]]), r"field idx holds indices 0..1"),
    ],
)
def test_bad_mat_fields(tiny_raw, file, field, value, message):
    directory, _ = tiny_raw
    data = {k: v for k, v in scipy.io.loadmat(directory / file).items() if not k.startswith("__")}
    if value is None:
        del data[field]
    else:
        data[field] = value
    scipy.io.savemat(directory / file, data)
    with pytest.raises(InputError, match=rf"{file}: {message}"):
        load_bfm(directory)


def test_truncated_exp_pca(tiny_raw):
    directory, fab = tiny_raw
    path = directory / "Exp_Pca.bin"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        InputError, match=rf"Exp_Pca.bin: expected {size} bytes .* found {size - 100}"
    ):
        load_bfm(directory)


def test_too_few_expression_stds(tiny_raw):
    directory, _ = tiny_raw
    np.savetxt(directory / "std_exp.txt", np.ones(K_EXP - 1))
    with pytest.raises(InputError, match=rf"std_exp.txt: expected {K_EXP} values"):
        load_bfm(directory)


def test_not_a_mat_file(tiny_raw):
    directory, _ = tiny_raw
    (directory / "BFM_exp_idx.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(InputError, match="BFM_exp_idx.mat: not a readable MATLAB"):
        load_bfm(directory)


# ---------------------------------------------------------------------- real auxiliary files
def _sample_frame_bfm_axes(sample: Path) -> np.ndarray:
    """Frame 0 of the MMFace4D sample (35,709 vertices, camera frame, metres) in BFM axes."""
    import av

    axes = []
    for k in range(3):
        with av.open(str(sample / f"reconstruct_filt_{k}.nut")) as container:
            q = next(container.decode(video=0)).to_ndarray().reshape(-1).astype(np.uint16)
        lo, hi = q[0:2].view(np.float32)[0], q[2:4].view(np.float32)[0]
        axes.append(q[4 : 4 + 35709] / 65536.0 * (hi - lo) + lo)
    x, y, z = axes
    return np.stack([x, -y, -z], axis=1)  # camera (x right, y down, z forward) -> y up, z out


@pytest.fixture(scope="module")
def real_raw(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("bfm_real")
    for name in AUX_FILES:
        shutil.copyfile(shared_data / "bfm_aux" / name, directory / name)
    trim = scipy.io.loadmat(directory / "BFM_exp_idx.mat")["trimIndex"].reshape(-1)
    idx = scipy.io.loadmat(directory / "BFM_front_idx.mat")["idx"].reshape(-1)
    info = scipy.io.loadmat(directory / "facemodel_info.mat")
    face = _sample_frame_bfm_axes(shared_data / "mmface4d_sample")
    fab = _fabricate_raw(directory, 53490, trim, idx, face)
    fab.update(
        trim=trim,
        idx=idx,
        std=np.loadtxt(directory / "std_exp.txt"),
        face=face,
        tri=info["tri"],
        keypoints=info["keypoints"],
    )
    return directory, fab


@pytest.fixture(scope="module")
def real_model(real_raw):
    return load_bfm(real_raw[0])


def test_real_aux_counts_and_topology(real_raw, real_model):
    _, fab = real_raw
    assert (real_model.num_vertices, len(real_model.faces), len(real_model.landmarks)) == (
        35709,
        70789,
        68,
    )
    # The published triangles already face outwards: loaded unchanged, 0-based.
    assert real_model.metadata["faces_flipped"] is False
    np.testing.assert_array_equal(real_model.faces, fab["tri"].astype(np.int64) - 1)
    np.testing.assert_array_equal(real_model.landmarks, fab["keypoints"].reshape(-1) - 1)
    normals = vertex_normals(torch.from_numpy(real_model.mean), torch.from_numpy(real_model.faces))
    assert normals[real_model.landmarks[30], 2] > 0.5
    # x points to the subject's left: iBUG 17 (index 16, left jaw end) has larger x than iBUG 1.
    lm = real_model.mean[real_model.landmarks]
    assert lm[16, 0] - lm[0, 0] > 0.1


def test_real_aux_conversion_matches_reference(real_raw, real_model):
    _, fab = real_raw
    picks = np.random.default_rng(3).choice(35709, 25, replace=False)
    _check_against_reference(real_model, fab, picks)
    # trimIndex[idx] puts the sample's real face on the front vertices: the mean is that face.
    face = fab["face"]
    np.testing.assert_allclose(real_model.mean, face - face.mean(0), atol=2e-6)
    width = np.ptp(real_model.mean[:, 0])
    assert 0.12 < width < 0.25  # a face's width in metres


def test_real_aux_regions_and_spec(real_raw, real_model):
    directory, _ = real_raw
    assert len(real_model.regions["face"]) == 35709
    lip = real_model.regions["lip"]
    assert 200 < len(lip) < 5000
    mouth = real_model.mean[real_model.landmarks[48:68]]
    assert np.linalg.norm(real_model.mean[lip].mean(0) - mouth.mean(0)) < 0.01
    assert load_face_model(f"bfm:{directory}").info()["vertices"] == 35709


def test_cli_info_prints_bfm_summary(real_raw, capsys):
    directory, _ = real_raw
    assert cli_main(["facemodel", "info", f"bfm:{directory}"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vertices"] == 35709 and info["faces"] == 70789
    assert info["expression_dims"] == K_EXP and info["metadata"]["scale_to_metres"] == 0.1

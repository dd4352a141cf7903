import numpy as np
import pygltflib
import pytest

from mmface4d.errors import InputError
from mmface4d.export import gltf as gltf_module
from mmface4d.export.arkit import arkit_basis
from mmface4d.export.gltf import (
    PCA_ENERGY,
    GltfValidatorUnavailable,
    morph_basis,
    read_glb_animation,
    validate_glb,
    write_glb,
)
from mmface4d.facemodel.sources import load_face_model


def _grid(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A gently curved (n*n, 3) grid, metres, with (2 (n-1)^2, 3) counter-clockwise faces."""
    u, v = np.meshgrid(np.linspace(-0.05, 0.05, n), np.linspace(-0.05, 0.05, n))
    template = np.stack([u, v, 0.02 - 4 * (u**2 + v**2)], axis=-1).reshape(-1, 3)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return template.astype(np.float32), faces.astype(np.int64)


def _low_rank_clip(T: int, V: int, rank: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    modes = rng.normal(0, 1e-3, (rank, V, 3))
    codes = rng.normal(0, 1, (T, rank)) * np.linspace(3, 1, rank)
    clip = np.einsum("tk,kvc->tvc", codes, modes) + rng.normal(0, noise, (T, V, 3))
    return clip.astype(np.float32)


@pytest.fixture(scope="module")
def synth():
    return load_face_model("synth")


def test_pca_basis_matches_reference_svd():
    offsets = _low_rank_clip(T=80, V=144, rank=6, noise=2e-6)
    basis = morph_basis(offsets)
    assert basis.kind == "pca" and basis.names[0] == "pca_00"
    # slow, obviously-correct reference: full SVD, fewest components reaching 99.9 %
    flat = offsets.reshape(80, -1).astype(np.float64)
    _, singular, vt = np.linalg.svd(flat, full_matrices=False)
    energy = np.cumsum(singular**2) / np.sum(singular**2)
    expected = int(np.argmax(energy >= PCA_ENERGY) + 1)
    assert basis.num_targets == expected and 6 <= expected <= 64
    truncated = (flat @ vt[:expected].T) @ vt[:expected]
    reference_rms = np.sqrt(np.square(flat - truncated).reshape(80, -1, 3).sum(2).mean())
    assert basis.rms_error == pytest.approx(reference_rms, rel=1e-3)
    # weights are the least-squares coefficients: unit RMS, orthogonal targets
    np.testing.assert_allclose(np.sqrt(np.square(basis.weights).mean(0)), 1.0, rtol=1e-4)
    gram = np.einsum("kvc,jvc->kj", basis.targets, basis.targets)
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-6 * gram.max()


def test_pca_caps_targets_at_max():
    offsets = np.random.default_rng(1).normal(0, 1e-3, (120, 50, 3)).astype(np.float32)
    basis = morph_basis(offsets)
    assert basis.num_targets == 64 and basis.weights.shape == (120, 64)
    assert morph_basis(offsets, max_targets=8).num_targets == 8
    assert basis.rms_error > 0 and basis.max_error >= basis.rms_error


def test_pca_randomised_path_agrees(monkeypatch):
    offsets = _low_rank_clip(T=300, V=100, rank=10, noise=1e-7, seed=4)
    exact = morph_basis(offsets)
    monkeypatch.setattr(gltf_module, "_EXACT_PCA_MAX_FRAMES", 50)
    randomised = morph_basis(offsets)
    assert randomised.num_targets == exact.num_targets
    assert randomised.rms_error == pytest.approx(exact.rms_error, rel=1e-2)


def test_still_face_gives_one_zero_target():
    basis = morph_basis(np.zeros((5, 10, 3), np.float32))
    assert basis.num_targets == 1 and not basis.targets.any() and basis.rms_error == 0


def test_round_trip_and_reconstruction(tmp_path):
    template, faces = _grid()
    offsets = _low_rank_clip(T=45, V=len(template), rank=5, noise=1e-6)
    basis = morph_basis(offsets)
    colors = np.random.default_rng(2).uniform(0, 1, (len(template), 3))
    path = write_glb(tmp_path / "clip.glb", template, faces, basis, fps=30, vertex_colors=colors)
    assert path == tmp_path / "clip.glb"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.glb"]  # no temporary left behind
    read = read_glb_animation(path)
    np.testing.assert_array_equal(read.template, template)
    np.testing.assert_array_equal(read.faces, faces)
    assert read.faces.dtype == np.int64
    np.testing.assert_array_equal(read.targets, basis.targets)
    np.testing.assert_array_equal(read.weights, basis.weights)
    np.testing.assert_allclose(read.times, np.arange(45) / 30, atol=1e-6)
    # template + weights @ targets rebuilds the input within the reported error
    rebuilt = read.template + np.einsum("tk,kvc->tvc", read.weights, read.targets)
    error = np.linalg.norm(rebuilt - (template + offsets), axis=-1)
    assert np.sqrt(np.square(error).mean()) == pytest.approx(basis.rms_error, rel=1e-2, abs=1e-8)
    assert error.max() <= basis.max_error * 1.01 + 1e-8


def test_file_structure(tmp_path):
    template, faces = _grid(6)
    offsets = _low_rank_clip(T=10, V=len(template), rank=3, noise=0)
    path = write_glb(tmp_path / "s.glb", template, faces, morph_basis(offsets), fps=25, name="me")
    gltf = pygltflib.GLTF2.load_binary(path)
    mesh = gltf.meshes[0]
    primitive = mesh.primitives[0]
    K = len(primitive.targets)
    assert mesh.extras["targetNames"] == [f"pca_{k:02d}" for k in range(K)]
    assert mesh.weights == [0.0] * K and mesh.name == "me"
    assert gltf.accessors[primitive.indices].componentType == pygltflib.UNSIGNED_INT
    position = gltf.accessors[primitive.attributes.POSITION]
    np.testing.assert_allclose(position.min, template.min(0))
    np.testing.assert_allclose(position.max, template.max(0))
    for target in primitive.targets:
        accessor = gltf.accessors[target["POSITION"]]
        assert accessor.type == "VEC3" and accessor.componentType == pygltflib.FLOAT
        assert accessor.min is not None and accessor.max is not None
    normals = gltf_module._read_accessor(gltf, gltf.binary_blob(), primitive.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    assert normals[:, 2].mean() > 0.9  # the bowl faces +z, towards the viewer
    (animation,) = gltf.animations
    assert animation.channels[0].target.path == "weights"
    sampler = animation.samplers[0]
    assert sampler.interpolation == "LINEAR"
    times = gltf.accessors[sampler.input]
    assert times.min == [0.0] and times.max[0] == pytest.approx(9 / 25)
    assert gltf.accessors[sampler.output].count == 10 * K
    assert all(view.byteOffset % 4 == 0 for view in gltf.bufferViews)


def test_arkit_basis_glb_passes_khronos_validator(tmp_path, synth):
    basis_arkit = arkit_basis(synth)
    rng = np.random.default_rng(3)
    true = np.clip(rng.normal(0.2, 0.4, (20, 52)), 0, 1) * (rng.random((20, 52)) < 0.3)
    offsets = np.einsum("tk,kvc->tvc", true, basis_arkit.targets).astype(np.float32)
    basis = morph_basis(offsets, basis_arkit.targets, basis_arkit.names)
    assert basis.kind == "arkit" and basis.names == basis_arkit.names
    assert basis.weights.min() >= 0 and basis.weights.max() <= 1
    assert basis.rms_error < 1e-6
    path = write_glb(tmp_path / "face.glb", synth.mean, synth.faces, basis, 30, synth.albedo_mean)
    try:
        report = validate_glb(path)
    except GltfValidatorUnavailable as exc:
        pytest.skip(str(exc))
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"][:5]
    # the check can fail: a wrong POSITION max is an error for the validator
    gltf = pygltflib.GLTF2.load_binary(path)
    gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION].max = [9.0, 9.0, 9.0]
    gltf.save_binary(str(tmp_path / "broken.glb"))
    assert validate_glb(tmp_path / "broken.glb")["issues"]["numErrors"] > 0


def test_validator_missing_is_a_clear_error(tmp_path):
    template, faces = _grid(4)
    basis = morph_basis(np.zeros((2, len(template), 3), np.float32))
    path = write_glb(tmp_path / "a.glb", template, faces, basis, 30)
    with pytest.raises(GltfValidatorUnavailable, match="npm install --prefix"):
        validate_glb(path, validator_prefix=tmp_path / "empty")


def test_write_glb_rejects_bad_input(tmp_path):
    template, faces = _grid(4)
    basis = morph_basis(np.zeros((2, len(template), 3), np.float32))
    with pytest.raises(InputError, match="faces index"):
        write_glb(tmp_path / "a.glb", template, faces + 1, basis, 30)
    with pytest.raises(InputError, match=r"basis.targets must be \(K, 9, 3\)"):
        write_glb(tmp_path / "a.glb", template[:9], faces[:2], basis, 30)
    with pytest.raises(InputError, match="fps"):
        write_glb(tmp_path / "a.glb", template, faces, basis, 0)
    with pytest.raises(InputError, match="vertex_colors"):
        write_glb(tmp_path / "a.glb", template, faces, basis, 30, np.full((16, 3), 2.0))
    with pytest.raises(InputError, match="names"):
        morph_basis(np.zeros((2, 16, 3)), np.zeros((3, 16, 3)), ["a"])
    assert not (tmp_path / "a.glb").exists()

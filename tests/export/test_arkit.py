import dataclasses

import numpy as np
import pytest
import scipy.optimize

from mmface4d.errors import InputError
from mmface4d.export.arkit import (
    LIVE_LINK_FACE_ROTATIONS,
    LIVE_LINK_FACE_SHAPES,
    arkit_basis,
    read_arkit_csv,
    solve_arkit_weights,
    write_arkit_csv,
)
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.sources import load_face_model


@pytest.fixture(scope="module")
def synth():
    return load_face_model("synth")


def _reference_solve(offsets, basis, vertex_weights=None):
    """scipy's bounded least squares on the full (3V, K) system, frame by frame."""
    K, V, _ = basis.shape
    scale = np.ones(3 * V) if vertex_weights is None else np.sqrt(np.repeat(vertex_weights, 3))
    matrix = basis.reshape(K, -1).T.astype(np.float64) * scale[:, None]
    return np.stack(
        [
            scipy.optimize.lsq_linear(
                matrix, o.reshape(-1) * scale, bounds=(0, 1), method="bvls", tol=1e-12
            ).x
            for o in offsets.astype(np.float64)
        ]
    )


def test_arkit_basis_synth(synth):
    basis = arkit_basis(synth)
    assert basis.names == list(ARKIT_52)
    assert basis.targets.shape == (52, synth.num_vertices, 3)
    assert basis.targets.dtype == np.float32
    k = synth.expression_names.index("jawOpen")
    np.testing.assert_array_equal(
        basis.targets[basis.names.index("jawOpen")], synth.expression_basis[k]
    )


def test_arkit_basis_sums_split_halves(synth):
    names = list(synth.expression_names)
    left, right = names.index("browInnerUp"), names.index("cheekPuff")
    names[left], names[right] = "browInnerUp_L", "browInnerUp_R"
    names[names.index("eyeBlinkLeft")] = "eyeBlink_L"
    model = dataclasses.replace(synth, expression_names=names)
    basis = arkit_basis(model)
    assert "cheekPuff" not in basis.names and len(basis.names) == 51
    assert basis.names[0] == "eyeBlinkLeft"
    brow = basis.names.index("browInnerUp")
    assert basis.components[brow] == (left, right)
    np.testing.assert_allclose(
        basis.targets[brow], synth.expression_basis[left] + synth.expression_basis[right]
    )


def test_arkit_basis_none_without_arkit_names(synth):
    names = [f"exp_{k:02d}" for k in range(synth.expression_dims)]
    names[:5] = ARKIT_52[:5]
    model = dataclasses.replace(synth, expression_names=names)
    assert arkit_basis(model) is None
    assert arkit_basis(model, min_targets=5).names == list(ARKIT_52[:5])


def test_solve_matches_scipy_full_system():
    rng = np.random.default_rng(0)
    K, V, T = 24, 300, 40
    basis = rng.normal(0, 0.01, (K, V, 3)).astype(np.float32)
    true = rng.uniform(-0.4, 1.4, (T, K))  # many weights end up at a bound
    offsets = (np.einsum("tk,kvc->tvc", true, basis) + rng.normal(0, 1e-3, (T, V, 3))).astype(
        np.float32
    )
    vertex_weights = rng.uniform(0.2, 3.0, V)
    for weights_v in (None, vertex_weights):
        solve = solve_arkit_weights(offsets, basis, weights_v)
        assert solve.weights.shape == (T, K) and solve.weights.dtype == np.float32
        assert solve.weights.min() >= 0 and solve.weights.max() <= 1
        reference = _reference_solve(offsets[:6], basis, weights_v)
        np.testing.assert_allclose(solve.weights[:6], reference, atol=1e-4)
        at_bounds = (solve.weights == 0) | (solve.weights == 1)
        assert at_bounds.mean() > 0.2  # the test exercises the constraints


def test_solve_recovers_in_bounds_weights_and_residual():
    rng = np.random.default_rng(1)
    K, V, T = 10, 200, 30
    basis = rng.normal(0, 0.01, (K, V, 3)).astype(np.float32)
    true = rng.uniform(0.05, 0.95, (T, K))
    offsets = np.einsum("tk,kvc->tvc", true, basis).astype(np.float32)
    solve = solve_arkit_weights(offsets, basis)
    np.testing.assert_allclose(solve.weights, true, atol=1e-4)
    assert solve.residual_rms.max() < 1e-6
    # an offset the basis cannot express: residual equals its direct RMS
    extra = rng.normal(0, 1e-3, (T, V, 3)).astype(np.float32)
    solve = solve_arkit_weights(offsets + extra, basis)
    direct = offsets + extra - np.einsum("tk,kvc->tvc", solve.weights, basis)
    expected = np.sqrt(np.square(direct).sum(axis=2).mean(axis=1))
    np.testing.assert_allclose(solve.residual_rms, expected, rtol=1e-4)
    assert expected.min() > 1e-4


def test_solve_rank_deficient_synth_basis(synth):
    """The synth ARKit basis has linearly dependent shapes: compare objective values."""
    basis = arkit_basis(synth).targets
    rng = np.random.default_rng(2)
    T = 150
    true = np.clip(rng.normal(0.2, 0.4, (T, 52)), 0, 1) * (rng.random((T, 52)) < 0.3)
    noise = rng.normal(0, 2e-4, (T, synth.num_vertices, 3))
    offsets = (np.einsum("tk,kvc->tvc", true, basis) + noise).astype(np.float32)
    solve = solve_arkit_weights(offsets, basis)
    assert solve.fallback_frames < T * 0.1
    reference = _reference_solve(offsets[:3], basis)
    for t in range(3):
        ours = offsets[t] - np.einsum("k,kvc->vc", solve.weights[t], basis)
        ref = offsets[t] - np.einsum("k,kvc->vc", reference[t], basis)
        assert np.sqrt(np.square(ours).sum()) <= np.sqrt(np.square(ref).sum()) * (1 + 1e-5)


def test_solve_rejects_bad_input():
    basis = np.zeros((3, 10, 3), np.float32)
    with pytest.raises(InputError, match=r"offsets must be \(T, V, 3\)"):
        solve_arkit_weights(np.zeros((10, 3)), basis)
    with pytest.raises(InputError, match="basis must be"):
        solve_arkit_weights(np.zeros((2, 11, 3)), basis)
    with pytest.raises(InputError, match="vertex_weights"):
        solve_arkit_weights(np.zeros((2, 10, 3)), basis, np.ones(9))
    bad = np.zeros((2, 10, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        solve_arkit_weights(bad, basis)


def test_csv_layout_is_live_link_face(tmp_path):
    weights = np.zeros((40, 3))
    weights[:, 0] = np.linspace(0, 1, 40)
    weights[:, 1] = 0.25
    path = write_arkit_csv(
        tmp_path / "take.csv", weights, ["jawLeft", "eyeBlink_L", "tongueOut"], 30
    )
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"]
    assert header[2:54] == list(LIVE_LINK_FACE_SHAPES)
    assert header[54:] == list(LIVE_LINK_FACE_ROTATIONS) and len(header) == 63
    assert header.index("JawRight") < header.index("JawLeft")  # the app's order, not Apple's
    assert len(lines) == 41
    first, row31 = lines[1].split(","), lines[31].split(",")
    assert first[0] == "00:00:00:00.000" and first[1] == "61"
    assert row31[0] == "00:00:01:00.000"
    assert lines[30].split(",")[0] == "00:00:00:29.000"
    assert float(row31[header.index("JawLeft")]) == pytest.approx(30 / 39, abs=1e-6)
    assert float(row31[header.index("EyeBlinkLeft")]) == pytest.approx(0.25)
    assert all(float(v) == 0 for v in row31[54:])


def test_csv_timecode_at_29_97(tmp_path):
    path = write_arkit_csv(tmp_path / "ntsc.csv", np.zeros((1200, 1)), ["jawOpen"], 30000 / 1001)
    codes = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    assert codes[1] == "00:00:00:01.001" and codes[11] == "00:00:00:11.011"
    assert codes[1000] == "00:00:33:11.000"  # 1000 frames = 1001 timecode frames
    assert read_arkit_csv(path).fps == pytest.approx(30000 / 1001, rel=1e-6)


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    weights = rng.uniform(0, 1, (75, 52)).astype(np.float32)
    path = write_arkit_csv(tmp_path / "a.csv", weights, list(ARKIT_52), 25)
    back, names, fps = read_arkit_csv(path)
    assert names == list(ARKIT_52) and fps == 25
    np.testing.assert_allclose(back, weights, atol=1e-7)
    # a subset in another spelling reads back in ARKit-52 order with zeros elsewhere
    path = write_arkit_csv(tmp_path / "b.csv", weights[:, :2], ["mouthSmile_R", "jawOpen"], 60)
    short = read_arkit_csv(path, fps=60)
    smile = short.weights[:, ARKIT_52.index("mouthSmileRight")]
    np.testing.assert_allclose(smile, weights[:, 0], atol=1e-7)
    np.testing.assert_allclose(
        short.weights[:, ARKIT_52.index("jawOpen")], weights[:, 1], atol=1e-7
    )
    assert np.count_nonzero(short.weights.any(axis=0)) == 2


def test_csv_reads_app_file_without_rotations(tmp_path):
    path = tmp_path / "app.csv"
    rows = ["Timecode,BlendShapeCount,JawOpen,EyeBlinkLeft"]
    rows += [f"14:03:{52 + (28 + i) // 60}:{(28 + i) % 60:02d}.000,2,0.5,0.1" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    read = read_arkit_csv(path)
    assert read.fps == 60 and read.weights.shape == (40, 52)
    assert read.weights[:, ARKIT_52.index("jawOpen")].tolist() == [0.5] * 40


def test_csv_errors(tmp_path):
    with pytest.raises(InputError, match="not an ARKit"):
        write_arkit_csv(tmp_path / "x.csv", np.zeros((2, 1)), ["exp_00"], 30)
    with pytest.raises(InputError, match="repeats"):
        write_arkit_csv(tmp_path / "x.csv", np.zeros((2, 2)), ["jawOpen", "jawOpen"], 30)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        write_arkit_csv(tmp_path / "x.csv", np.full((2, 1), 1.5), ["jawOpen"], 30)
    with pytest.raises(InputError, match="fps"):
        write_arkit_csv(tmp_path / "x.csv", np.zeros((2, 1)), ["jawOpen"], 0)
    assert not (tmp_path / "x.csv").exists()
    short = write_arkit_csv(tmp_path / "short.csv", np.zeros((5, 1)), ["jawOpen"], 30)
    with pytest.raises(InputError, match="pass fps"):
        read_arkit_csv(short)
    assert read_arkit_csv(short, fps=30).weights.shape == (5, 52)
    (tmp_path / "bad.csv").write_text("frame,time_s,jawOpen\n0,0.0,0.5\n")
    with pytest.raises(InputError, match="Timecode"):
        read_arkit_csv(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="no such"):
        read_arkit_csv(tmp_path / "missing.csv")

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmface4d.errors import InputError
from mmface4d.geometry.align import fit_similarity, stabilise


def test_recovers_known_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    R = Rotation.from_euler("xyz", [10, -25, 40], degrees=True).as_matrix()
    y = 1.7 * x @ R.T + [0.1, -2.0, 3.0]
    sim = fit_similarity(x, y, with_scale=True)
    np.testing.assert_allclose(sim.rotation, R, atol=1e-10)
    assert sim.scale == pytest.approx(1.7)
    np.testing.assert_allclose(sim.apply(x), y, atol=1e-10)
    rigid = fit_similarity(x, x @ R.T)
    assert rigid.scale == 1.0 and np.linalg.det(rigid.rotation) == pytest.approx(1.0)


def test_reflection_is_not_returned():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3))
    mirrored = x * [-1, 1, 1]
    assert np.linalg.det(fit_similarity(x, mirrored).rotation) == pytest.approx(1.0)


def test_stabilise_removes_head_motion():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(30, 3))
    frames = []
    for t in range(5):
        R = Rotation.from_euler("y", 5 * t, degrees=True).as_matrix()
        pts = base.copy()
        pts[:5, 1] += 0.1 * t  # the "mouth" moves by itself
        frames.append(pts @ R.T + [0, 0, 0.01 * t])
    out = stabilise(np.stack(frames), anchors=np.arange(5, 30))
    np.testing.assert_allclose(out[:, 5:], np.broadcast_to(base[5:], (5, 25, 3)), atol=1e-9)
    np.testing.assert_allclose(out[4, :5, 1] - base[:5, 1], 0.4, atol=1e-9)


def test_bad_input():
    with pytest.raises(InputError):
        fit_similarity(np.zeros((2, 3)), np.zeros((2, 3)))

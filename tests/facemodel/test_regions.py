import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.regions import (
    REQUIRED_REGIONS,
    face_frame,
    landmark_regions,
    save_region_indices,
)


@pytest.fixture(scope="module")
def synth():
    return load_face_model("synth")


def test_required_regions_present_and_inside_face(synth):
    for name in REQUIRED_REGIONS:
        assert len(synth.regions[name]) > 0
    face = set(synth.regions["face"].tolist())
    for name in ("lip", "eyes", "upper_face", "nose", "chin", "cheeks", "forehead"):
        assert set(synth.regions[name].tolist()) <= face, name


def test_regions_follow_the_landmarks(synth):
    v = synth.mean
    lm = v[synth.landmarks]
    lip = v[synth.regions["lip"]]
    # every lip vertex lies within the mouth's box (corners 48/54, nose base 33, chin 8)
    assert lip[:, 0].min() > lm[48, 0] - 0.01 and lip[:, 0].max() < lm[54, 0] + 0.01
    assert lip[:, 1].max() < lm[33, 1] and lip[:, 1].min() > lm[8, 1]
    # upper face is above the mid nose bridge; eyes are near the eye landmarks
    _, up, _, _ = face_frame(lm)
    assert (v[synth.regions["upper_face"]] @ up).min() > lm[29] @ up
    eyes = v[synth.regions["eyes"]]
    centres = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    assert np.linalg.norm(eyes[:, None, :2] - centres[None, :, :2], axis=-1).min(1).max() < 0.03


def test_regions_do_not_depend_on_pose_or_scale(synth):
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    moved = 2.0 * synth.mean @ rot.T + np.array([0.1, -0.3, 0.7])
    again = landmark_regions(moved, synth.landmarks, synth.regions["face"])
    for name, idx in again.items():
        np.testing.assert_array_equal(idx, synth.regions[name])


def test_face_frame_axes(synth):
    right, up, forward, d = face_frame(synth.mean[synth.landmarks])
    np.testing.assert_allclose([right @ up, right @ forward, up @ forward], 0, atol=1e-9)
    assert right[0] > 0.99 and up[1] > 0.99 and forward[2] > 0.99
    assert 0.055 < d < 0.075  # inter-pupillary distance of an adult


def test_bad_landmarks():
    with pytest.raises(InputError, match=r"\(68, 3\)"):
        face_frame(np.zeros((10, 3)))
    with pytest.raises(InputError, match="eye centres"):
        face_frame(np.zeros((68, 3)))


def test_save_region_indices(synth, tmp_path):
    paths = save_region_indices(synth.regions, tmp_path)
    assert len(paths) == len(synth.regions)
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "lip.txt", dtype=int), synth.regions["lip"])


def test_the_inside_test_agrees_with_matplotlib_away_from_the_edges():
    # the regions' point-in-polygon test is numpy (matplotlib took half a second to import on
    # every model load); it must select what matplotlib's contains_points selected
    from matplotlib.path import Path as PolygonPath

    from mmface4d.facemodel.regions import _inside_polygon, _polygon_distance

    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(3, 14))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        polygon = np.stack([np.cos(angles), np.sin(angles)], 1) * rng.uniform(0.3, 1.5, (n, 1))
        if trial % 3 == 0:
            polygon = np.concatenate([polygon, polygon[:1]])  # closed, like the nose outline
        points = rng.uniform(-1.6, 1.6, (2000, 2))
        away = _polygon_distance(points, polygon) > 1e-9
        ours = _inside_polygon(points, polygon)
        theirs = PolygonPath(polygon).contains_points(points)
        assert np.array_equal(ours[away], theirs[away])

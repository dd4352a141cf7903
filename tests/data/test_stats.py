import numpy as np
import pytest

from mmface4d.data.plots import plot_demographics, plot_lip_velocity, plot_region_graph
from mmface4d.data.stats import (
    compute_stats,
    region_correlation,
    region_velocity,
    silhouette_score,
)
from mmface4d.errors import InputError


def test_region_velocity_known_value():
    t = np.arange(5)[:, None, None]
    verts = np.zeros((5, 4, 3))
    verts[..., 0] = 0.001 * t[..., 0]  # every vertex moves 1 mm per frame along x
    verts[:, :2, 2] = 0.002 * (t[:, :, 0] % 2)  # two vertices jitter 2 mm in z
    v = region_velocity(verts, np.array([0, 1]))
    np.testing.assert_allclose(v, [0.001, 0.0, 0.002])
    np.testing.assert_allclose(region_velocity(verts, np.array([2, 3])), [0.001, 0, 0])
    with pytest.raises(InputError, match="T >= 2"):
        region_velocity(verts[:1], np.array([0]))


def slow_silhouette(points, labels):
    out = []
    for i, p in enumerate(points):
        same = [
            np.linalg.norm(p - q) for j, q in enumerate(points) if labels[j] == labels[i] and j != i
        ]
        if not same:
            out.append(0.0)
            continue
        a = np.mean(same)
        b = min(
            np.mean([np.linalg.norm(p - q) for j, q in enumerate(points) if labels[j] == other])
            for other in set(labels)
            if other != labels[i]
        )
        out.append((b - a) / max(a, b))
    return float(np.mean(out))


def test_silhouette_against_reference_and_extremes():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(12, 3))
    labels = ["a"] * 4 + ["b"] * 5 + ["c"] * 3
    assert silhouette_score(pts, labels) == pytest.approx(slow_silhouette(pts, labels))
    tight = np.concatenate([np.zeros((5, 3)), np.ones((5, 3))]) + 1e-3 * rng.normal(size=(10, 3))
    assert silhouette_score(tight, ["a"] * 5 + ["b"] * 5) > 0.95
    with pytest.raises(InputError, match="2 clusters"):
        silhouette_score(pts, ["a"] * 12)


def test_region_correlation_detects_coupled_regions():
    rng = np.random.default_rng(1)
    T = 200
    drive = np.cumsum(rng.normal(size=T))
    verts = np.zeros((T, 6, 3))
    verts[:, 0:2, 1] = drive[:, None] * 1e-3  # region a
    verts[:, 2:4, 1] = drive[:, None] * 2e-3  # region b moves with a
    verts[:, 4:6, 0] = np.cumsum(rng.normal(size=T))[:, None] * 1e-3  # region c independent
    names, corr = region_correlation([verts], {"a": [0, 1], "b": [2, 3], "c": [4, 5]})
    assert names == ["a", "b", "c"]
    assert corr[0, 1] > 0.99 and abs(corr[0, 2]) < 0.3


def test_compute_stats_and_figures(tmp_path):
    rng = np.random.default_rng(2)
    seqs, subjects = [], []
    for s, amp in (("S1", 1e-3), ("S2", 3e-3)):
        for _ in range(3):
            seqs.append(np.cumsum(rng.normal(scale=amp, size=(30, 8, 3)), axis=0))
            subjects.append(s)
    regions = {"lip": np.arange(4), "chin": np.arange(4, 8), "face": np.arange(8)}
    meta = [{"age": 30 if s == "S1" else 50, "gender": "female"} for s in subjects]
    stats = compute_stats(seqs, subjects, [f"q{i}" for i in range(6)], regions, 30.0, meta)
    assert stats.lip_silhouette > 0.5  # amplitudes separate the two subjects
    summary = stats.to_json()
    assert summary["sequences"] == 6 and summary["subjects"] == 2
    lip = summary["velocity"]["lip"]
    assert lip["v_m_per_second"]["x"] == pytest.approx(30 * lip["v_m_per_frame"]["x"])
    assert stats.correlation_regions == ["lip", "chin"]  # whole-face regions are not local
    for fn, args in (
        (plot_lip_velocity, ()),
        (plot_demographics, ()),
        (
            plot_region_graph,
            ({"lip": np.zeros(2), "chin": np.ones(2) * 0.01}, rng.normal(size=(20, 2)) * 0.05),
        ),
    ):
        out = fn(stats, *args, tmp_path / f"{fn.__name__}.png")
        assert out.stat().st_size > 10_000


def test_variance_explained():
    from mmface4d.data.stats import variance_explained

    pts = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert variance_explained(pts, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert variance_explained(pts, ["a", "b", "a", "b"]) == pytest.approx(0.0)

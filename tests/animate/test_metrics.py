import numpy as np
import pytest

from mmface4d.animate.metrics import evaluate_sequences, sequence_metrics
from mmface4d.errors import InputError

REGIONS = {"lip": np.array([0, 1]), "upper_face": np.array([2, 3]), "face": np.arange(5)}


def slow_reference(pred, gt, regions, template):
    """Loops over frames and vertices: the definitions, written plainly."""
    T, V, _ = pred.shape
    out = {}
    for name, region, reduce in (("lip_max", "lip", max), ("upper_max", "upper_face", max),
                                 ("face_max", "face", max)):  # fmt: skip
        total = 0.0
        for t in range(T):
            total += reduce(
                float(np.sqrt(((pred[t, v] - gt[t, v]) ** 2).sum())) for v in regions[region]
            )
        out[name] = total / T
    total = 0.0
    for t in range(T):
        d = [float(np.sqrt(((pred[t, v] - gt[t, v]) ** 2).sum())) for v in regions["lip"]]
        total += sum(d) / len(d)
    out["lip_mean"] = total / T
    out["lve"] = sum(max(float(((pred[t, v] - gt[t, v]) ** 2).sum()) for v in regions["lip"])
                     for t in range(T)) / T  # fmt: skip
    diffs = []
    for v in regions["upper_face"]:
        g = [float(((gt[t, v] - template[v]) ** 2).sum()) for t in range(T)]
        p = [float(((pred[t, v] - template[v]) ** 2).sum()) for t in range(T)]
        diffs.append(np.std(g) - np.std(p))
    out["fdd"] = float(np.mean(diffs))
    return out


def test_matches_slow_reference():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(7, 5, 3))
    pred = gt + 0.1 * rng.normal(size=gt.shape)
    template = gt.mean(0)
    fast = sequence_metrics(pred, gt, REGIONS, template)
    slow = slow_reference(pred, gt, REGIONS, template)
    for name, value in slow.items():
        assert fast[name] == pytest.approx(value, rel=1e-10), name


def test_known_values():
    gt = np.zeros((4, 5, 3))
    pred = gt.copy()
    pred[..., 0] = 0.002  # every vertex 2 mm off
    m = sequence_metrics(pred, gt, REGIONS, np.zeros((5, 3)))
    assert m["lip_max"] == pytest.approx(0.002) and m["lip_mean"] == pytest.approx(0.002)
    assert m["lve"] == pytest.approx(0.002**2)
    assert m["fdd"] == pytest.approx(0.0)  # a static offset has no dynamics
    pred[2, 1, 0] = 0.005
    m = sequence_metrics(pred, gt, REGIONS)
    assert m["lip_max"] == pytest.approx((3 * 0.002 + 0.005) / 4)
    assert m["lip_mean"] == pytest.approx((3 * 0.002 + 0.0035) / 4)
    assert np.isnan(m["fdd"])


def test_fdd_sign_static_prediction():
    t = np.linspace(0, 1, 20)
    gt = np.zeros((20, 5, 3))
    gt[:, 2, 1] = 0.003 * np.sin(6 * t)  # the brow moves
    m = sequence_metrics(np.zeros_like(gt), gt, REGIONS, np.zeros((5, 3)))
    assert m["fdd"] > 0  # the prediction moves less than the ground truth


def test_report_means_and_errors():
    gt = np.zeros((3, 5, 3))
    a = gt + 0.001
    b = gt + 0.003
    report = evaluate_sequences([("a", a, gt, None), ("b", b, gt, None)], REGIONS)
    assert report.overall["face_max"] == pytest.approx(np.sqrt(3) * 0.002)
    with pytest.raises(InputError, match="twice"):
        evaluate_sequences([("a", a, gt, None), ("a", b, gt, None)], REGIONS)
    with pytest.raises(InputError, match="must both be"):
        sequence_metrics(a[:2], gt, REGIONS)
    with pytest.raises(InputError, match="missing"):
        sequence_metrics(a, gt, {"lip": [0]})

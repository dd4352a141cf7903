import numpy as np
import pytest

from mmface4d.animate.metrics import evaluate_sequences, sequence_metrics
from mmface4d.errors import InputError

REGIONS = {"lip": np.array([0, 1]), "upper_face": np.array([2, 3]), "face": np.arange(5)}


def slow_reference(pred, gt, regions, template):
    """Loops over frames and vertices: the definitions, written plainly."""
    T, V, _ = pred.shape
    out = {}
    for name, region, reduce in (
        ("lip_max", "lip", max),
        ("upper_max", "upper_face", max),
        ("face_max", "face", max),
    ):
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
    worst = [
        max(float(((pred[t, v] - gt[t, v]) ** 2).sum()) for v in regions["lip"]) for t in range(T)
    ]
    out["lve"] = sum(worst) / T
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


def _talking(gaps_mm: np.ndarray) -> np.ndarray:
    """(T, 68, 3) faces whose inner-lip pairs are ``gaps_mm`` apart (landmark i = vertex i)."""
    frames = np.zeros((len(gaps_mm), 68, 3))
    for upper in (61, 62, 63):
        frames[:, upper, 1] = gaps_mm * 1e-3
    return frames


def test_lip_sync_closure_counts_bilabials_where_the_truth_closes() -> None:
    from mmface4d.animate.metrics import lip_sync_metrics, phone_frames

    truth_gap = np.array([5, 5, 0.2, 0.2, 5, 5, 5, 5, 5, 0.3, 6, 6], dtype=float)
    never = np.full(12, 4.0)  # a mouth that never closes
    late = np.array([5, 5, 5, 5, 0.5, 5, 5, 5, 5, 5, 0.5, 6], dtype=float)  # 1 frame late
    events = phone_frames(np.array([[2 / 30, 4 / 30], [9 / 30, 10 / 30], [6 / 30, 7 / 30]]), 30, 12)
    np.testing.assert_array_equal(events, [[2, 3], [9, 9], [6, 6]])
    landmarks = np.arange(68)
    truth = _talking(truth_gap)
    no = lip_sync_metrics(_talking(never), landmarks, events, 30, truth)
    assert no["closure"] == 0.0 and no["bilabials"] == 2  # the third: truth open there
    yes = lip_sync_metrics(_talking(late), landmarks, events, 30, truth)
    assert yes["closure"] == 1.0  # within +-1 frame
    assert no["false_closure"] == 0.0
    assert yes["false_closure"] == pytest.approx(2 / 9)  # closed on 2 of the 9 open frames
    same = lip_sync_metrics(truth, landmarks, events, 30, truth)
    assert same["gap_error"] == 0 and same["gap_corr"] == pytest.approx(1.0)
    assert same["range_ratio"] == pytest.approx(1.0) and same["jitter_ratio"] == pytest.approx(1)
    assert no["range_ratio"] == 0.0 and np.isnan(no["gap_corr"])
    real = lip_sync_metrics(_talking(never), landmarks, events, 30)  # no truth: all bilabials
    assert real["bilabials"] == 3 and set(real) == {"closure", "bilabials", "closed_bilabials"}


def test_evaluate_sequences_pools_closure_over_bilabials() -> None:
    from mmface4d.animate.metrics import LipSyncInputs

    truth = _talking(np.array([5, 0.1, 5, 5, 0.1, 5, 5, 5.0]))
    pred = _talking(np.array([5, 0.1, 5, 5, 4, 5, 5, 5.0]))
    regions = {"lip": np.arange(60, 68), "upper_face": np.arange(10), "face": np.arange(68)}
    events = {"a": np.array([[1, 1], [4, 4]]), "b": np.array([[1, 1]])}
    report = evaluate_sequences(
        [("a", pred, truth, None), ("b", truth, truth, None)],
        regions,
        LipSyncInputs(np.arange(68), events, 30.0),
    )
    assert report.overall["closure"] == pytest.approx(2 / 3)  # not the mean of 1/2 and 1
    assert report.overall["bilabials"] == 3


def test_the_lip_line_stays_open_when_only_the_landmark_pairs_are_pulled_shut() -> None:
    from mmface4d.animate.metrics import inner_lip_gap, lip_line_gap, lip_line_pairs
    from mmface4d.export.arkit import arkit_basis
    from mmface4d.facemodel.sources import load_face_model

    face = load_face_model("synth:vertices=5000")
    pairs = lip_line_pairs(face.mean, face.faces, face.landmarks)
    assert len(pairs) >= 5  # the upper inner lip from 61 to 63, not just the landmarks
    basis = arkit_basis(face)
    jaw = basis.targets[basis.names.index("jawOpen")]
    opened = face.mean + 0.5 * jaw
    spiked = opened.copy()  # the three upper landmarks dragged onto the lower ones
    up, low = face.landmarks[[61, 62, 63]], face.landmarks[[67, 66, 65]]
    spiked[up] = opened[low]
    frames = np.stack([face.mean, opened, spiked])
    landmark_gap = inner_lip_gap(frames, face.landmarks)
    line_gap = lip_line_gap(frames, pairs, face.mean)
    assert line_gap[0] == pytest.approx(0.0, abs=1e-9)  # the neutral face is closed
    assert landmark_gap[1] > 3e-3 and line_gap[1] > 3e-3  # an open mouth, both agree
    assert landmark_gap[2] < 1e-6  # the landmark pairs say "shut" ...
    assert line_gap[2] > 3e-3  # ... the lip line does not

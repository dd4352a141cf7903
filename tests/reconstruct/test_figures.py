"""Fig. 3-style per-stage figure (mmface4d.reconstruct.figures) and the ground-truth errors it
and REC_fit.json report (mmface4d.reconstruct.evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmface4d.errors import InputError
from mmface4d.reconstruct.evaluation import REGIONS, vertex_distances_mm, vertex_errors
from mmface4d.reconstruct.figures import ERROR_RANGE_MM, _crop_box, _error_colours, stage_figure


def _read(path):
    with Image.open(path) as image:
        return image.format, image.size, np.asarray(image.convert("RGB"))


def test_stage_figure_with_the_truth_row(
    tracked, face_model, tracking_config, studio_capture, tmp_path
):
    recording, result = tracked
    truth = studio_capture.truth.vertices[result.first_frame]
    path = stage_figure(
        recording, face_model, result, tracking_config, tmp_path / "a" / "f.png", truth
    )
    assert path == tmp_path / "a" / "f.png" and path.is_file()
    kind, (width, height), pixels = _read(path)
    assert kind == "PNG" and 800 < width < 2500 and 400 < height < 1500
    assert pixels.std() > 20
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.png"]  # no temporary file
    # without the truth: one row fewer
    plain = stage_figure(recording, face_model, result, tracking_config, tmp_path / "g.png")
    _, (plain_width, plain_height), _ = _read(plain)
    assert plain_width == width and plain_height < height


def test_error_colours_span_the_inferno_range():
    colours = _error_colours(np.array([0.0, ERROR_RANGE_MM / 2, ERROR_RANGE_MM, 100.0]))
    assert colours.shape == (4, 3) and ((colours >= 0) & (colours <= 1)).all()
    np.testing.assert_allclose(colours[2], colours[3])  # clipped at the range
    assert colours[0].sum() < colours[1].sum() < colours[2].sum()  # dark to bright


def test_crop_box():
    mask = np.zeros((40, 60), dtype=bool)
    assert _crop_box(mask) == (slice(None), slice(None))
    mask[10:20, 30:40] = True
    rows, cols = _crop_box(mask, margin=0.25)
    # 10 pixels grown by int(2.5) + 2 = 4 on each side
    assert (rows.start, rows.stop, cols.start, cols.stop) == (6, 24, 26, 44)
    mask[:] = True
    rows, cols = _crop_box(mask)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 40, 0, 60)


# ---------------------------------------------------------------------- evaluation
def test_vertex_distances_known_value_and_shapes():
    truth = np.zeros((2, 3, 3))
    moved = truth.copy()
    moved[1, 2] = [0.003, 0.004, 0.0]  # 5 mm
    distances = vertex_distances_mm(moved, truth)
    assert distances.shape == (2, 3)
    np.testing.assert_allclose(distances, [[0, 0, 0], [0, 0, 5]])
    np.testing.assert_allclose(vertex_distances_mm(moved[1], truth[1]), [0, 0, 5])
    with pytest.raises(InputError, match="must both be"):
        vertex_distances_mm(moved, truth[:1])
    with pytest.raises(InputError, match="must both be"):
        vertex_distances_mm(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)))


def test_vertex_errors_per_region():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 50, 3))
    offset = np.zeros_like(truth)
    offset[:, :10, 0] = 0.002  # the "lip" off by 2 mm, the rest exact
    regions = {
        "lip": np.arange(10),
        "face": np.arange(50),
        "nose": np.arange(0),
        "not_reported": np.arange(5),
    }
    errors = vertex_errors(truth + offset, truth, regions)
    assert set(errors) == {"lip", "face"}  # empty and unknown regions left out
    assert errors["lip"] == {"mean_mm": pytest.approx(2.0), "p95_mm": pytest.approx(2.0)}
    assert errors["face"]["mean_mm"] == pytest.approx(0.4)
    assert errors["face"]["p95_mm"] == pytest.approx(2.0)
    assert list(errors) == [r for r in REGIONS if r in errors]  # the fixed order

import json

import numpy as np
import pytest

from mmface4d.capture.ground_truth import (
    GT_ARRAYS,
    GT_FORMAT,
    GT_SUFFIX,
    GroundTruthFile,
    ground_truth_path,
    read_ground_truth,
    write_ground_truth,
)
from mmface4d.errors import InputError


def _truth() -> GroundTruthFile:
    rng = np.random.default_rng(0)
    arrays = {
        "camera_from_world": np.tile(np.eye(4), (3, 1, 1)),
        "intrinsics": np.tile(np.eye(3), (3, 1, 1)),
        "vertices": rng.normal(size=(2, 5, 3)).astype(np.float32),
        "faces": np.array([[0, 1, 2], [2, 3, 4]], dtype=np.int64),
        "sh": rng.normal(size=(3, 27)).astype(np.float32),
        "white_balance": np.ones((3, 3), np.float32),
        "exposure": np.ones(3, np.float32),
    }
    return GroundTruthFile(arrays, {"world": "centre camera", "image_size": [160, 90], "seed": 3})


def test_the_path_beside_a_recording_uses_the_one_suffix(tmp_path):
    assert GT_SUFFIX == "_gt_capture"
    assert ground_truth_path(tmp_path, "210003") == tmp_path / "210003_gt_capture.npz"


def test_round_trip_keeps_arrays_and_metadata_with_the_format_first(tmp_path):
    truth = _truth()
    path = write_ground_truth(ground_truth_path(tmp_path, "rec"), truth)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert list(meta)[:2] == ["format", "world"] and meta["format"] == GT_FORMAT
    back = read_ground_truth(path)
    assert back.image_size == (160, 90) and back.metadata["seed"] == 3
    assert sorted(back.arrays) == sorted(GT_ARRAYS)
    for name in GT_ARRAYS:
        np.testing.assert_array_equal(back.arrays[name], truth.arrays[name])
    np.testing.assert_array_equal(back.vertices, truth.arrays["vertices"])


def test_user_mistakes_raise_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"must end in \.npz"):
        write_ground_truth(tmp_path / "rec.json", _truth())
    path = write_ground_truth(tmp_path / "rec_gt_capture.npz", _truth())
    json_path = path.with_suffix(".json")
    json_path.write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a studio ground truth"):
        read_ground_truth(path)
    json_path.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_ground_truth(path)
    json_path.unlink()
    with pytest.raises(InputError, match=r"needs the \.npz and its \.json"):
        read_ground_truth(path)

"""The calibration result's JSON file: round trip, NaN metrics, and the errors of bad files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmface4d.capture.calibration_io import (
    CalibrationResult,
    CameraExtrinsics,
    FrameFailure,
    load_calibration,
    save_calibration,
)
from mmface4d.capture.cameras import check_rigid
from mmface4d.errors import InputError


def pose(rotvec_degrees, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec(rotvec_degrees, degrees=True).as_matrix()
    matrix[:3, 3] = translation
    return matrix


@pytest.fixture
def result() -> CalibrationResult:
    side = CameraExtrinsics(
        camera=0,
        extrinsics=pose([1.0, -44.0, 0.5], [0.51, 0.0, 0.2]),
        initial=pose([1.2, -43.0, 0.4], [0.5, 0.01, 0.21]),
        refined=True,
        landmark_pairs=340,
        landmark_inliers=290,
        landmark_rmse_m=0.0031,
        landmark_rmse_refined_m=0.0029,
        icp_rmse_m=0.0011,
        icp_inliers=61000,
        icp_iterations=19,
        frames=(3, 8, 40),
    )
    centre = CameraExtrinsics(1, np.eye(4), np.eye(4), frames=(3, 8, 40))
    failure = FrameFailure(frame=8, camera=2, stage="landmarks", reason="0 landmarks found")
    other = CameraExtrinsics(2, pose([0.0, 45.0, 0.0], [-0.5, 0.0, 0.2]), np.eye(4))
    return CalibrationResult(1, (side, centre, other), (3, 8, 40), "file", (failure,))


def test_round_trip(result, tmp_path):
    path = save_calibration(tmp_path / "calib.json", result)
    loaded = load_calibration(path)
    assert (loaded.reference, loaded.frames, loaded.landmarks) == (1, (3, 8, 40), "file")
    assert loaded.failures == result.failures
    for before, after in zip(result.cameras, loaded.cameras, strict=True):
        np.testing.assert_array_equal(after.extrinsics, before.extrinsics)
        np.testing.assert_array_equal(after.initial, before.initial)
        assert after.frames == before.frames and after.refined == before.refined
        assert after.icp_inliers == before.icp_inliers
    assert loaded.cameras[0].icp_rmse_m == pytest.approx(0.0011)
    assert math.isnan(loaded.cameras[1].icp_rmse_m)  # NaN is written as null
    document = json.loads(path.read_text())
    assert document["format"] == "mmface4d-calibration/1"
    assert document["cameras"][1]["icp_rmse_m"] is None
    assert [len(m) for m in document["cameras"][0]["extrinsics"]] == [4, 4, 4, 4]
    np.testing.assert_array_equal(loaded.extrinsics[2], result.cameras[2].extrinsics)
    save_calibration(tmp_path / "again.json", loaded)
    assert json.loads((tmp_path / "again.json").read_text()) == document


def test_bad_files_say_what_is_wrong(result, tmp_path):
    with pytest.raises(InputError, match=r"\.json"):
        save_calibration(tmp_path / "calib.txt", result)
    with pytest.raises(InputError, match="not found"):
        load_calibration(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_calibration(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not a calibration file"):
        load_calibration(bad)
    bad.write_text(json.dumps({"format": "mmface4d-calibration/1", "cameras": [{}]}))
    with pytest.raises(InputError, match="malformed"):
        load_calibration(bad)
    document = json.loads(save_calibration(tmp_path / "calib.json", result).read_text())
    document["cameras"][0]["initial"][1][1] = 1.5  # scaled: not a rotation
    bad.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"bad\.json: camera 0 initial: expected a rigid"):
        load_calibration(bad)


def test_check_rigid():
    matrix = pose([5.0, -30.0, 2.0], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(check_rigid(matrix.tolist()), matrix)
    assert check_rigid(matrix).dtype == np.float64
    mirrored = matrix.copy()
    mirrored[:3, 0] *= -1
    for wrong in (mirrored, matrix * 2, np.eye(3)):
        with pytest.raises(InputError, match="extrinsics: expected"):
            check_rigid(wrong)
    with pytest.raises(InputError, match="camera 2: expected a finite"):
        check_rigid(np.full((4, 4), np.nan), "camera 2")

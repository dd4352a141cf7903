"""``mmface4d calibrate``: the side cameras' extrinsics of a raw MMFace4D capture."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmface4d.capture.calibration import CalibrationResult

_DESCRIPTION = """\
Calibrate the cameras of one recording in the MMFace4D raw layout
(CAPTURE_DIR/REC_<cam>.{mp4,nut,json}, optional REC_<cam>.pkl landmarks) relative to the centre
camera 1: a robust rigid fit of 3D facial landmarks (lifted with depth) initialises each side
camera, point-to-plane ICP of the face point clouds refines it (symmetric), over several frames
chosen for varied head poses. Writes a JSON file with every camera's 4x4 reference-from-camera
matrix (metres) and the fit's metrics, and prints a short JSON summary."""


def _summary(result: CalibrationResult, output: str) -> dict:
    from mmface4d.capture.calibration import pose_error

    def mm(value: float) -> float | None:
        return None if not math.isfinite(value) else round(value * 1000, 2)

    cameras = []
    for camera in result.cameras:
        if camera.camera == result.reference:
            continue
        change = pose_error(camera.extrinsics, camera.initial)
        cameras.append(
            {
                "camera": camera.camera,
                "refined": camera.refined,
                "centre_m": [round(x, 4) for x in camera.extrinsics[:3, 3]],
                "icp_change_degrees": round(change.rotation_degrees, 3),
                "landmark_inliers": f"{camera.landmark_inliers}/{camera.landmark_pairs}",
                "landmark_rmse_mm": mm(camera.landmark_rmse_m),
                "landmark_rmse_refined_mm": mm(camera.landmark_rmse_refined_m),
                "icp_rmse_mm": mm(camera.icp_rmse_m),
            }
        )
    return {
        "output": output,
        "reference": result.reference,
        "frames": list(result.frames),
        "landmarks": result.landmarks,
        "cameras": cameras,
        "failures": len(result.failures),
    }


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "calibrate",
        help="extrinsics of a raw MMFace4D capture's cameras from the face (landmarks + ICP)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("capture_dir", metavar="CAPTURE_DIR", help="folder of the raw recording")
    p.add_argument("recording", metavar="REC", help="recording id, the files' prefix (000337)")
    p.add_argument("-o", "--output", required=True, help="output calibration .json")
    p.add_argument(
        "--frames",
        type=int,
        default=10,
        help="frames used (default 10), chosen for varied head poses when the landmark files "
        "allow, else spread over the recording",
    )
    p.add_argument(
        "--landmarks",
        choices=("auto", "file", "detect"),
        default="auto",
        help="file: the REC_<cam>.pkl HRNet-98 files; detect: MediaPipe on the colour frames "
        "(extra 'mediapipe'); auto (default): the files when every camera has one",
    )

    def run(a: argparse.Namespace) -> None:
        from mmface4d.capture.calibration import calibrate, save_calibration
        from mmface4d.capture.capture import Capture
        from mmface4d.errors import InputError

        if a.frames < 1:
            raise InputError(f"--frames must be >= 1, got {a.frames}")
        capture = Capture.from_raw(a.capture_dir, a.recording)
        result = calibrate(capture, frames=a.frames, landmarks=a.landmarks)
        path = save_calibration(a.output, result)
        print(json.dumps(_summary(result, str(path))))

    p.set_defaults(run=run)

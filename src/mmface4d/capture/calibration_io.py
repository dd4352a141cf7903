"""The result of an extrinsic calibration and its JSON file.

:func:`~mmface4d.capture.calibration.calibrate` returns a :class:`CalibrationResult`: per camera
a :class:`CameraExtrinsics` (the 4x4 reference-from-camera matrix in metres, ``p_reference = E @
p_camera``, and how well the data supported it) and the frames left out (:class:`FrameFailure`).
:func:`save_calibration` writes it as JSON (format ``mmface4d-calibration/1``) and
:func:`load_calibration` reads it back, checking that every matrix is rigid.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.capture.cameras import check_rigid
from mmface4d.errors import InputError

_FORMAT = "mmface4d-calibration/1"


@dataclass(frozen=True)
class FrameFailure:
    """A frame of a camera left out of the calibration, and why.

    Attributes:
        frame: frame index (-1: the camera's refinement as a whole).
        camera: camera position.
        stage: ``landmarks``, ``depth``, ``point cloud`` or ``icp``.
        reason: one line.
    """

    frame: int
    camera: int
    stage: str
    reason: str


@dataclass(frozen=True)
class CameraExtrinsics:
    """One camera's calibration and how well it is supported.

    Attributes:
        camera: camera position in the capture.
        extrinsics: (4, 4) reference-from-camera, metres: the ICP result when accepted, else
            the landmark initialisation (identity for the reference camera).
        initial: (4, 4) the landmark initialisation.
        refined: whether ICP refined it.
        landmark_pairs: valid landmark pairs with the reference camera, all frames.
        landmark_inliers: of them, those kept by the outlier rejection.
        landmark_rmse_m: RMS 3D distance of the inlier pairs under ``initial``.
        landmark_rmse_refined_m: the same under ``extrinsics``.
        icp_rmse_m: RMS point-to-plane residual of the final ICP correspondences.
        icp_inliers: ICP correspondences kept at the end.
        icp_iterations: ICP iterations run.
        frames: frame indices whose data entered the calibration.
    """

    camera: int
    extrinsics: np.ndarray
    initial: np.ndarray
    refined: bool = False
    landmark_pairs: int = 0
    landmark_inliers: int = 0
    landmark_rmse_m: float = math.nan
    landmark_rmse_refined_m: float = math.nan
    icp_rmse_m: float = math.nan
    icp_inliers: int = 0
    icp_iterations: int = 0
    frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class CalibrationResult:
    """Extrinsics of every camera of a capture.

    Attributes:
        reference: position of the reference (centre) camera.
        cameras: C :class:`CameraExtrinsics` in camera order (the reference's is the identity).
        frames: the frame indices used.
        landmarks: where the landmarks came from (``file``, ``detect`` or ``given``).
        failures: frames left out, per camera.
    """

    reference: int
    cameras: tuple[CameraExtrinsics, ...]
    frames: tuple[int, ...]
    landmarks: str
    failures: tuple[FrameFailure, ...] = field(default_factory=tuple)

    @property
    def extrinsics(self) -> list[np.ndarray]:
        """C (4, 4) reference-from-camera matrices, for :meth:`Capture.with_extrinsics`."""
        return [camera.extrinsics.copy() for camera in self.cameras]


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def save_calibration(path: str | os.PathLike[str], result: CalibrationResult) -> Path:
    """Write a calibration as JSON (atomically): per camera the 4x4 reference-from-camera
    matrices (row-major nested lists, metres) and the metrics."""
    path = Path(path)
    if path.suffix != ".json":
        raise InputError(f"calibration path must end in .json, got {path}")
    cameras = []
    for camera in result.cameras:
        entry = asdict(camera)
        entry["extrinsics"] = camera.extrinsics.tolist()
        entry["initial"] = camera.initial.tolist()
        entry["frames"] = list(camera.frames)
        cameras.append({k: _number(v) if isinstance(v, float) else v for k, v in entry.items()})
    document = {
        "format": _FORMAT,
        "convention": "extrinsics: reference-from-camera 4x4, p_ref = E @ p_cam, metres, OpenCV "
        "axes; reference = the centre camera",
        "reference": result.reference,
        "frames": list(result.frames),
        "landmarks": result.landmarks,
        "cameras": cameras,
        "failures": [asdict(failure) for failure in result.failures],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return path


def load_calibration(path: str | os.PathLike[str]) -> CalibrationResult:
    """Read what :func:`save_calibration` wrote."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: calibration file not found")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise InputError(f"{path}: not a calibration file ({_FORMAT})")
    try:
        cameras = []
        for entry in document["cameras"]:
            values = {k: math.nan if v is None else v for k, v in entry.items()}
            for key in ("extrinsics", "initial"):
                values[key] = check_rigid(values[key], f"camera {values['camera']} {key}")
            values["frames"] = tuple(int(i) for i in values["frames"])
            cameras.append(CameraExtrinsics(**values))
        failures = tuple(FrameFailure(**failure) for failure in document["failures"])
        return CalibrationResult(
            int(document["reference"]),
            tuple(cameras),
            tuple(int(i) for i in document["frames"]),
            str(document["landmarks"]),
            failures,
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: malformed calibration file ({type(exc).__name__}: {exc})"
        ) from None

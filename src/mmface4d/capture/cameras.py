"""Calibrated RGB-D cameras: intrinsics, Brown-Conrady lens distortion, extrinsics, and the
MMFace4D ``<rec>_<cam>.json`` files.

Conventions (OpenCV, as in :mod:`mmface4d.render.camera`): camera frame x right, y down, z forward;
pixel column ``i`` has its centre at ``u = i``. Lengths are metres, except depth images, which are
uint16 millimetres (0 = no measurement).

Extrinsics are **reference-from-camera**: a 4x4 rigid transform ``E`` with
``p_reference = E @ p_camera`` (homogeneous, metres). In a multi-camera MMFace4D recording the
reference is the centre camera (:data:`CENTRE_CAMERA`, camera ``1``), whose extrinsics are the
identity; for one Azure Kinect the reference is its colour camera. The MMFace4D json files carry
no extrinsics (the official pipeline estimates them from the faces); such cameras read with the
identity until calibrated. :meth:`CameraCalibration.to_pinhole` converts to the renderer's
world-to-camera ``R, t``.

Distortion is the Azure Kinect Brown-Conrady model, which is OpenCV's rational model; the eight
coefficients are stored in OpenCV order ``(k1, k2, p1, p2, k3, k4, k5, k6)``::

    r2 = x^2 + y^2,  d = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
    x_d = x d + 2 p1 x y + p2 (r2 + 2 x^2),   y_d = y d + p1 (r2 + 2 y^2) + 2 p2 x y

The MMFace4D json format has no distortion field (its colour frames are used as is). This module
writes two optional extension keys, read back by :func:`read_mmface4d_json` and ignored by
Open3D: ``distortion`` (8 numbers, OpenCV order) and ``extrinsic_matrix`` (16 numbers, the
reference-from-camera matrix, row-major, metres); each is written only when it is not trivial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d.errors import InputError
from mmface4d.render.camera import PinholeCamera

CENTRE_CAMERA = 1
"""Index of the MMFace4D centre (master) camera, the reference of the recording's extrinsics."""
DISTORTION_TERMS = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
_DISTORTION_KEY = "distortion"
_EXTRINSICS_KEY = "extrinsic_matrix"


def _check_distortion(distortion: object, name: str = "distortion") -> np.ndarray:
    values = np.asarray(distortion if distortion is not None else (), dtype=np.float64).ravel()
    if values.size > len(DISTORTION_TERMS) or not np.isfinite(values).all():
        raise InputError(
            f"{name}: expected up to 8 finite coefficients (k1, k2, p1, p2, k3, k4, k5, k6), "
            f"got {values.size} values"
        )
    return np.concatenate([values, np.zeros(len(DISTORTION_TERMS) - values.size)])


def check_rigid(matrix: object, name: str = "extrinsics") -> np.ndarray:
    """A (4, 4) float64 rigid transform (rotation, translation, last row 0 0 0 1), checked.

    Args:
        matrix: anything array-like.
        name: what to call it in the error.

    Raises:
        InputError: not a finite (4, 4) matrix, or its 3x3 block is not a rotation (within
            1e-5) or its last row not (0, 0, 0, 1).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise InputError(f"{name}: expected a finite (4, 4) matrix, got shape {matrix.shape}")
    rotation = matrix[:3, :3]
    if (
        not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9)
        or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
        or np.linalg.det(rotation) < 0
    ):
        raise InputError(f"{name}: expected a rigid transform (rotation, translation, 0 0 0 1)")
    return matrix


@dataclass
class CameraCalibration:
    """One calibrated camera.

    Attributes:
        intrinsics: (3, 3) K in pixels, OpenCV convention (pixel centres at integers).
        width, height: image size in pixels.
        distortion: (8,) Brown-Conrady coefficients in OpenCV order (k1, k2, p1, p2, k3, k4,
            k5, k6); shorter inputs are padded with zeros. Zeros for an undistorted camera.
        extrinsics: (4, 4) reference-from-camera rigid transform, metres
            (``p_reference = extrinsics @ p_camera``); identity for the reference camera.
        serial: the device serial number ("" when unknown).
        metadata: other fields of the source file (color_mode, depth_mode, ...), kept for
            writing back.
    """

    intrinsics: np.ndarray
    width: int
    height: int
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(8))
    extrinsics: np.ndarray = field(default_factory=lambda: np.eye(4))
    serial: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = np.asarray(self.intrinsics, dtype=np.float64)
        if k.shape != (3, 3) or not np.isfinite(k).all():
            raise InputError(f"intrinsics: expected a finite (3, 3) matrix, got shape {k.shape}")
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise InputError(
                f"intrinsics: focal lengths must be positive, got {k[0, 0]}, {k[1, 1]}"
            )
        if k[0, 1] != 0 or k[1, 0] != 0 or not np.allclose(k[2], (0.0, 0.0, 1.0)):
            raise InputError("intrinsics: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(f"image size must be positive, got {self.width}x{self.height}")
        self.intrinsics = k
        self.width, self.height = int(self.width), int(self.height)
        self.distortion = _check_distortion(self.distortion)
        self.extrinsics = check_rigid(self.extrinsics)
        self.serial = str(self.serial)

    @property
    def fx(self) -> float:
        return float(self.intrinsics[0, 0])

    @property
    def fy(self) -> float:
        return float(self.intrinsics[1, 1])

    @property
    def cx(self) -> float:
        return float(self.intrinsics[0, 2])

    @property
    def cy(self) -> float:
        return float(self.intrinsics[1, 2])

    @property
    def camera_from_reference(self) -> np.ndarray:
        """(4, 4) inverse of :attr:`extrinsics`."""
        rotation, translation = self.extrinsics[:3, :3], self.extrinsics[:3, 3]
        inverse = np.eye(4)
        inverse[:3, :3] = rotation.T
        inverse[:3, 3] = -rotation.T @ translation
        return inverse

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera position in the reference frame, metres."""
        return self.extrinsics[:3, 3].copy()

    def with_extrinsics(self, extrinsics: np.ndarray) -> CameraCalibration:
        """The same camera with another (4, 4) reference-from-camera transform."""
        return replace(self, extrinsics=np.asarray(extrinsics, dtype=np.float64))

    # ------------------------------------------------------------------ projection
    def project(
        self, points: np.ndarray, max_radius: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of camera-frame points, lens distortion applied.

        Args:
            points: (N, 3) camera-frame points.
            max_radius: if given, points whose undistorted normalised radius exceeds it are
                invalid (the distortion polynomial is meaningless far outside the lens).

        Returns:
            (N, 2) pixel coordinates (u, v) and an (N,) bool mask of points in front of the
            camera (z > 0) and within ``max_radius``.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise InputError(f"points: expected (N, 3), got {points.shape}")
        z = points[:, 2]
        valid = z > 0
        safe_z = np.where(valid, z, 1.0)
        normalised = points[:, :2] / safe_z[:, None]
        if max_radius is not None:
            valid &= (normalised**2).sum(axis=1) <= max_radius**2
        distorted = distort_normalised(normalised, self.distortion)
        pixels = distorted * (self.fx, self.fy) + (self.cx, self.cy)
        return pixels, valid

    def pixel_rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted rays through pixels, scaled to z = 1.

        Args:
            pixels: (N, 2) pixel coordinates (u, v).

        Returns:
            (N, 3) rays ``(x, y, 1)`` (a pixel with depth z sees ``z * ray``) and an (N,) bool
            mask of pixels whose undistortion converged (within 1e-3 px).
        """
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.ndim != 2 or pixels.shape[1] != 2:
            raise InputError(f"pixels: expected (N, 2), got {pixels.shape}")
        distorted = (pixels - (self.cx, self.cy)) / (self.fx, self.fy)
        normalised, residual = undistort_normalised(distorted, self.distortion)
        converged = residual * max(self.fx, self.fy) < 1e-3
        rays = np.concatenate([normalised, np.ones((len(normalised), 1))], axis=1)
        return rays, converged

    # ------------------------------------------------------------------ conversions
    def to_pinhole(self) -> PinholeCamera:
        """The renderer's :class:`PinholeCamera` (world = this calibration's reference frame).

        Lens distortion is dropped: the renderer draws ideal pinhole images.
        """
        world_to_camera = self.camera_from_reference
        metadata = dict(self.metadata)
        if self.serial:
            metadata["serial_number"] = self.serial
        return PinholeCamera(
            fx=self.fx,
            fy=self.fy,
            cx=self.cx,
            cy=self.cy,
            width=self.width,
            height=self.height,
            R=world_to_camera[:3, :3],
            t=world_to_camera[:3, 3],
            metadata=metadata,
        )

    @classmethod
    def from_pinhole(
        cls, camera: PinholeCamera, distortion: np.ndarray | None = None
    ) -> CameraCalibration:
        """A calibration from a renderer camera (its world frame becomes the reference)."""
        world_to_camera = np.eye(4)
        world_to_camera[:3, :3] = np.asarray(camera.R, dtype=np.float64)
        world_to_camera[:3, 3] = np.asarray(camera.t, dtype=np.float64)
        metadata = dict(camera.metadata)
        serial = str(metadata.pop("serial_number", ""))
        return cls(
            intrinsics=camera.intrinsic_matrix(),
            width=camera.width,
            height=camera.height,
            distortion=np.zeros(8) if distortion is None else distortion,
            extrinsics=np.linalg.inv(world_to_camera),
            serial=serial,
            metadata=metadata,
        )


# ---------------------------------------------------------------------- distortion
def _radial(r2: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rational radial factor and its derivative with respect to r^2."""
    k1, k2, _, _, k3, k4, k5, k6 = d
    a = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    b = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    b = np.where(b == 0, 1.0, b)
    da = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    db = k4 + r2 * (2 * k5 + 3 * k6 * r2)
    return a / b, (da * b - a * db) / b**2


def _distort(points: np.ndarray, d: np.ndarray) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    r2 = x * x + y * y
    radial, _ = _radial(r2, d)
    p1, p2 = d[2], d[3]
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=1)


def distort_normalised(points: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """Apply Brown-Conrady distortion to normalised image coordinates.

    Args:
        points: (N, 2) undistorted ``(x/z, y/z)``.
        distortion: (8,) coefficients, OpenCV order.

    Returns:
        (N, 2) distorted normalised coordinates.
    """
    return _distort(np.asarray(points, dtype=np.float64), _check_distortion(distortion))


def undistort_normalised(
    points: np.ndarray, distortion: np.ndarray, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort_normalised` by Newton's method (vectorised, analytic Jacobian).

    Args:
        points: (N, 2) distorted normalised coordinates.
        distortion: (8,) coefficients, OpenCV order.
        iterations: most Newton steps (points stop once converged to 1e-15).

    Returns:
        (N, 2) undistorted coordinates and (N,) residuals ``|distort(x) - points|``
        (normalised units; large where the model cannot be inverted).
    """
    d = _check_distortion(distortion)
    points = np.asarray(points, dtype=np.float64)
    if not d.any():
        return points.copy(), np.zeros(len(points))
    p1, p2 = d[2], d[3]
    estimate, best = points.copy(), points.copy()
    best_residual = np.full(len(points), np.inf)
    active = np.arange(len(points))
    for step in range(iterations + 1):
        current = estimate[active]
        error = _distort(current, d) - points[active]
        residual = np.hypot(error[:, 0], error[:, 1])
        improved = residual < best_residual[active]
        best[active[improved]] = current[improved]
        best_residual[active[improved]] = residual[improved]
        going = improved & (residual > 1e-15)  # stop where converged or diverging
        if step == iterations or not going.any():
            break
        active, current, error = active[going], current[going], error[going]
        x, y = current[:, 0], current[:, 1]
        radial, dradial = _radial(x * x + y * y, d)
        j_xx = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
        j_xy = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
        j_yy = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
        det = j_xx * j_yy - j_xy * j_xy
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        update = np.stack(
            [
                (j_yy * error[:, 0] - j_xy * error[:, 1]) / det,
                (j_xx * error[:, 1] - j_xy * error[:, 0]) / det,
            ],
            axis=1,
        )
        estimate[active] = current - update
    return best, best_residual


# ---------------------------------------------------------------------- MMFace4D json
def read_mmface4d_json(path: str | os.PathLike[str]) -> CameraCalibration:
    """Read an MMFace4D / Azure-Kinect (Open3D) ``<rec>_<cam>.json`` intrinsics file.

    ``intrinsic_matrix`` is column-major; ``serial_number`` becomes :attr:`serial`; the
    project's optional ``distortion`` and ``extrinsic_matrix`` keys are read when present
    (otherwise zeros and identity); every other field goes to :attr:`metadata`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: camera intrinsics file not found")
    try:
        camera = PinholeCamera.from_mmface4d_json(path)
    except (TypeError, ValueError) as exc:  # InputError included: make it name the file
        if str(path) in str(exc):
            raise
        raise InputError(f"{path}: {exc}") from None
    metadata = dict(camera.metadata)
    serial = metadata.pop("serial_number", "")
    distortion = metadata.pop(_DISTORTION_KEY, None)
    extrinsics = metadata.pop(_EXTRINSICS_KEY, None)
    try:
        distortion = _check_distortion(distortion, f"{path}: {_DISTORTION_KEY}")
        matrix = np.eye(4) if extrinsics is None else np.asarray(extrinsics, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: {_DISTORTION_KEY}/{_EXTRINSICS_KEY} must be numbers") from None
    if matrix.size != 16:
        raise InputError(f"{path}: {_EXTRINSICS_KEY} must hold 16 numbers, got {matrix.size}")
    extrinsics = check_rigid(matrix.reshape(4, 4), f"{path}: {_EXTRINSICS_KEY}")
    return CameraCalibration(
        intrinsics=camera.intrinsic_matrix(),
        width=camera.width,
        height=camera.height,
        distortion=distortion,
        extrinsics=extrinsics,
        serial=str(serial),
        metadata=metadata,
    )


def write_mmface4d_json(
    path: str | os.PathLike[str], calibration: CameraCalibration, **fields: Any
) -> Path:
    """Write a calibration as an MMFace4D ``<rec>_<cam>.json`` file (atomically).

    Args:
        path: output file.
        calibration: the camera; its metadata is written back, ``serial`` as
            ``serial_number``; distortion and extrinsics as extension keys when non-trivial.
        **fields: extra or overriding top-level fields (e.g. ``stream_length_usec``).
    """
    metadata = dict(calibration.metadata)
    metadata["serial_number"] = calibration.serial
    if calibration.distortion.any():
        metadata[_DISTORTION_KEY] = calibration.distortion.tolist()
    if not np.array_equal(calibration.extrinsics, np.eye(4)):
        metadata[_EXTRINSICS_KEY] = calibration.extrinsics.reshape(-1).tolist()
    metadata.update(fields)
    camera = PinholeCamera(
        fx=calibration.fx,
        fy=calibration.fy,
        cx=calibration.cx,
        cy=calibration.cy,
        width=calibration.width,
        height=calibration.height,
        metadata=metadata,
    )
    return camera.to_mmface4d_json(path)

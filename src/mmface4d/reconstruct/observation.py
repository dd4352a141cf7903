"""What the fit compares against: one frame of every camera at the working resolution.

The recording's images are reduced by an integer factor ``k = round(1 / scale)`` in both axes
(the bottom/right remainder is cropped, so the intrinsics stay exact): colour by the mean of
each k x k block; depth by the mean of the block's measured pixels when at least half of them
are measured and they agree within :data:`DEPTH_AGREEMENT_M` (otherwise the block has no
depth: silhouettes and flying pixels are dropped rather than blended). Landmark pixels move
with the images: ``u' = (u + 0.5) / k - 0.5``. Depths of :data:`MAX_DEPTH_M` or more (a
saturated sensor) count as not measured.

Lens distortion is ignored, as by the renderer (the MMFace4D json files carry none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from mmface4d.capture.cameras import CameraCalibration
from mmface4d.errors import InputError
from mmface4d.geometry.frames import MM_PER_M
from mmface4d.render.camera import PinholeCamera

#: Depths at or beyond this are treated as not measured (saturated or invalid codes), metres.
MAX_DEPTH_M = 10.0
#: Largest spread (max - min) of the depths averaged into one working pixel, metres.
DEPTH_AGREEMENT_M = 0.02


@dataclass
class FrameObservation:
    """One frame of C cameras, reduced to the working resolution.

    Attributes:
        index: frame index in the recording.
        colour: (C, H, W, 3) float32 linear RGB in [0, 1].
        depth: (C, H, W) float32 camera-frame depth in metres, 0 where nothing was measured.
        landmarks: (C, K, 2) float32 pixels at the working resolution (0 where invalid).
        landmark_valid: (C, K) bool.
        cameras: C renderer cameras at the working resolution; their world is the reference
            (centre) camera's frame.
    """

    index: int
    colour: torch.Tensor
    depth: torch.Tensor
    landmarks: torch.Tensor
    landmark_valid: torch.Tensor
    cameras: list[PinholeCamera]

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the working resolution."""
        return int(self.colour.shape[1]), int(self.colour.shape[2])

    def crop(
        self, left: Sequence[int], top: Sequence[int], width: int, height: int
    ) -> FrameObservation:
        """The same frame cut to a ``width`` x ``height`` window per camera, its top-left
        corner at (``left[c]``, ``top[c]``) (inside the image); cameras and landmarks follow,
        landmarks outside the window become invalid."""
        full_h, full_w = self.image_size
        if not (0 < width <= full_w and 0 < height <= full_h):
            raise InputError(f"crop {width}x{height} does not fit the {full_w}x{full_h} images")
        colours, depths, points, valid, cameras = [], [], [], [], []
        for c, camera in enumerate(self.cameras):
            x0 = min(max(int(left[c]), 0), full_w - width)
            y0 = min(max(int(top[c]), 0), full_h - height)
            colours.append(self.colour[c, y0 : y0 + height, x0 : x0 + width])
            depths.append(self.depth[c, y0 : y0 + height, x0 : x0 + width])
            shift = torch.tensor([x0, y0], dtype=self.landmarks.dtype)
            moved = self.landmarks[c] - shift.to(self.landmarks.device)
            inside = (moved[:, 0] > -0.5) & (moved[:, 0] < width - 0.5)
            inside &= (moved[:, 1] > -0.5) & (moved[:, 1] < height - 0.5)
            points.append(moved)
            valid.append(self.landmark_valid[c] & inside)
            cameras.append(
                replace(camera, cx=camera.cx - x0, cy=camera.cy - y0, width=width, height=height)
            )
        return FrameObservation(
            self.index,
            torch.stack(colours),
            torch.stack(depths),
            torch.stack(points),
            torch.stack(valid),
            cameras,
        )

    def crop_around(self, projected: Sequence[np.ndarray], margin: float = 0.2) -> FrameObservation:
        """Crop every camera to one window size that holds its ``projected`` points (C arrays
        of (N, 2) pixels, e.g. the fitted mesh's vertices) grown by ``margin`` of their extent
        on each side; the whole image when the points are not finite."""
        full_h, full_w = self.image_size
        boxes = []
        for points in projected:
            points = np.asarray(points)
            points = points[np.isfinite(points).all(axis=1)]
            if len(points) == 0:
                return self
            low, high = points.min(axis=0), points.max(axis=0)
            grow = (high - low) * margin + 2.0
            boxes.append((low - grow, high + grow))
        width = min(full_w, int(np.ceil(max(hi[0] - lo[0] for lo, hi in boxes))) + 1)
        height = min(full_h, int(np.ceil(max(hi[1] - lo[1] for lo, hi in boxes))) + 1)
        centres = [(lo + hi) / 2 for lo, hi in boxes]
        return self.crop(
            [round(c[0] - width / 2) for c in centres],
            [round(c[1] - height / 2) for c in centres],
            width,
            height,
        )

    def to(self, device: torch.device | str) -> FrameObservation:
        return FrameObservation(
            self.index,
            self.colour.to(device),
            self.depth.to(device),
            self.landmarks.to(device),
            self.landmark_valid.to(device),
            self.cameras,
        )


def reduction_factor(scale: float) -> int:
    """The integer k of a working ``scale`` (1/k)."""
    if not 0 < scale <= 1:
        raise InputError(f"scale must be in (0, 1], got {scale}")
    return max(1, round(1.0 / scale))


def working_camera(calibration: CameraCalibration, factor: int) -> PinholeCamera:
    """The renderer camera of ``calibration`` for images reduced by ``factor`` (cropped)."""
    camera = calibration.to_pinhole()
    width, height = calibration.width // factor, calibration.height // factor
    return PinholeCamera(
        fx=camera.fx / factor,
        fy=camera.fy / factor,
        cx=(camera.cx + 0.5) / factor - 0.5,
        cy=(camera.cy + 0.5) / factor - 0.5,
        width=width,
        height=height,
        R=camera.R,
        t=camera.t,
        metadata=camera.metadata,
    )


def _blocks(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, ...) -> (H/k, W/k, k*k, ...) blocks (remainder cropped)."""
    height, width = image.shape[0] // factor, image.shape[1] // factor
    cropped = image[: height * factor, : width * factor]
    blocks = cropped.reshape(height, factor, width, factor, *image.shape[2:])
    blocks = np.moveaxis(blocks, 2, 1)
    return blocks.reshape(height, width, factor * factor, *image.shape[2:])


def reduce_colour(colour: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/k, W/k, 3) float32 in [0, 1], block means."""
    return _blocks(colour.astype(np.float32) / 255.0, factor).mean(axis=2)


def reduce_depth(depth_mm: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) uint16 millimetres -> (H/k, W/k) float32 metres (see the module doc)."""
    metres = depth_mm.astype(np.float32) / MM_PER_M
    metres[metres >= MAX_DEPTH_M] = 0.0
    if factor == 1:
        return metres
    blocks = _blocks(metres, factor)
    measured = blocks > 0
    count = measured.sum(axis=2)
    mean = blocks.sum(axis=2) / np.maximum(count, 1)
    spread = np.where(measured, blocks, -np.inf).max(axis=2) - np.where(
        measured, blocks, np.inf
    ).min(axis=2)
    keep = (count * 2 >= factor * factor) & (spread <= DEPTH_AGREEMENT_M + 1e-6)  # mm steps
    return np.where(keep, mean, 0.0).astype(np.float32)


def observe(
    index: int,
    colour: Sequence[np.ndarray],
    depth: Sequence[np.ndarray],
    calibrations: Sequence[CameraCalibration],
    landmarks: Sequence[np.ndarray | None],
    scale: float,
) -> FrameObservation:
    """Build the :class:`FrameObservation` of one frame.

    Args:
        index: frame index.
        colour: C (H, W, 3) uint8 images.
        depth: C (H, W) uint16 millimetre images in the colour cameras' pixels.
        calibrations: C cameras (extrinsics reference-from-camera).
        landmarks: C (K, 2) full-resolution pixels (NaN where missing) or None (no landmarks
            for that camera).
        scale: working resolution as a fraction of the recording's.
    """
    count = len(calibrations)
    if not (len(colour) == len(depth) == len(landmarks) == count):
        raise InputError(
            f"observe: {len(colour)} colour, {len(depth)} depth and {len(landmarks)} landmark "
            f"images for {count} cameras"
        )
    factor = reduction_factor(scale)
    cameras = [working_camera(c, factor) for c in calibrations]
    sizes = {(cam.height, cam.width) for cam in cameras}
    if len(sizes) != 1:
        raise InputError(f"cameras must share one image size, got {sorted(sizes)}")
    for camera, calibration in enumerate(calibrations):
        expected = (calibration.height, calibration.width)
        if (
            np.asarray(colour[camera]).dtype != np.uint8
            or np.asarray(depth[camera]).dtype != np.uint16
        ):
            raise InputError(
                f"camera {camera}: expected uint8 colour and uint16 millimetre depth, got "
                f"{np.asarray(colour[camera]).dtype} and {np.asarray(depth[camera]).dtype}"
            )
        if colour[camera].shape[:2] != expected or depth[camera].shape != expected:
            raise InputError(
                f"camera {camera}: colour {colour[camera].shape} and depth {depth[camera].shape}"
                f" do not match its calibration's {expected[1]}x{expected[0]} image"
            )
    known = [np.asarray(points) for points in landmarks if points is not None]
    num_points = known[0].shape[0] if known else 0
    points = np.zeros((count, num_points, 2), dtype=np.float32)
    valid = np.zeros((count, num_points), dtype=bool)
    for camera, marks in enumerate(landmarks):
        if marks is None:
            continue
        marks = np.asarray(marks, dtype=np.float64)[:, :2]
        if marks.shape[0] != num_points:
            raise InputError(f"camera {camera}: {marks.shape[0]} landmarks, expected {num_points}")
        finite = np.isfinite(marks).all(axis=1)
        points[camera][finite] = (marks[finite] + 0.5) / factor - 0.5
        valid[camera] = finite
    return FrameObservation(
        index=int(index),
        colour=torch.from_numpy(np.stack([reduce_colour(c, factor) for c in colour])),
        depth=torch.from_numpy(np.stack([reduce_depth(d, factor) for d in depth])),
        landmarks=torch.from_numpy(points),
        landmark_valid=torch.from_numpy(valid),
        cameras=cameras,
    )

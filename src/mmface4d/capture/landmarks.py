"""2D facial landmarks: MediaPipe face-mesh detection and the dataset's landmark files.

Detection uses MediaPipe's face mesh (extra ``mediapipe``, imported lazily), 468 points per face;
its models ship inside the wheel, so it runs offline. Points are returned in the project's pixel
convention (pixel centres at integer coordinates, as
:class:`~mmface4d.render.camera.PinholeCamera`): MediaPipe's normalised ``x * W - 0.5`` and
``y * H - 0.5``. Its ``z`` is a relative depth (origin near the head's centre, smaller is closer
to the camera) in MediaPipe's x scale, returned as ``z * W`` so that it is in the same pixel
units.

A frame without a face gives ``None``: :meth:`LandmarkDetector.detect_frames` records it and goes
on, :func:`stack_detections` turns the list into a NaN-padded array. Bad input (not an
(H, W, 3) uint8 RGB image) raises :class:`~mmface4d.errors.InputError`.

The MMFace4D release stores HRNetv2 98-point landmarks per camera as ``<rec>_<cam>.pkl`` (a
pickled (T, 98, 2 or 3) array, pixels); :func:`mmface4d.capture.layout.read_landmarks` reads it.
:func:`read_mediapipe_triangles` reads the release's ``faces.pkl``; both allow only numpy arrays
in the pickle (a pickle may otherwise run code).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from mmface4d._optional import require
from mmface4d.capture.layout import load_numpy_pickle
from mmface4d.errors import InputError
from mmface4d.facemodel.landmark_maps import to_ibug68

EXTRA = "mediapipe"
#: Points of a MediaPipe face mesh without iris refinement.
NUM_MEDIAPIPE_POINTS = 468

DetectorMode = Literal["image", "video"]


@dataclass(eq=False)
class DetectedLandmarks:
    """MediaPipe face-mesh landmarks of one face in one image.

    Attributes:
        points: (468, 3) float32: x, y in pixels (pixel centres at integers), z MediaPipe's
            relative depth in the same pixel units (smaller is closer to the camera).
        image_size: (H, W) of the image they were detected in.
    """

    points: np.ndarray
    image_size: tuple[int, int]

    @property
    def xy(self) -> np.ndarray:
        """(468, 2) pixel positions."""
        return self.points[:, :2]

    def ibug68(self) -> np.ndarray:
        """(68, 2) pixel positions of the iBUG-68-equivalent MediaPipe points."""
        return to_ibug68(self.xy, "mediapipe468")


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image must be at least 2x2 pixels, got {image.shape[:2]}")
    return np.ascontiguousarray(image)


class LandmarkDetector:
    """A reusable MediaPipe face-mesh detector; a context manager that frees it on exit.

    ``mode="image"`` detects every image independently; ``mode="video"`` tracks the face from
    frame to frame (faster and steadier, for consecutive frames of one video; it re-detects after
    a frame without a face).

    Args:
        mode: ``image`` or ``video``.
        min_detection_confidence: face-detector score below which no face is reported.
        min_tracking_confidence: video mode: tracking score below which the face is re-detected.
    """

    def __init__(
        self,
        mode: DetectorMode = "image",
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if mode not in ("image", "video"):
            raise InputError(f"detector mode must be 'image' or 'video', got {mode!r}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {value}")
        mediapipe = require("mediapipe", EXTRA)
        if not hasattr(mediapipe, "solutions"):
            raise ImportError(
                f"mediapipe {getattr(mediapipe, '__version__', '?')} lacks the face-mesh "
                f"solution; install the pinned version with: pip install 'mmface4d[{EXTRA}]'"
            )
        self.mode: DetectorMode = mode
        self._mesh = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=mode == "image",
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Free the MediaPipe graph; the detector cannot be used afterwards."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def detect(self, image: np.ndarray) -> DetectedLandmarks | None:
        """Landmarks of the most prominent face, or None when no face is found.

        Args:
            image: (H, W, 3) uint8 RGB.
        """
        image = _check_image(image)
        if self._mesh is None:
            raise InputError("landmark detector is closed")
        with warnings.catch_warnings():
            # protobuf 4 deprecation notice raised inside mediapipe on every call
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype")
            result = self._mesh.process(image)
        faces = result.multi_face_landmarks
        if not faces:
            return None
        height, width = image.shape[:2]
        raw = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], dtype=np.float64)
        if raw.shape != (NUM_MEDIAPIPE_POINTS, 3):
            raise RuntimeError(f"MediaPipe returned {raw.shape[0]} face-mesh points, expected 468")
        points = np.empty_like(raw)
        points[:, 0] = raw[:, 0] * width - 0.5
        points[:, 1] = raw[:, 1] * height - 0.5
        points[:, 2] = raw[:, 2] * width
        return DetectedLandmarks(points.astype(np.float32), (height, width))

    def detect_frames(self, frames: Iterable[np.ndarray]) -> list[DetectedLandmarks | None]:
        """Detect in each frame (a (T, H, W, 3) array or an iterable of (H, W, 3) images).

        Returns:
            T results; None where no face was found.
        """
        return [self.detect(frame) for frame in frames]


def detect_landmarks(image: np.ndarray) -> DetectedLandmarks | None:
    """MediaPipe face-mesh landmarks of one (H, W, 3) uint8 RGB image; None when no face.

    Builds a detector per call; use :class:`LandmarkDetector` for many images or a video.
    """
    image = _check_image(image)
    with LandmarkDetector("image") as detector:
        return detector.detect(image)


def stack_detections(
    detections: list[DetectedLandmarks | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame detections as arrays.

    Returns:
        points: (T, 468, 3) float32, NaN in frames without a face.
        found: (T,) bool, True where a face was found.
    """
    points = np.full((len(detections), NUM_MEDIAPIPE_POINTS, 3), np.nan, dtype=np.float32)
    found = np.zeros(len(detections), dtype=bool)
    for t, det in enumerate(detections):
        if det is not None:
            points[t] = det.points
            found[t] = True
    return points, found


# ---------------------------------------------------------------------- dataset files
def read_mediapipe_triangles(path: str | Path) -> np.ndarray:
    """Read the dataset's ``faces.pkl``: triangles over the 468 MediaPipe points.

    Returns:
        (F, 3) int64 point indices (854 triangles in the release).
    """
    path = Path(path)
    faces = np.asarray(load_numpy_pickle(path, "pickled triangle array"))
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"{path}: triangles must be (F, 3) integers, got shape {faces.shape}")
    if faces.min() < 0 or faces.max() >= NUM_MEDIAPIPE_POINTS:
        raise InputError(
            f"{path}: triangle indices span {faces.min()}..{faces.max()}, expected 0..467"
        )
    return faces.astype(np.int64)


# ---------------------------------------------------------------------- per-frame source
LandmarkMode = Literal["auto", "file", "detect"]


class FrameLandmarks:
    """The 68 iBUG landmarks of every camera of a capture, frame by frame.

    ``file``: the dataset's HRNet-98 ``.pkl`` files (required for every camera); ``detect``:
    MediaPipe on the colour images (``video`` mode: tracked over consecutive frames, one
    detector per camera); ``auto``: the files when every camera has one, else detection. Use it
    as a context manager (it frees the detectors).

    Args:
        capture: a :class:`~mmface4d.capture.capture.Capture`.
        mode: ``auto``, ``file`` or ``detect``.
        detector_mode: ``image`` for frames far apart, ``video`` for consecutive frames.
    """

    def __init__(
        self, capture: Any, mode: LandmarkMode = "auto", detector_mode: DetectorMode = "video"
    ) -> None:
        if mode not in ("auto", "file", "detect"):
            raise InputError(f"landmarks: expected 'auto', 'file' or 'detect', got {mode!r}")
        self._files = [capture.landmarks(c) for c in range(capture.num_cameras)]
        if mode == "auto":
            mode = "file" if all(f is not None for f in self._files) else "detect"
        if mode == "file":
            for camera, found in enumerate(self._files):
                if found is None:
                    raise InputError(
                        f"{capture.sources[camera]}: no landmark file for this camera; use "
                        "landmark detection (landmarks='detect')"
                    )
        self.mode: str = mode
        self._detectors = (
            [LandmarkDetector(detector_mode) for _ in range(capture.num_cameras)]
            if mode == "detect"
            else []
        )

    def __call__(self, index: int, colour: tuple[np.ndarray, ...]) -> list[np.ndarray | None]:
        """C (68, 2) float64 pixel arrays (NaN rows where a point is missing), or None for a
        camera without a face (or past the end of its file) in frame ``index``."""
        points: list[np.ndarray | None] = []
        for camera, image in enumerate(colour):
            if self._detectors:
                found = self._detectors[camera].detect(image)
                points.append(None if found is None else found.ibug68().astype(np.float64))
            elif index < len(self._files[camera]):
                marks = to_ibug68(self._files[camera][index, :, :2], "hrnet98")
                points.append(marks.astype(np.float64))
            else:
                points.append(None)
        return points

    def stacked(self, frames: int) -> np.ndarray:
        """File mode: every camera's landmarks as (T, C, 68, 2) iBUG-68 pixels over ``frames``
        frames (NaN where a file has no point or no frame)."""
        if self.mode != "file":
            raise InputError("stacked landmarks need the dataset's landmark files")
        out = np.full((frames, len(self._files), 68, 2), np.nan)
        for camera, points in enumerate(self._files):
            held = min(frames, len(points))
            out[:held, camera] = to_ibug68(np.asarray(points)[:held, :, :2], "hrnet98")
        return out

    def close(self) -> None:
        for detector in self._detectors:
            detector.close()
        self._detectors = []

    def __enter__(self) -> FrameLandmarks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

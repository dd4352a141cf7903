"""Landmark schemes and their correspondence to face-model vertices.

Three 2D landmark schemes meet in the pipeline:

- ``ibug68``: the iBUG 300-W / dlib 68 points (0-based here: iBUG's 1-based numbers minus one).
  Every :class:`~mmface4d.facemodel.model.FaceModel` carries these as ``landmarks`` (68,).
- ``hrnet98``: the WFLW 98-point layout that HRNetv2 predicts; MMFace4D ships it per camera as
  ``<rec>_<cam>.pkl``. :data:`HRNET98_OF_IBUG68` picks the 68 iBUG-equivalent points.
- ``mediapipe468``: the MediaPipe face-mesh points (the 468 of ``refine_landmarks=False``; the
  refined 478 add 10 iris points after them). The official MMFace4D fitting maps 67 of them to
  BFM-front vertices with ``landmark_mapping2.json``; for any other model
  :data:`MEDIAPIPE468_OF_IBUG68` gives the 68 iBUG-equivalent MediaPipe points.

:func:`landmark_vertices` answers "which model vertex does each landmark sit on" as a
:class:`LandmarkMap` of K (landmark index, vertex index) pairs. Coverage:

- ``ibug68``: all 68 points, on ``model.landmarks``.
- ``hrnet98``: the 68 iBUG-equivalent points of the 98 (jaw every other point, upper brow edges,
  nose, 6 of each eye's 8 contour points, all 20 mouth points); the 30 others (lower brow edges,
  the odd jaw points, 2 points per eye, the two pupils 96/97) have no vertex.
- ``mediapipe468`` with a mapping file: exactly the file's pairs (67 for ``landmark_mapping2.json``,
  BFM-front topology only).
- ``mediapipe468`` without one, on any model (synth, ICT, BFM): the 68 MediaPipe points of
  :data:`MEDIAPIPE468_OF_IBUG68`, on ``model.landmarks``; the other 400 points have no vertex.
  On the real MMFace4D mesh these agree with the dataset's own ``landmark_mapping2.json`` within
  about 1-5 mm on eyes, nose and mouth, 4-8 mm on brows and 5-14 mm on the face contour (a 2D
  silhouette annotation versus fixed mesh points), so weight the contour points lower.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel

Scheme = Literal["ibug68", "hrnet98", "mediapipe468"]

#: Number of points of each scheme.
SCHEME_SIZES: dict[str, int] = {"ibug68": 68, "hrnet98": 98, "mediapipe468": 468}

#: iBUG-68 facial parts (0-based rows), named like ``landmark_mapping2.json``; left/right are the
#: subject's (the subject's right eye, 36-41, is on the image's left).
IBUG68_PARTS: dict[str, np.ndarray] = {
    "boundary": np.arange(0, 17),
    "right_eyebrow": np.arange(17, 22),
    "left_eyebrow": np.arange(22, 27),
    "nose_bridge": np.arange(27, 31),
    "nose_bottom": np.arange(31, 36),
    "right_eye": np.arange(36, 42),
    "left_eye": np.arange(42, 48),
    "outer_lip": np.arange(48, 60),
    "inner_lip": np.arange(60, 68),
}

#: WFLW-98 (HRNetv2) index of each iBUG-68 point, 0-based. The standard table
#: ``DLIB_68_TO_WFLW_98_IDX_MAPPING`` of the WFLW tooling (e.g. the AdaptiveWingLoss evaluation
#: scripts): jaw 0, 2, ..., 32; upper brow edges 33-37 and 42-46; nose 51-59; eyes 60, 61, 63,
#: 64, 65, 67 and 68, 69, 71, 72, 73, 75; mouth 76-95. Checked on the real MMFace4D sample:
#: the reconstructed mesh's BFM keypoints, projected into camera 1, land on these points within
#: ~3.5 px mean (inter-ocular distance ~124 px) for brows, nose, eyes and mouth.
HRNET98_OF_IBUG68 = np.array(
    [*range(0, 33, 2)]  # boundary (17)
    + [33, 34, 35, 36, 37]  # right eyebrow, upper edge
    + [42, 43, 44, 45, 46]  # left eyebrow, upper edge
    + [*range(51, 60)]  # nose bridge (4) and bottom (5)
    + [60, 61, 63, 64, 65, 67]  # right eye
    + [68, 69, 71, 72, 73, 75]  # left eye
    + [*range(76, 96)],  # outer (12) and inner (8) lip
    dtype=np.int64,
)

#: MediaPipe face-mesh index of each iBUG-68 point, 0-based. From the dlib-68 correspondence of
#: PeizhiYan/Mediapipe_2_Dlib_Landmarks (used by flame-head-tracker); where that table averages
#: two MediaPipe points (iBUG 4, 5, 13, 28, 29) this keeps the first, so the 68 are distinct
#: mesh points that each sit on one model vertex.
MEDIAPIPE468_OF_IBUG68 = np.array(
    [127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356]  # boundary
    + [156, 63, 105, 66, 107]  # right eyebrow
    + [336, 296, 334, 293, 383]  # left eyebrow
    + [168, 197, 5, 4]  # nose bridge
    + [98, 97, 2, 326, 327]  # nose bottom
    + [33, 160, 158, 133, 153, 144]  # right eye
    + [362, 385, 387, 263, 373, 380]  # left eye
    + [61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91]  # outer lip
    + [78, 82, 13, 312, 308, 317, 14, 87],  # inner lip
    dtype=np.int64,
)

_TO_IBUG68 = {
    "ibug68": np.arange(68, dtype=np.int64),
    "hrnet98": HRNET98_OF_IBUG68,
    "mediapipe468": MEDIAPIPE468_OF_IBUG68,
}


@dataclass(eq=False)
class LandmarkMap:
    """Which face-model vertex each landmark of a scheme sits on.

    Attributes:
        scheme: the landmark scheme (``ibug68``, ``hrnet98``, ``mediapipe468``).
        landmark_index: (K,) int64 indices into the scheme's points.
        vertex_index: (K,) int64 model vertex indices, one per landmark.
        parts: facial part -> int64 rows of this map (indices into 0..K-1).
        source: where the pairs come from (``model landmarks`` or the mapping file's path).
    """

    scheme: str
    landmark_index: np.ndarray
    vertex_index: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return int(len(self.landmark_index))

    def select(self, points: np.ndarray) -> np.ndarray:
        """The mapped landmarks of detected points: (..., N, D) -> (..., K, D)."""
        points = np.asarray(points)
        size = SCHEME_SIZES[self.scheme]
        if points.ndim < 2 or points.shape[-2] < size:
            raise InputError(
                f"{self.scheme} landmarks must be (..., {size}, D), got {points.shape}"
            )
        return points[..., self.landmark_index, :]

    def model_points(self, vertices: np.ndarray) -> np.ndarray:
        """The mapped vertices of a mesh: (..., V, 3) -> (..., K, 3)."""
        vertices = np.asarray(vertices)
        if vertices.ndim < 2 or vertices.shape[-2] <= int(self.vertex_index.max()):
            raise InputError(
                f"vertices must be (..., V, 3) with V > {int(self.vertex_index.max())}, "
                f"got {vertices.shape}"
            )
        return vertices[..., self.vertex_index, :]


def _check_scheme(scheme: str) -> int:
    if scheme not in SCHEME_SIZES:
        raise InputError(f"landmark scheme must be one of {sorted(SCHEME_SIZES)}, got {scheme!r}")
    return SCHEME_SIZES[scheme]


def to_ibug68(points: np.ndarray, scheme: Scheme) -> np.ndarray:
    """The 68 iBUG-equivalent points of landmarks in another scheme.

    Args:
        points: (..., N, D) landmarks of ``scheme`` (N = 68, 98, or 468/478 for MediaPipe).
        scheme: ``ibug68``, ``hrnet98`` or ``mediapipe468``.

    Returns:
        (..., 68, D) in iBUG order.
    """
    size = _check_scheme(scheme)
    points = np.asarray(points)
    allowed = (468, 478) if scheme == "mediapipe468" else (size,)
    if points.ndim < 2 or points.shape[-2] not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise InputError(f"{scheme} landmarks must be (..., {wanted}, D), got {points.shape}")
    return points[..., _TO_IBUG68[scheme], :]


def read_landmark_mapping(
    path: str | Path, num_landmarks: int = 468
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Read a landmark -> vertex mapping file (the layout of MMFace4D's ``landmark_mapping2.json``).

    The file is a JSON object ``{part: [[landmark, vertex], ...], ...}`` of 0-based indices.

    Args:
        path: the JSON file.
        num_landmarks: size of the landmark scheme the file's first indices refer to.

    Returns:
        (landmark_index (K,), vertex_index (K,), parts: name -> rows of the K pairs).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark mapping file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected a JSON object of part -> [[landmark, vertex], ...]")
    landmarks: list[int] = []
    vertices: list[int] = []
    parts: dict[str, np.ndarray] = {}
    for part, pairs in data.items():
        ok = isinstance(pairs, list) and all(
            isinstance(p, list) and len(p) == 2 and all(type(i) is int for i in p) for p in pairs
        )
        if not ok or not pairs:
            raise InputError(
                f"{path}: part {part!r} must be a non-empty list of [landmark, vertex] "
                "integer pairs"
            )
        parts[str(part)] = np.arange(len(landmarks), len(landmarks) + len(pairs), dtype=np.int64)
        landmarks.extend(p[0] for p in pairs)
        vertices.extend(p[1] for p in pairs)
    landmark_index = np.asarray(landmarks, dtype=np.int64)
    vertex_index = np.asarray(vertices, dtype=np.int64)
    if landmark_index.min() < 0 or landmark_index.max() >= num_landmarks:
        raise InputError(
            f"{path}: landmark indices span {landmark_index.min()}..{landmark_index.max()}, "
            f"expected 0..{num_landmarks - 1}"
        )
    if vertex_index.min() < 0:
        raise InputError(f"{path}: negative vertex index {vertex_index.min()}")
    if len(np.unique(landmark_index)) != len(landmark_index):
        raise InputError(f"{path}: a landmark index appears in more than one pair")
    return landmark_index, vertex_index, parts


def landmark_vertices(
    model: FaceModel, scheme: Scheme, mapping_file: str | Path | None = None
) -> LandmarkMap:
    """The model vertices that the landmarks of ``scheme`` sit on.

    Args:
        model: the face model.
        scheme: ``ibug68``, ``hrnet98`` or ``mediapipe468``.
        mapping_file: optional JSON of ``{part: [[landmark, vertex], ...]}`` pairs for this scheme
            and this model's topology (MMFace4D's ``landmark_mapping2.json`` maps MediaPipe points
            to BFM-front vertices). Without it, the pairs come from the model's 68 iBUG landmarks
            (see the module doc for what each scheme covers).

    Returns:
        A :class:`LandmarkMap` of K pairs (68 without a mapping file).
    """
    size = _check_scheme(scheme)
    if mapping_file is not None:
        landmark_index, vertex_index, parts = read_landmark_mapping(mapping_file, size)
        if vertex_index.max() >= model.num_vertices:
            raise InputError(
                f"{mapping_file}: vertex indices reach {vertex_index.max()} but face model "
                f"{model.name!r} has {model.num_vertices} vertices; the file belongs to another "
                "topology (landmark_mapping2.json is for the BFM front face, 35,709 vertices)"
            )
        return LandmarkMap(scheme, landmark_index, vertex_index, parts, str(mapping_file))
    return LandmarkMap(
        scheme=scheme,
        landmark_index=_TO_IBUG68[scheme].copy(),
        vertex_index=np.asarray(model.landmarks, dtype=np.int64).copy(),
        parts={name: rows.astype(np.int64) for name, rows in IBUG68_PARTS.items()},
        source=f"{model.name} model landmarks (iBUG-68)",
    )

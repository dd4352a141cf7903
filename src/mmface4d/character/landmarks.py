"""Facial landmarks on a head mesh: a render seen by MediaPipe, lifted back onto the surface.

The head may come in any pose. Views are tried in a fixed order (looking along -z with +y up,
the project's and glTF's convention, first; then the other axis-aligned views that common tools
export, :data:`VIEWS`); a view is accepted when MediaPipe finds a face there whose landmarks,
lifted onto the mesh, make a plausible face facing the camera: at least 90% of the points land on
the surface, the eyes are 40-90 mm apart, and the face's own forward axis (from its 3D
landmarks, :func:`inner_frame`) points at the camera within 60 degrees, and at least half of
the triangles under the landmarks face the camera. The last rule rejects a face seen from
behind: through a face-only mask the renderer shows the hollow of the face, which reads as a
mirrored face whose forward axis points at the camera too (mirroring flips it twice), but whose
triangles face away.
The accepted view is then refined once: the mesh is rendered again from straight in front of the
face found, framed on the face, and detected again.

Lifting: each landmark's pixel is cast as a ray through the rasterized triangle under it (a
background pixel takes the nearest covered pixel within :data:`SEARCH_PIXELS`), and the point is
where the ray meets that triangle's plane, so positions are sub-pixel, as barycentrics on the
mesh. A landmark that lands nowhere is marked invalid.

The same detector run on the face model's own neutral gives the model's landmarks
(:func:`model_landmarks`), so both sides of a registration share the detector's conventions.
A user's landmark file (68 iBUG points or vertex indices) replaces detection
(:func:`read_landmark_file`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.landmark_maps import to_ibug68
from mmface4d.facemodel.regions import LEFT_EYE, OUTER_LIP, RIGHT_EYE
from mmface4d.render.camera import PinholeCamera
from mmface4d.render.rasterize import rasterize
from mmface4d.render.shade import render_preview

#: Candidate views, tried in order: (direction from the head to the camera, image up).
VIEWS: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = (
    ((0, 0, 1), (0, 1, 0)),  # y up, face +z (glTF, this project)
    ((0, -1, 0), (0, 0, 1)),  # z up, face -y (Blender, 3ds Max)
    ((0, 0, -1), (0, 1, 0)),
    ((0, 1, 0), (0, 0, 1)),
    ((1, 0, 0), (0, 1, 0)),
    ((-1, 0, 0), (0, 1, 0)),
    ((1, 0, 0), (0, 0, 1)),
    ((-1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (0, -1, 0)),
    ((0, 1, 0), (0, 0, -1)),
)
#: Image side of the detection renders, pixels.
IMAGE_SIZE = 512
#: A landmark on a background pixel takes the nearest covered pixel within this radius.
SEARCH_PIXELS = 4
#: Plausible inter-ocular distance (eye centre to eye centre), metres.
EYE_DISTANCE_M = (0.040, 0.090)
#: Largest angle between the face's forward axis and the direction to the camera, degrees.
MAX_VIEW_ANGLE = 60.0
#: Fraction of the landmarks that must land on the surface.
MIN_VALID = 0.9


@dataclass
class SurfaceLandmarks:
    """Landmarks as points on a mesh surface.

    Attributes:
        scheme: ``mediapipe468`` (detected) or ``ibug68`` (a landmark file).
        triangles: (K,) int64 triangle of each point (-1 where invalid).
        barycentrics: (K, 3) float64 weights of the triangle's corners.
        valid: (K,) bool, the points that landed on the surface.
        image: the (H, W, 3) uint8 render they were detected in (None for a file).
        pixels: (K, 2) their pixel positions in ``image`` (None for a file).
    """

    scheme: str
    triangles: np.ndarray
    barycentrics: np.ndarray
    valid: np.ndarray
    image: np.ndarray | None = None
    pixels: np.ndarray | None = None

    def positions(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(K, 3) positions on a mesh of the same topology (NaN where invalid)."""
        corners = np.asarray(vertices, dtype=np.float64)[faces[np.maximum(self.triangles, 0)]]
        points = np.einsum("kc,kcd->kd", self.barycentrics, corners)
        points[~self.valid] = np.nan
        return points

    def ibug68(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(68, 3) iBUG-68-equivalent positions."""
        points = self.positions(vertices, faces)
        return points if self.scheme == "ibug68" else to_ibug68(points, "mediapipe468")


def _camera(
    points: np.ndarray, toward: np.ndarray, up: np.ndarray, fill: float, size: int
) -> PinholeCamera:
    """A camera on ``toward`` from the points, looking back at them, framing them to ``fill``."""
    rotation = np.asarray(PinholeCamera.look_at(toward, np.zeros(3), up, width=2, height=2).R)
    local = points @ rotation.T  # right, down, forward (= -toward)
    centre = 0.5 * (local.min(0) + local.max(0))
    local = local - centre
    focal = 0.5 * size / np.tan(np.radians(20.0) / 2)
    needed = focal * np.abs(local[:, :2]).max(1) / (0.5 * fill * size) - local[:, 2]
    distance = max(float(needed.max()), float(-local[:, 2].min()) + 1e-6)
    target = rotation.T @ centre
    return PinholeCamera.look_at(target + toward * distance, target, up, width=size, height=size)


def _lift(
    camera: PinholeCamera, vertices: np.ndarray, faces: np.ndarray, pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangle, barycentrics and validity of the surface point under each pixel position."""
    verts = torch.as_tensor(vertices, dtype=torch.float32)
    depth = camera.world_to_camera(verts)[:, 2]
    near = max(float(depth.min()) * 0.5, 1e-4)
    far = float(depth.max()) * 2.0 + 1e-3
    clip = camera.to_clip(verts[None], near=near, far=far)
    ids = rasterize(clip, faces, (camera.height, camera.width)).triangle_id[0].numpy()
    covered = np.argwhere(ids >= 0)
    count = len(pixels)
    triangles = np.full(count, -1, dtype=np.int64)
    bary = np.zeros((count, 3))
    if len(covered) == 0:
        return triangles, bary, np.zeros(count, bool)
    rounded = np.rint(pixels).astype(np.int64)
    inside = (
        (rounded[:, 0] >= 0)
        & (rounded[:, 0] < camera.width)
        & (rounded[:, 1] >= 0)
        & (rounded[:, 1] < camera.height)
    )
    for k in np.flatnonzero(inside):
        u, v = rounded[k]
        tri = ids[v, u]
        if tri < 0:
            dist = np.abs(covered - [v, u]).max(1)
            nearest = int(dist.argmin())
            if dist[nearest] > SEARCH_PIXELS:
                continue
            tri = ids[tuple(covered[nearest])]
        triangles[k] = tri
    valid = triangles >= 0
    # Sub-pixel: intersect each landmark's ray with its triangle's plane.
    centre = camera.center
    rotation = np.asarray(camera.R)
    rays_cam = np.stack(
        [
            (pixels[:, 0] - camera.cx) / camera.fx,
            (pixels[:, 1] - camera.cy) / camera.fy,
            np.ones(count),
        ],
        1,
    )
    rays = rays_cam @ rotation  # camera -> world directions
    corners = np.asarray(vertices, dtype=np.float64)[faces[np.maximum(triangles, 0)]]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    denom = (normal * rays).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((normal * (corners[:, 0] - centre)).sum(1)) / denom
    hit = centre + t[:, None] * rays
    bary = _barycentrics(hit, corners)
    bad = ~np.isfinite(bary).all(1) | (np.abs(denom) < 1e-12)
    bary[bad] = 1.0 / 3.0
    # A ray that meets the plane outside the triangle (a background pixel's neighbour): clamp.
    bary = np.clip(bary, 0.0, None)
    bary /= bary.sum(1, keepdims=True)
    return triangles, bary, valid


def _barycentrics(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of points (N, 3) in the planes of triangles (N, 3, 3)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = d00 * d11 - d01 * d01
        w1 = (d11 * d20 - d01 * d21) / denom
        w2 = (d00 * d21 - d01 * d20) / denom
    return np.stack([1 - w1 - w2, w1, w2], 1)


def inner_frame(ibug: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(right, up, forward, eye distance) from the inner iBUG landmarks (17-67) alone.

    Like :func:`mmface4d.facemodel.regions.face_frame`, but the jaw contour (0-16), which sits
    on the silhouette in a front view and may miss the mesh, is not used: right runs from the
    right eye's centre to the left's, up from the mouth's centre to the eyes'.
    """
    eye_r, eye_l = np.nanmean(ibug[RIGHT_EYE], 0), np.nanmean(ibug[LEFT_EYE], 0)
    right = eye_l - eye_r
    eye_distance = float(np.linalg.norm(right))
    right = right / max(eye_distance, 1e-12)
    up = 0.5 * (eye_r + eye_l) - np.nanmean(ibug[OUTER_LIP], 0)
    up = up - up.dot(right) * right
    up = up / max(float(np.linalg.norm(up)), 1e-12)
    return right, up, np.cross(right, up), eye_distance


def _plausible(
    landmarks: SurfaceLandmarks, vertices: np.ndarray, faces: np.ndarray, toward: np.ndarray
) -> str | None:
    """None when the detection is a plausible face facing the camera, else why not."""
    if landmarks.valid.mean() < MIN_VALID:
        return f"only {landmarks.valid.mean():.0%} of the landmarks land on the mesh"
    ibug = landmarks.ibug68(vertices, faces)
    inner = np.isfinite(ibug[17:]).all(1)
    if inner.mean() < MIN_VALID or not all(
        np.isfinite(ibug[part]).all(1).any() for part in (RIGHT_EYE, LEFT_EYE, OUTER_LIP)
    ):
        return "eye, nose or mouth landmarks land off the mesh"
    _, _, forward, eye_distance = inner_frame(ibug)
    if not EYE_DISTANCE_M[0] <= eye_distance <= EYE_DISTANCE_M[1]:
        return f"the eyes are {eye_distance * 1000:.0f} mm apart"
    angle = np.degrees(np.arccos(np.clip(forward @ toward, -1, 1)))
    corners = vertices[faces[landmarks.triangles[landmarks.valid]]]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    facing = float(np.mean(normals @ toward > 0))
    if angle > MAX_VIEW_ANGLE or facing < 0.5:
        return (
            f"the face found looks {angle:.0f} degrees away and {1 - facing:.0%} of its surface "
            "faces away from the camera (a face seen from behind?)"
        )
    return None


def _detect_view(
    detector, vertices: np.ndarray, faces: np.ndarray, camera: PinholeCamera
) -> SurfaceLandmarks | None:
    image = render_preview(vertices.astype(np.float32), faces, camera=camera)
    found = detector.detect(image)
    if found is None:
        return None
    pixels = found.xy.astype(np.float64)
    triangles, bary, valid = _lift(camera, vertices, faces, pixels)
    return SurfaceLandmarks("mediapipe468", triangles, bary, valid, image, pixels)


def detect_landmarks(
    vertices: np.ndarray, faces: np.ndarray, name: str = "mesh", size: int = IMAGE_SIZE
) -> SurfaceLandmarks:
    """MediaPipe's 468 face-mesh landmarks on a head mesh in any axis-aligned pose.

    Args:
        vertices: (V, 3) positions in metres.
        faces: (F, 3) triangles.
        name: what to call the mesh in errors (its file name).
        size: image side of the renders.

    Raises:
        InputError: no view shows a plausible face (the reasons per view are listed).
    """
    from mmface4d.capture.landmarks import LandmarkDetector

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    reasons: list[str] = []
    with LandmarkDetector(mode="image") as detector:
        for toward, up in VIEWS:
            toward_v, up_v = np.asarray(toward, float), np.asarray(up, float)
            camera = _camera(vertices, toward_v, up_v, fill=0.8, size=size)
            found = _detect_view(detector, vertices, faces, camera)
            why = "no face found" if found is None else _plausible(found, vertices, faces, toward_v)
            if why is not None:
                reasons.append(f"view {toward} up {up}: {why}")
                continue
            refined = _refine(detector, vertices, faces, found, size)
            return refined if refined is not None else found
    raise InputError(
        f"{name}: no face found on the mesh (is it a face, seen from the front?); "
        + "; ".join(reasons[:3])
        + ("" if len(reasons) <= 3 else f"; and {len(reasons) - 3} more views")
    )


def _refine(
    detector, vertices: np.ndarray, faces: np.ndarray, found: SurfaceLandmarks, size: int
) -> SurfaceLandmarks | None:
    """Detect again from straight in front of the face found, framed on the face."""
    points = found.positions(vertices, faces)
    ibug = found.ibug68(vertices, faces)
    _, up, forward, _ = inner_frame(ibug)
    face_points = points[found.valid]
    camera = _camera(face_points, forward, up, fill=0.7, size=size)
    again = _detect_view(detector, vertices, faces, camera)
    if again is None or _plausible(again, vertices, faces, forward) is not None:
        return None
    return again


def model_landmarks(vertices: np.ndarray, faces: np.ndarray) -> SurfaceLandmarks:
    """The detector's landmarks on a face model's neutral (model frame: +z forward, +y up)."""
    return detect_landmarks(vertices, faces, name="the face model")


def read_landmark_file(path: str | Path, vertices: np.ndarray, scale: float) -> np.ndarray:
    """(68, 3) iBUG landmark positions (metres) from a user's file.

    The file is JSON: ``{"points": [[x, y, z], ...]}`` (68 positions in the mesh file's unit)
    or ``{"vertices": [i, ...]}`` (68 vertex indices, 0-based), or a text file of 68 rows of
    ``x y z`` or 68 integers.

    Args:
        path: the file.
        vertices: (V, 3) the head's vertices in metres (for indices).
        scale: metres per unit of the mesh file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if data is not None:
        if "vertices" in data:
            values = np.asarray(data["vertices"])
        elif "points" in data:
            values = np.asarray(data["points"], dtype=np.float64)
        else:
            raise InputError(f"{path}: expected a 'points' or 'vertices' key")
    else:
        try:
            values = np.loadtxt(path, ndmin=2)
        except ValueError as exc:
            raise InputError(f"{path}: expected 68 rows of 'x y z' or of a vertex index") from exc
        if values.shape[1] == 1:
            values = values[:, 0]
    if values.shape == (68,):
        if not np.allclose(values, np.round(values)):
            raise InputError(f"{path}: vertex indices must be integers")
        index = values.astype(np.int64)
        if index.min() < 0 or index.max() >= len(vertices):
            raise InputError(f"{path}: vertex indices must be in [0, {len(vertices) - 1}]")
        return np.asarray(vertices, dtype=np.float64)[index]
    if values.shape != (68, 3) or not np.isfinite(values).all():
        raise InputError(
            f"{path}: expected 68 iBUG landmarks (68 points x y z or 68 vertex indices), "
            f"found shape {values.shape}"
        )
    return values.astype(np.float64) * scale

"""Face point clouds from depth images, and point-to-plane ICP.

:func:`face_point_cloud` turns the face region of a depth image (e.g. the box of
:func:`landmark_box`) into camera-frame points with unit normals (:class:`PointCloud`), dropping
the background, flying pixels and silhouettes and averaging the depth noise away.
:func:`icp_point_to_plane` rigidly aligns such clouds, over several frames at once, with KD-tree
correspondences, a distance gate that tightens over the iterations and trimming
(:class:`IcpResult`). :mod:`mmface4d.capture.calibration` refines the cameras' extrinsics with
them.

Depth images are uint16 millimetres (0 = no measurement); points are metres in the camera frame
(OpenCV axes, as in :mod:`mmface4d.capture.cameras`); transforms are 4x4 rigid matrices.

Open3D was not added: a compact ICP on :class:`scipy.spatial.cKDTree` suffices. On studio
captures with the realistic depth noise (``benchmarks/bench_capture.py``; still and moving
heads, 960x540 and 1920x1080) the calibration recovers the side cameras within 0.2 degrees and
1.5 mm of the truth (results in ``benchmarks/results/capture.json``), and one camera's ICP over
ten frames takes a few seconds on one CPU core, small next to decoding the videos, so a large
binary dependency would buy nothing measurable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from mmface4d.capture.cameras import CameraCalibration
from mmface4d.errors import InputError
from mmface4d.geometry.frames import MM_PER_M

#: Fewest ICP correspondences per refinement step.
MIN_ICP_PAIRS = 100


# ---------------------------------------------------------------------- checks and transforms
def _check_depth(depth: Any, calibration: CameraCalibration, name: str = "depth") -> np.ndarray:
    depth = np.asarray(depth)
    size = (calibration.height, calibration.width)
    if depth.shape != size or depth.dtype != np.uint16:
        raise InputError(
            f"{name}: expected {size} uint16 millimetres, got {depth.shape} {depth.dtype}"
        )
    return depth


def _check_points(points: Any, width: int, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != width:
        raise InputError(f"{name}: expected (K, {width}), got {points.shape}")
    return points


def _to_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, translation
    return matrix


def _apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ transform[:3, :3].T + transform[:3, 3]


# ---------------------------------------------------------------------- point clouds
@dataclass(frozen=True)
class PointCloud:
    """Points with unit normals (oriented towards the camera that saw them).

    Attributes:
        points: (N, 3) metres.
        normals: (N, 3) unit vectors.
    """

    points: np.ndarray
    normals: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def landmark_box(
    points_2d: np.ndarray, margin: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The finite landmarks' bounding box grown by ``margin`` of its size per side.

    Args:
        points_2d: (K, 2) pixels (NaN rows ignored).
        margin: fraction of the box's width/height added on each side.
        size: (W, H) of the image (the box is clipped to it).

    Returns:
        (u0, v0, u1, v1) pixel bounds, end-exclusive.
    """
    points = _check_points(points_2d, 2, "points_2d")
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        raise InputError("landmark box: need at least 2 finite landmarks")
    low, high = points.min(axis=0), points.max(axis=0)
    grow = (high - low) * margin
    low, high = np.floor(low - grow), np.ceil(high + grow) + 1
    u0, v0 = (int(max(0, x)) for x in low)
    u1, v1 = int(min(size[0], high[0])), int(min(size[1], high[1]))
    if u1 <= u0 or v1 <= v0:
        raise InputError("landmark box: the landmarks lie outside the image")
    return u0, v0, u1, v1


def face_point_cloud(
    depth: np.ndarray,
    calibration: CameraCalibration,
    mask: np.ndarray | None = None,
    max_distance: float = 2.0,
    *,
    box: tuple[int, int, int, int] | None = None,
    face_depth: float | None = None,
    depth_band: float | None = 0.12,
    edge_jump: float = 0.02,
    normal_radius: float = 0.004,
    max_points: int = 10000,
    max_incidence: float | None = None,
    denoise_radius: float = 0.002,
    seed: int = 0,
) -> PointCloud:
    """The face region's depth pixels as camera-frame points with normals.

    Pixels are kept when they hold depth within ``max_distance``, lie in ``mask`` and ``box``,
    within ``depth_band`` of the face's depth (drops the background), and no pixel of their 3x3
    neighbourhood differs by more than ``max(edge_jump, 4 pixel footprints)`` (drops flying
    pixels and silhouettes). Normals are the cross product of the differences of image-space
    neighbours ``s`` pixels away (``s`` spans ``normal_radius`` on the face) on a box-filtered
    point map; pixels whose neighbours are not all kept get none and are dropped. The result is
    subsampled on a regular pixel grid (then at random, seeded) to at most ``max_points``.

    Args:
        depth: (H, W) uint16 millimetres.
        calibration: the camera.
        mask: optional (H, W) bool region (e.g. a face segmentation).
        max_distance: farthest depth kept, metres.
        box: optional (u0, v0, u1, v1) pixel bounds (see :func:`landmark_box`).
        face_depth: the face's depth in metres; None: the median kept depth in the region.
        depth_band: half-width of the kept depth band about ``face_depth``; None keeps all.
        edge_jump: depth step (metres) that marks a discontinuity.
        normal_radius: normal estimation scale on the surface, metres.
        max_points: most points returned.
        max_incidence: optional largest angle (degrees) between a point's normal and its view
            ray; points seen more obliquely (the noisiest) are dropped.
        denoise_radius: half-width (metres) of the box filter averaging the returned points
            (0: the raw pixels). Averaging the depth noise away lets ICP settle in a few
            iterations instead of wandering among noisy correspondences; a wide box would
            flatten curved parts (the nose) differently in each view.
        seed: seed of the random part of the subsampling.

    Returns:
        A :class:`PointCloud` (N may be 0).
    """
    depth = _check_depth(depth, calibration)
    height, width = depth.shape
    u0, v0, u1, v1 = (0, 0, width, height) if box is None else (int(x) for x in box)
    if not (0 <= u0 < u1 <= width and 0 <= v0 < v1 <= height):
        raise InputError(f"box: expected 0 <= u0 < u1 <= {width}, 0 <= v0 < v1 <= {height}")
    if int(max_points) < 1:
        raise InputError(f"max_points must be >= 1, got {max_points}")
    z = depth[v0:v1, u0:u1].astype(np.float64) / MM_PER_M
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != depth.shape:
            raise InputError(f"mask: expected {depth.shape}, got {mask.shape}")
        mask = mask[v0:v1, u0:u1].astype(bool)
    keep = _face_depth_pixels(z, mask, max_distance, face_depth, depth_band)
    if not keep.any():
        return PointCloud(np.zeros((0, 3)), np.zeros((0, 3)))
    footprint = float(np.median(z[keep])) / calibration.fx
    keep &= _away_from_edges(z, max(edge_jump, 4 * footprint))
    # the crop's point map, box-filtered (odd boxes: an even one would shift it half a pixel)
    cols, rows = np.meshgrid(np.arange(u0, u1), np.arange(v0, v1))
    rays, converged = calibration.pixel_rays(np.stack([cols.ravel(), rows.ravel()], axis=1))
    keep &= converged.reshape(keep.shape)
    points = rays.reshape(*keep.shape, 3) * np.where(keep, z, 0.0)[..., None]
    step = max(1, round(normal_radius / footprint))
    smooth = _box_mean(points, keep, 2 * math.ceil(step / 2) + 1)
    denoised = _box_mean(points, keep, 2 * round(denoise_radius / footprint) + 1)
    rr, cc = _subsample(_with_neighbours(keep, step), max_points, seed)
    return _oriented_points(smooth, denoised, rr, cc, step, max_incidence)


def _face_depth_pixels(
    z: np.ndarray,
    mask: np.ndarray | None,
    max_distance: float,
    face_depth: float | None,
    depth_band: float | None,
) -> np.ndarray:
    """(h, w) pixels of the depth crop ``z`` (metres) within ``max_distance``, in ``mask`` (the
    crop's) and within ``depth_band`` of the face's depth (see :func:`face_point_cloud`)."""
    keep = (z > 0) & (z <= max_distance)
    if mask is not None:
        keep &= mask
    if depth_band is not None and keep.any():
        centre = float(np.median(z[keep])) if face_depth is None else float(face_depth)
        keep &= np.abs(z - centre) <= depth_band
    return keep


def _away_from_edges(z: np.ndarray, jump: float) -> np.ndarray:
    """Pixels no 3x3 neighbour of which differs by more than ``jump`` metres; every reading, in
    or out of the face's band, can mark a discontinuity (flying pixels, silhouettes)."""
    measured = z > 0
    high = ndimage.maximum_filter(np.where(measured, z, -np.inf), size=3, mode="nearest")
    low = ndimage.minimum_filter(np.where(measured, z, np.inf), size=3, mode="nearest")
    return (high - z <= jump) & (z - low <= jump)


def _with_neighbours(keep: np.ndarray, step: int) -> np.ndarray:
    """Kept pixels whose four neighbours ``step`` pixels away are kept too (they get normals)."""
    has_normal = np.zeros_like(keep)
    has_normal[step:-step, step:-step] = (
        keep[step:-step, step:-step]
        & keep[step:-step, 2 * step :]
        & keep[step:-step, : -2 * step]
        & keep[2 * step :, step:-step]
        & keep[: -2 * step, step:-step]
    )
    return has_normal


def _subsample(selected: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, ...]:
    """(rows, cols) of at most ``max_points`` selected pixels: a regular grid, then at random."""
    rr, cc = np.nonzero(selected)
    if len(rr) > max_points:
        stride = max(1, math.floor(math.sqrt(len(rr) / max_points)))
        on_grid = (rr % stride == 0) & (cc % stride == 0)
        rr, cc = rr[on_grid], cc[on_grid]
    if len(rr) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(rr), max_points, replace=False))
        rr, cc = rr[pick], cc[pick]
    return rr, cc


def _oriented_points(
    smooth: np.ndarray,
    denoised: np.ndarray,
    rr: np.ndarray,
    cc: np.ndarray,
    step: int,
    max_incidence: float | None,
) -> PointCloud:
    """The points at pixels (rr, cc) of ``denoised`` with the normals of ``smooth`` there,
    turned towards the camera; those seen more obliquely than ``max_incidence`` dropped."""
    along_u = smooth[rr, cc + step] - smooth[rr, cc - step]
    along_v = smooth[rr + step, cc] - smooth[rr - step, cc]
    normals = np.cross(along_u, along_v)
    length = np.linalg.norm(normals, axis=1)
    ok = length > 0
    selected = denoised[rr[ok], cc[ok]]
    normals = normals[ok] / length[ok, None]
    normals *= -np.sign((normals * selected).sum(axis=1, keepdims=True) + 1e-300)  # face camera
    if max_incidence is not None:
        cos = -(normals * selected).sum(axis=1) / np.linalg.norm(selected, axis=1)
        facing = cos >= math.cos(math.radians(max_incidence))
        selected, normals = selected[facing], normals[facing]
    return PointCloud(selected, normals)


def _box_mean(points: np.ndarray, keep: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) mean of the kept points in a ``size`` x ``size`` box around each pixel."""
    if size <= 1:
        return points
    weight = ndimage.uniform_filter(keep.astype(np.float64), size=size, mode="constant")
    total = [ndimage.uniform_filter(points[..., k], size=size, mode="constant") for k in range(3)]
    return np.stack(total, axis=-1) / np.maximum(weight, 1e-12)[..., None]


# ---------------------------------------------------------------------- ICP
@dataclass(frozen=True)
class IcpResult:
    """Outcome of :func:`icp_point_to_plane`.

    Attributes:
        transform: (4, 4) target-from-source rigid transform, metres.
        rmse: root-mean-square point-to-plane residual of the final inlier pairs, metres.
        inliers: number of correspondences kept at the end (gated and trimmed).
        iterations: iterations run.
        converged: whether the update fell below the tolerance before ``iterations`` ran out.
    """

    transform: np.ndarray
    rmse: float
    inliers: int
    iterations: int
    converged: bool


def _frames_of(value: Any, name: str) -> list[np.ndarray]:
    arrays = [value] if isinstance(value, np.ndarray) and value.ndim == 2 else list(value)
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    for array in out:
        if array.ndim != 2 or array.shape[1] != 3 or not np.isfinite(array).all():
            raise InputError(f"{name}: expected finite (N, 3) points, got {array.shape}")
    return out


def icp_point_to_plane(
    source: np.ndarray | Sequence[np.ndarray],
    target: np.ndarray | Sequence[np.ndarray],
    target_normals: np.ndarray | Sequence[np.ndarray],
    init: np.ndarray | None = None,
    iterations: int = 30,
    max_correspondence: float = 0.02,
    *,
    min_correspondence: float = 0.005,
    gate_decay: float = 0.75,
    trim: float = 0.9,
    tolerance: tuple[float, float] = (1e-5, 1e-5),
) -> IcpResult:
    """Rigidly align ``source`` onto ``target`` by point-to-plane ICP.

    Several frames may be given as lists (source frame ``t`` is matched only with target frame
    ``t``: the face moves between frames); their equations are solved together. Each iteration
    matches every transformed source point with its nearest target point (``cKDTree``) within a
    gate that starts at ``max_correspondence`` and shrinks by ``gate_decay`` per iteration down
    to ``min_correspondence``, keeps the ``trim`` fraction of the closest pairs, and solves the
    linearised point-to-plane least squares ``min sum (n . (p + w x (p - c) + d - q))^2`` over a
    small rotation ``w`` about the pairs' centroid ``c`` and a translation ``d`` (6x6 normal
    equations), applied as an exact rotation. It stops when the gate has reached its floor and
    the update is below ``tolerance`` (radians, metres).

    Args:
        source: (N, 3) points, or a list of per-frame (N_t, 3).
        target: (M, 3) points, or a list of per-frame (M_t, 3).
        target_normals: unit normals of ``target``, same shapes.
        init: (4, 4) initial target-from-source transform (identity if None).
        iterations: most iterations.
        max_correspondence: first gate, metres.
        min_correspondence: the gate's floor, metres.
        gate_decay: the gate's factor per iteration.
        trim: fraction of the gated pairs kept.
        tolerance: (radians, metres) update below which it has converged.

    Returns:
        An :class:`IcpResult`; ``inliers`` below a hundred means the clouds barely overlap.
    """
    sources = _frames_of(source, "source")
    targets = _frames_of(target, "target")
    normals = _frames_of(target_normals, "target_normals")
    if len(sources) != len(targets) or len(targets) != len(normals):
        raise InputError(
            f"icp: {len(sources)} source, {len(targets)} target and {len(normals)} normal frames"
        )
    for frame, (points, n) in enumerate(zip(targets, normals, strict=True)):
        if points.shape != n.shape:
            raise InputError(f"icp frame {frame}: target {points.shape} vs normals {n.shape}")
    transform = np.eye(4) if init is None else np.array(init, dtype=np.float64)
    if transform.shape != (4, 4):
        raise InputError(f"init: expected (4, 4), got {transform.shape}")
    if not 0 < trim <= 1 or not 0 < gate_decay <= 1 or min_correspondence <= 0:
        raise InputError("icp: expected 0 < trim <= 1, 0 < gate_decay <= 1, min gate > 0")
    trees = [cKDTree(points) if len(points) else None for points in targets]
    frames = list(zip(sources, trees, targets, normals, strict=True))
    gate, converged, done = float(max_correspondence), False, 0
    while done < int(iterations):
        done += 1
        p, q, n, _ = _matched_pairs(frames, transform, gate, trim)
        if len(p) < MIN_ICP_PAIRS:
            break
        solved = _point_to_plane_step(p, q, n)
        if solved is None:
            break
        step, x = solved
        transform = step @ transform
        at_floor = gate <= min_correspondence
        gate = max(min_correspondence, gate * gate_decay)
        if (
            at_floor
            and np.linalg.norm(x[:3]) < tolerance[0]
            and np.linalg.norm(x[3:]) < tolerance[1]
        ):
            converged = True
            break
    p, q, n, _ = _matched_pairs(frames, transform, gate, trim)
    rmse = float(np.sqrt(np.mean(((p - q) * n).sum(axis=1) ** 2))) if len(p) else math.nan
    return IcpResult(transform, rmse, len(p), done, converged)


def _matched_pairs(
    frames: list[tuple[np.ndarray, cKDTree | None, np.ndarray, np.ndarray]],
    matrix: np.ndarray,
    limit: float,
    trim: float,
) -> tuple[np.ndarray, ...]:
    """(p, q, n, d): the source points moved by ``matrix``, their nearest target points within
    ``limit`` (frame by frame), the targets' normals and the distances; the ``trim`` fraction
    of the closest pairs."""
    moved, matched, along, dist = [], [], [], []
    for points, tree, target_points, target_n in frames:
        if tree is None or not len(points):
            continue
        p = _apply(matrix, points)
        d, index = tree.query(p, distance_upper_bound=limit)
        ok = np.isfinite(d)
        moved.append(p[ok])
        matched.append(target_points[index[ok]])
        along.append(target_n[index[ok]])
        dist.append(d[ok])
    if not moved:
        return (np.zeros((0, 3)),) * 3 + (np.zeros(0),)
    p, q, n, d = (np.concatenate(x) for x in (moved, matched, along, dist))
    if trim < 1 and len(d):
        kept = np.argsort(d, kind="stable")[: max(1, math.ceil(trim * len(d)))]
        p, q, n, d = p[kept], q[kept], n[kept], d[kept]
    return p, q, n, d


def _point_to_plane_step(
    p: np.ndarray, q: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The linearised point-to-plane update: the (4, 4) step (an exact rotation about the pairs'
    centroid, then the translation) and the solution (w, d); None when the pairs lie on a
    plane or a line (the pose is not determined)."""
    centre = p.mean(axis=0)
    a = np.concatenate([np.cross(p - centre, n), n], axis=1)
    b = -((p - q) * n).sum(axis=1)
    normal_matrix = a.T @ a
    if np.linalg.cond(normal_matrix) > 1e12:
        return None
    x = np.linalg.solve(normal_matrix, a.T @ b)
    rotation = Rotation.from_rotvec(x[:3]).as_matrix()
    return _to_matrix(rotation, centre - rotation @ centre + x[3:]), x

"""Extrinsic calibration of a multi-camera RGB-D rig from the face it films.

As in the MMFace4D paper, the side cameras' poses relative to the centre (reference) camera come
from the face itself, in two steps, each over several frames stacked together:

1. **Initialisation from landmarks.** Each camera's 68 iBUG landmarks (the dataset's HRNet-98
   files, or MediaPipe detections) are lifted to 3D with that camera's depth
   (:func:`lift_landmarks`); pairs of one landmark index seen by the reference and a side camera
   are aligned rigidly (:func:`initial_extrinsics`: Kabsch via
   :func:`~mmface4d.geometry.align.fit_similarity`, with RANSAC-style outlier rejection, because
   contour landmarks are silhouette points that differ between views and hidden landmarks lift
   onto the wrong surface).
2. **Refinement by point-to-plane ICP**
   (:func:`~mmface4d.capture.icp.icp_point_to_plane`) of the side camera's face point cloud onto
   the reference camera's (:func:`~mmface4d.capture.icp.face_point_cloud`) and the reverse, the
   two poses averaged, with KD-tree correspondences and a distance gate that tightens over the
   iterations.

:func:`calibrate` chooses the frames of a recording by head pose
(:mod:`mmface4d.capture.calibration_frames`): frames of one pose leave ICP's weak directions as
weak as one frame does. The result and its JSON file are in
:mod:`mmface4d.capture.calibration_io`.

Extrinsics are reference-from-camera 4x4 matrices in metres (``p_reference = E @ p_camera``), as
in :mod:`mmface4d.capture.cameras`; the reference camera's is the identity. The point clouds and
the ICP live in :mod:`mmface4d.capture.icp`, which also gives the accuracy and speed on studio
captures (and why Open3D was not added).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy.spatial.transform import Rotation

from mmface4d.capture.calibration_frames import select_frames, spread_frames
from mmface4d.capture.calibration_io import CalibrationResult, CameraExtrinsics, FrameFailure
from mmface4d.capture.calibration_io import load_calibration as load_calibration  # re-exported
from mmface4d.capture.calibration_io import save_calibration as save_calibration  # re-exported
from mmface4d.capture.cameras import CameraCalibration
from mmface4d.capture.icp import (
    MIN_ICP_PAIRS,
    IcpResult,
    PointCloud,
    _apply,
    _check_depth,
    _check_points,
    _to_matrix,
    face_point_cloud,
    icp_point_to_plane,
    landmark_box,
)
from mmface4d.capture.landmarks import FrameLandmarks
from mmface4d.errors import InputError
from mmface4d.geometry.align import fit_similarity
from mmface4d.geometry.frames import MM_PER_M

if TYPE_CHECKING:
    from mmface4d.capture.capture import Capture

LandmarkSource = Literal["auto", "file", "detect"]
#: Fewest landmark pairs (after outlier rejection) an initialisation is trusted with.
MIN_LANDMARK_PAIRS = 6


@dataclass(frozen=True)
class CalibrationConfig:
    """Parameters of :func:`calibrate_frames` (defaults suit faces at 0.5-1 m, any resolution)."""

    landmark_window_px: int = 2
    """Half-size of the depth window sampled around each landmark (2 -> 5x5 pixels)."""
    landmark_depth_tolerance_m: float = 0.01
    """A landmark's depth is refused unless most of its window lies within this of the median."""
    ransac_threshold_m: float = 0.02
    """RANSAC: distance within which a landmark pair supports a 3-pair hypothesis."""
    ransac_samples: int = 256
    """RANSAC: number of random 3-pair hypotheses."""
    outlier_factor: float = 2.5
    """Refit: a pair is an outlier beyond this many times the median inlier residual (for
    Gaussian noise the norm of a 3D error exceeds 2.5 medians with probability ~0.2%)..."""
    outlier_floor_m: float = 0.005
    """...but never below this distance."""
    box_margin: float = 0.2
    """Face region: the landmarks' bounding box grown by this fraction of its size per side."""
    depth_band_m: float = 0.12
    """Face region: keep depths within this of the face's median depth (drops the background)."""
    max_distance_m: float = 2.0
    """Ignore depth readings farther than this from the camera."""
    edge_jump_m: float = 0.02
    """Drop pixels next to a depth step larger than this (flying pixels, silhouettes)."""
    normal_radius_m: float = 0.004
    """Normals: half-spacing of the image-space neighbours differenced, metres on the face."""
    denoise_radius_m: float = 0.002
    """Points: half-width of the box filter that averages the depth noise, metres."""
    max_points: int = 10000
    """Most points per camera and frame (the depth grid is subsampled)."""
    max_incidence_degrees: float | None = 75.0
    """Drop points seen at a larger angle between view ray and normal (noisy grazing depth).
    Not lower: the steep sides of the face (cheeks, nose) are what pins down a turn about the
    head's vertical axis, the direction ICP on a face constrains least."""
    icp_iterations: int = 50
    """Most ICP iterations (from a landmark initialisation it usually converges in 10-30)."""
    icp_max_correspondence_m: float = 0.02
    """ICP: correspondence gate of the first iteration..."""
    icp_min_correspondence_m: float = 0.005
    """...shrunk by ``icp_gate_decay`` per iteration down to this."""
    icp_gate_decay: float = 0.75
    """ICP: gate factor per iteration."""
    icp_trim: float = 1.0
    """ICP: fraction of the gated correspondences kept (the closest). Below 1, trimming by
    distance prefers the pairs whose depth noise happens to agree with the current pose, which
    holds ICP back near its start (the gate alone already drops the non-overlapping parts)."""
    symmetric_icp: bool = True
    """Also align the reference camera's cloud onto the camera's and average the two poses:
    each direction's bias from the target's sampling, normals and boundary is partly undone by
    the other's."""
    max_refinement_degrees: float = 5.0
    """ICP results that turn farther than this from the landmark initialisation are refused..."""
    max_refinement_m: float = 0.03
    """...or move the face (the centroid of the camera's points) farther than this, metres (the
    initialisation is kept and the failure recorded)."""


# ---------------------------------------------------------------------- landmarks
def lift_landmarks(
    points_2d: np.ndarray,
    depth: np.ndarray,
    calibration: CameraCalibration,
    window: int = 2,
    tolerance_m: float = 0.01,
    band_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project 2D landmarks with a robust depth sample.

    Each landmark takes the median of the valid depths in a ``(2 window + 1)^2`` window around
    its pixel; it is invalid when it is not finite, lies outside the image, fewer than a third of
    the window holds depth, or fewer than 70% of those depths lie within ``tolerance_m`` of the
    median (the window straddles a depth edge: silhouette or flying pixels), or, with
    ``band_m``, its depth lies farther than that from the median depth of the valid landmarks
    (a contour landmark that lifts onto the background).

    Args:
        points_2d: (K, 2) pixels (u, v); NaN for a missing landmark.
        depth: (H, W) uint16 millimetres in this camera's pixels (0 = no measurement).
        calibration: the camera (its rays undo lens distortion).
        window: half-size of the depth window in pixels.
        tolerance_m: agreement required within the window, metres.
        band_m: optional half-width of the depth band about the landmarks' median, metres.

    Returns:
        (K, 3) camera-frame points in metres (NaN where invalid) and a (K,) bool validity mask.
    """
    points = _check_points(points_2d, 2, "points_2d")
    depth = _check_depth(depth, calibration)
    if int(window) < 0:
        raise InputError(f"window must be >= 0, got {window}")
    window = int(window)
    finite = np.isfinite(points).all(axis=1)
    pixel = np.round(np.where(finite[:, None], points, -1e9)).astype(np.int64)
    height, width = depth.shape
    inside = (
        finite
        & (pixel[:, 0] >= 0)
        & (pixel[:, 0] < width)
        & (pixel[:, 1] >= 0)
        & (pixel[:, 1] < height)
    )
    offsets = np.arange(-window, window + 1)
    rows = pixel[:, 1, None, None] + offsets[None, :, None]
    cols = pixel[:, 0, None, None] + offsets[None, None, :]
    in_image = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    samples = depth[np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)]
    samples = np.where(in_image & (samples > 0), samples / MM_PER_M, np.nan).reshape(
        len(points), -1
    )
    count = np.isfinite(samples).sum(axis=1)
    enough = inside & (count * 3 >= samples.shape[1]) & (count > 0)
    z = np.full(len(points), np.nan)
    if enough.any():
        z[enough] = np.nanmedian(samples[enough], axis=1)
    with np.errstate(invalid="ignore"):
        agree = (np.abs(samples - z[:, None]) <= tolerance_m).sum(axis=1)
    valid = enough & (agree >= 0.7 * count)
    rays, converged = calibration.pixel_rays(np.where(finite[:, None], points, 0.0))
    valid &= converged
    if band_m is not None and valid.any():
        valid &= np.abs(z - np.median(z[valid])) <= band_m
    lifted = np.where(valid[:, None], rays * z[:, None], np.nan)
    return lifted, valid


@dataclass(frozen=True)
class LandmarkAlignment:
    """The rigid fit of one camera's lifted landmarks onto the reference camera's.

    Attributes:
        transform: (4, 4) reference-from-camera, metres.
        inliers: (N,) bool over the valid pairs given (after outlier rejection).
        rmse_m: root-mean-square 3D distance of the inlier pairs after the fit, metres.
        pairs: number of valid pairs given.
    """

    transform: np.ndarray
    inliers: np.ndarray
    rmse_m: float
    pairs: int


def align_landmarks(
    landmarks_ref: np.ndarray,
    landmarks_cam: np.ndarray,
    config: CalibrationConfig | None = None,
    seed: int = 0,
) -> LandmarkAlignment:
    """Rigidly align lifted landmarks of a camera onto the reference camera's, robustly.

    Pairs are rows with the same index (landmark, and frame when stacked) that are finite in both.
    Outlier rejection: RANSAC over ``config.ransac_samples`` random 3-pair hypotheses keeps the
    largest set of pairs within ``config.ransac_threshold_m`` (2 cm); then the fit is repeated
    on the current inliers and the inliers re-chosen as the pairs within ``max(outlier_floor_m,
    outlier_factor * median inlier residual)`` (5 mm, 2.5x) until they no longer change.

    Args:
        landmarks_ref: (K, 3) or (T, K, 3) reference-camera points, metres, NaN = invalid.
        landmarks_cam: the same shape, this camera's points.
        config: thresholds (defaults of :class:`CalibrationConfig`).
        seed: seed of the RANSAC sampling (the result is deterministic).

    Raises:
        InputError: mismatched shapes, or fewer than 6 pairs (before or after rejection).
    """
    config = config or CalibrationConfig()
    ref = np.asarray(landmarks_ref, dtype=np.float64)
    cam = np.asarray(landmarks_cam, dtype=np.float64)
    if ref.shape != cam.shape or ref.ndim not in (2, 3) or ref.shape[-1] != 3:
        raise InputError(
            f"landmarks: expected two (K, 3) or (T, K, 3) arrays of one shape, got {ref.shape} "
            f"and {cam.shape}"
        )
    ref, cam = ref.reshape(-1, 3), cam.reshape(-1, 3)
    both = np.isfinite(ref).all(axis=1) & np.isfinite(cam).all(axis=1)
    ref, cam = ref[both], cam[both]
    if len(ref) < MIN_LANDMARK_PAIRS:
        raise InputError(f"landmarks: {len(ref)} valid pairs, need at least {MIN_LANDMARK_PAIRS}")
    rng = np.random.default_rng(seed)
    best, best_score = np.ones(len(ref), dtype=bool), (-1, 0.0)
    for _ in range(int(config.ransac_samples)):
        pick = rng.choice(len(ref), 3, replace=False)
        a, b, c = cam[pick]
        if np.linalg.norm(np.cross(b - a, c - a)) < 1e-4:  # (1 cm)^2: near-collinear sample
            continue
        fit = fit_similarity(cam[pick], ref[pick])
        residual = np.linalg.norm(fit.apply(cam) - ref, axis=1)
        inliers = residual <= config.ransac_threshold_m
        score = (int(inliers.sum()), -float(residual[inliers].sum()))
        if score > best_score:
            best, best_score = inliers, score
    inliers = best
    for _ in range(50):
        if inliers.sum() < MIN_LANDMARK_PAIRS:
            raise InputError(
                f"landmarks: only {int(inliers.sum())} of {len(ref)} pairs agree on one rigid "
                f"motion, need at least {MIN_LANDMARK_PAIRS}"
            )
        fit = fit_similarity(cam[inliers], ref[inliers])
        residual = np.linalg.norm(fit.apply(cam) - ref, axis=1)
        limit = max(config.outlier_floor_m, config.outlier_factor * np.median(residual[inliers]))
        updated = residual <= limit
        if np.array_equal(updated, inliers):
            break
        inliers = updated
    rmse = float(np.sqrt(np.mean(residual[inliers] ** 2)))
    return LandmarkAlignment(_to_matrix(fit.rotation, fit.translation), inliers, rmse, len(ref))


def initial_extrinsics(
    landmarks_ref: np.ndarray,
    landmarks_cam: np.ndarray,
    config: CalibrationConfig | None = None,
) -> np.ndarray:
    """(4, 4) reference-from-camera transform from lifted landmarks (one or stacked frames):
    the ``transform`` of :func:`align_landmarks`, which documents the outlier rejection.

    Args:
        landmarks_ref: (K, 3) or (T, K, 3) reference-camera points, metres, NaN = invalid.
        landmarks_cam: the same shape, the other camera's points.
    """
    return align_landmarks(landmarks_ref, landmarks_cam, config).transform


# ---------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class PoseError:
    """Difference of two reference-from-camera poses.

    Attributes:
        rotation_degrees: angle of the relative rotation.
        translation_m: distance between the camera centres, metres.
    """

    rotation_degrees: float
    translation_m: float


def pose_error(estimated: np.ndarray, true: np.ndarray) -> PoseError:
    """Rotation angle and camera-centre distance between two (4, 4) reference-from-camera poses."""
    estimated, true = np.asarray(estimated, np.float64), np.asarray(true, np.float64)
    if estimated.shape != (4, 4) or true.shape != (4, 4):
        raise InputError(f"poses: expected (4, 4), got {estimated.shape} and {true.shape}")
    cos = (np.trace(estimated[:3, :3].T @ true[:3, :3]) - 1) / 2
    angle = math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))
    return PoseError(angle, float(np.linalg.norm(estimated[:3, 3] - true[:3, 3])))


def _frame_cloud(
    depth: np.ndarray,
    calibration: CameraCalibration,
    points_2d: np.ndarray,
    lifted: np.ndarray,
    config: CalibrationConfig,
) -> PointCloud:
    box = landmark_box(points_2d, config.box_margin, (calibration.width, calibration.height))
    valid_z = lifted[np.isfinite(lifted).all(axis=1), 2]
    return face_point_cloud(
        depth,
        calibration,
        None,
        config.max_distance_m,
        box=box,
        face_depth=float(np.median(valid_z)),
        depth_band=config.depth_band_m,
        edge_jump=config.edge_jump_m,
        normal_radius=config.normal_radius_m,
        max_points=config.max_points,
        max_incidence=config.max_incidence_degrees,
        denoise_radius=config.denoise_radius_m,
    )


def _icp(
    initial: np.ndarray, pairs: list[tuple[PointCloud, PointCloud]], config: CalibrationConfig
) -> tuple[IcpResult, str]:
    """ICP of (source, target) cloud pairs from ``initial``, and why its result is refused ("" when
    it is accepted: enough correspondences, close enough to ``initial``)."""
    icp = icp_point_to_plane(
        [s.points for s, _ in pairs],
        [t.points for _, t in pairs],
        [t.normals for _, t in pairs],
        initial,
        config.icp_iterations,
        config.icp_max_correspondence_m,
        min_correspondence=config.icp_min_correspondence_m,
        gate_decay=config.icp_gate_decay,
        trim=config.icp_trim,
    )
    turned = pose_error(icp.transform, initial).rotation_degrees
    face = np.concatenate([s.points for s, _ in pairs]).mean(axis=0)
    moved = float(np.linalg.norm(_apply(icp.transform, face) - _apply(initial, face)))
    if icp.inliers < MIN_ICP_PAIRS:
        return icp, f"{icp.inliers} correspondences"
    if turned > config.max_refinement_degrees:
        return icp, f"turned {turned:.2f} degrees from the landmark fit"
    if moved > config.max_refinement_m:
        return icp, f"moved the face {moved * MM_PER_M:.1f} mm from the landmark fit"
    return icp, ""


def _mean_pose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (4, 4) rigid transform halfway between two: mean rotation, mean translation."""
    rotation = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])).mean().as_matrix()
    return _to_matrix(rotation, (a[:3, 3] + b[:3, 3]) / 2)


def _refine(
    initial: np.ndarray, pairs: list[tuple[PointCloud, PointCloud]], config: CalibrationConfig
) -> tuple[np.ndarray, IcpResult | None, str]:
    """ICP of (camera, reference) cloud pairs from ``initial``: the transform to keep, the ICP
    result, and why the refinement was refused ("" when it was accepted).

    With ``config.symmetric_icp`` the reference clouds are also aligned onto the camera's (from
    the inverse of ``initial``) and, when that result is accepted too, the two poses averaged.
    """
    if not pairs:
        return initial, None, "no frame with both face point clouds"
    icp, reason = _icp(initial, pairs, config)
    if reason:
        return initial, icp, f"refinement refused: {reason}"
    if not config.symmetric_icp:
        return icp.transform, icp, ""
    back, back_reason = _icp(np.linalg.inv(initial), [(r, s) for s, r in pairs], config)
    if back_reason:
        return icp.transform, icp, ""
    return _mean_pose(icp.transform, np.linalg.inv(back.transform)), icp, ""


def _check_frames(
    cameras: int,
    depths: Sequence[Sequence[np.ndarray]],
    landmarks: Sequence[Sequence[np.ndarray | None]],
    reference: int,
    frame_indices: Sequence[int] | None,
) -> tuple[int, ...]:
    """The frames' indices, after checking that the inputs agree with each other."""
    if not 0 <= reference < cameras:
        raise InputError(f"reference: expected 0..{cameras - 1}, got {reference}")
    if len(depths) == 0 or len(depths) != len(landmarks):
        raise InputError(
            f"expected depth and landmarks for T >= 1 frames, got {len(depths)} and "
            f"{len(landmarks)}"
        )
    indices = tuple(range(len(depths))) if frame_indices is None else tuple(frame_indices)
    if len(indices) != len(depths):
        raise InputError(f"frame_indices: expected {len(depths)}, got {len(indices)}")
    return indices


def _lift_view(
    frame: int,
    c: int,
    calibration: CameraCalibration,
    depth: np.ndarray,
    points: np.ndarray | None,
    config: CalibrationConfig,
    failures: list[FrameFailure],
) -> tuple[np.ndarray | None, PointCloud | None]:
    """One camera's view of one frame: its (68, 3) lifted landmarks and its face point cloud,
    each None (with the reason appended to ``failures``) when it cannot be used."""
    if points is not None:
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (68, 2):
            raise InputError(
                f"frame {frame} camera {c}: expected (68, 2) landmarks, got {points.shape}"
            )
    found = 0 if points is None else int(np.isfinite(points).all(axis=1).sum())
    if found < MIN_LANDMARK_PAIRS:
        failures.append(FrameFailure(frame, c, "landmarks", f"{found} landmarks found"))
        return None, None
    xyz, valid = lift_landmarks(
        points,
        depth,
        calibration,
        config.landmark_window_px,
        config.landmark_depth_tolerance_m,
        config.depth_band_m,
    )
    if valid.sum() < MIN_LANDMARK_PAIRS:
        failures.append(FrameFailure(frame, c, "depth", f"{int(valid.sum())} landmarks have depth"))
        return None, None
    cloud = _frame_cloud(depth, calibration, points, xyz, config)
    if len(cloud) < MIN_ICP_PAIRS:
        failures.append(FrameFailure(frame, c, "point cloud", f"{len(cloud)} face points"))
        return xyz, None
    return xyz, cloud


def _lift_frames(
    calibrations: Sequence[CameraCalibration],
    depths: Sequence[Sequence[np.ndarray]],
    landmarks: Sequence[Sequence[np.ndarray | None]],
    indices: tuple[int, ...],
    config: CalibrationConfig,
    failures: list[FrameFailure],
) -> tuple[np.ndarray, list[list[PointCloud | None]]]:
    """(T, C, 68, 3) lifted landmarks (NaN where missing) and per frame, per camera, the face
    point cloud or None."""
    cameras = len(calibrations)
    lifted = np.full((len(depths), cameras, 68, 3), np.nan)
    clouds: list[list[PointCloud | None]] = []
    for t, (frame, frame_depths, frame_points) in enumerate(
        zip(indices, depths, landmarks, strict=True)
    ):
        if len(frame_depths) != cameras or len(frame_points) != cameras:
            raise InputError(f"frame {frame}: expected depth and landmarks of {cameras} cameras")
        clouds.append([None] * cameras)
        for c, calibration in enumerate(calibrations):
            xyz, clouds[t][c] = _lift_view(
                frame, c, calibration, frame_depths[c], frame_points[c], config, failures
            )
            if xyz is not None:
                lifted[t, c] = xyz
    return lifted, clouds


def _side_camera(
    c: int,
    reference: int,
    lifted: np.ndarray,
    clouds: list[list[PointCloud | None]],
    indices: tuple[int, ...],
    config: CalibrationConfig,
    failures: list[FrameFailure],
) -> CameraExtrinsics:
    """Camera ``c`` relative to the reference: the landmark fit, refined by ICP when accepted."""
    try:
        alignment = align_landmarks(lifted[:, reference], lifted[:, c], config)
    except InputError as exc:
        raise InputError(f"camera {c}: no landmark initialisation ({exc})") from None
    pairs = [(f[c], f[reference]) for f in clouds if f[c] is not None and f[reference] is not None]
    final, icp, reason = _refine(alignment.transform, pairs, config)
    if reason:
        failures.append(FrameFailure(-1, c, "icp", reason))
    ref_points, cam_points = lifted[:, reference].reshape(-1, 3), lifted[:, c].reshape(-1, 3)
    both = np.isfinite(ref_points).all(axis=1) & np.isfinite(cam_points).all(axis=1)
    kept_ref, kept_cam = ref_points[both][alignment.inliers], cam_points[both][alignment.inliers]
    refined_rmse = np.sqrt(np.mean(np.sum((_apply(final, kept_cam) - kept_ref) ** 2, axis=1)))
    seen = np.isfinite(lifted[..., 0][:, [c, reference]]).any(axis=2).all(axis=1)
    return CameraExtrinsics(
        camera=c,
        extrinsics=final,
        initial=alignment.transform,
        refined=not reason,
        landmark_pairs=alignment.pairs,
        landmark_inliers=int(alignment.inliers.sum()),
        landmark_rmse_m=alignment.rmse_m,
        landmark_rmse_refined_m=float(refined_rmse),
        icp_rmse_m=icp.rmse if icp else math.nan,
        icp_inliers=icp.inliers if icp else 0,
        icp_iterations=icp.iterations if icp else 0,
        frames=tuple(i for i, ok in zip(indices, seen, strict=True) if ok),
    )


def calibrate_frames(
    calibrations: Sequence[CameraCalibration],
    depths: Sequence[Sequence[np.ndarray]],
    landmarks: Sequence[Sequence[np.ndarray | None]],
    reference: int = 1,
    frame_indices: Sequence[int] | None = None,
    config: CalibrationConfig | None = None,
    landmark_source: str = "given",
) -> CalibrationResult:
    """Calibrate from frames already in memory (what :func:`calibrate` does after reading).

    Args:
        calibrations: C cameras (intrinsics used; extrinsics ignored).
        depths: per frame, C (H, W) uint16 millimetre images.
        landmarks: per frame, C (68, 2) iBUG-68 pixel arrays (NaN rows = missing) or None
            (no face found).
        reference: position of the reference camera.
        frame_indices: the frames' indices, for the record (default 0..T-1).
        config: parameters.
        landmark_source: recorded in the result.

    Raises:
        InputError: mismatched inputs, or a camera no frame of which could be used.
    """
    config = config or CalibrationConfig()
    indices = _check_frames(len(calibrations), depths, landmarks, reference, frame_indices)
    failures: list[FrameFailure] = []
    lifted, clouds = _lift_frames(calibrations, depths, landmarks, indices, config, failures)
    results = [
        CameraExtrinsics(c, np.eye(4), np.eye(4), frames=indices)
        if c == reference
        else _side_camera(c, reference, lifted, clouds, indices, config, failures)
        for c in range(len(calibrations))
    ]
    return CalibrationResult(reference, tuple(results), indices, landmark_source, tuple(failures))


def calibrate(
    capture: Capture,
    frames: int | Sequence[int] = 10,
    landmarks: LandmarkSource = "auto",
    config: CalibrationConfig | None = None,
) -> CalibrationResult:
    """Calibrate a capture's cameras relative to its reference (centre) camera.

    Reads the chosen frames in one pass over the recording; per frame and camera, takes the 68
    iBUG landmarks (from the dataset's HRNet-98 ``.pkl`` files, or detected with MediaPipe on
    the colour image), lifts them with the depth, initialises each side camera by the robust
    rigid fit of its landmarks to the reference camera's (all frames stacked), and refines it by
    point-to-plane ICP of the face point clouds (all frames together). Frames where a camera
    finds no face, too little depth or too few points are recorded in ``failures``.

    Which frames, given a count: with landmark files, those of the most varied head pose and
    expression among the frames where every camera's file holds all landmarks
    (:func:`~mmface4d.capture.calibration_frames.select_frames` on the reference camera's
    landmarks: frames of one pose add no constraint, see its module); with detection, frames
    spread evenly over the recording (:func:`~mmface4d.capture.calibration_frames.spread_frames`).

    Args:
        capture: the recording (:meth:`Capture.from_raw` or :meth:`Capture.from_mkv`).
        frames: how many frames (chosen as above), or their indices.
        landmarks: ``file`` (the dataset's landmark files, required), ``detect`` (MediaPipe,
            extra ``mediapipe``) or ``auto`` (files when every camera has one, else detection).
        config: parameters.

    Raises:
        InputError: bad arguments, missing landmark files with ``landmarks="file"``, or a
            camera that no frame could calibrate.
    """
    total = len(capture)
    with FrameLandmarks(capture, landmarks, detector_mode="image") as source:
        marks = source.stacked(total) if source.mode == "file" else None
        if isinstance(frames, int | np.integer) and not isinstance(frames, bool):
            if frames < 1:
                raise InputError(
                    f"frames: expected a positive count or frame indices, got {frames}"
                )
            if marks is None:
                chosen = spread_frames(total, int(frames))
            else:
                usable = np.isfinite(marks).all(axis=(1, 2, 3))
                chosen = select_frames(marks[:, capture.reference_camera], int(frames), usable)
        else:
            chosen = sorted({int(i) for i in frames})
            if not chosen or chosen[0] < 0 or chosen[-1] >= total:
                raise InputError(f"frames: expected indices in 0..{total - 1}, got {list(frames)}")
        depths, points = [], []
        for frame in capture.frames(chosen[0], chosen[-1] + 1):
            if frame.index in chosen:
                depths.append([np.array(z) for z in frame.depth])
                points.append(source(frame.index, frame.colour))
        landmarks = source.mode
    return calibrate_frames(
        capture.calibrations, depths, points, capture.reference_camera, chosen, config, landmarks
    )

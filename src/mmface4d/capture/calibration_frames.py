"""Which frames of a recording to calibrate from.

Frames that all show the same head pose add little geometric constraint: ICP over a nearly
static face keeps much of the bias of that one view of it (a slide along the face's weakly
constrained directions, chiefly a turn about the vertical axis through the head), however many
such frames are stacked. :func:`select_frames` therefore prefers frames of different head poses,
estimated from a signal that costs nothing to read: the reference camera's landmarks (the
dataset's HRNet-98 files); where the pose does not vary it spreads the frames over the
recording, as :func:`spread_frames` does, the fallback without landmark files (landmarks
detected on the colour images would have to be detected on every candidate frame first).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mmface4d.errors import InputError
from mmface4d.geometry.frames import M_PER_MM

#: A generic face's rigid iBUG-68 landmarks (nose 27-35, eye corners 36, 39, 42, 45) in camera
#: axes (x right, y down, z away from the camera), metres, centred: the synth face model's mean.
RIGID_LANDMARKS = (*range(27, 36), 36, 39, 42, 45)
RIGID_TEMPLATE = M_PER_MM * np.array(
    [[0.0, -25.6, 1.4], [0.0, -12.9, -4.0], [0.0, 1.3, -12.7], [0.0, 14.1, -21.5],
     [-12.4, 21.7, -10.2], [-6.1, 23.3, -11.2], [0.0, 23.3, -12.8], [6.1, 23.3, -11.2],
     [12.4, 21.7, -10.2], [-45.7, -22.4, 32.0], [-17.8, -22.7, 14.3], [17.8, -22.7, 14.3],
     [45.7, -22.4, 32.0]]
)  # fmt: skip
#: Frames of the temporal median filter that removes the detector's frame-to-frame jitter from
#: the head rotations (0.23 s at 30 fps; also outvotes a glitch of up to 3 frames).
SMOOTHING_FRAMES = 7
#: A frame whose head rotation lies farther than this many times the median from its temporal
#: median, and at least :data:`GLITCH_FLOOR_DEGREES`, is a detection glitch, never chosen.
GLITCH_FACTOR = 4.0
GLITCH_FLOOR_DEGREES = 2.0
#: Head-pose difference, degrees, that counts as much as the gap between frames spread evenly.
POSE_STEP_DEGREES = 3.0


def spread_frames(count: int, frames: int) -> list[int]:
    """``frames`` indices spread evenly over ``count`` frames (centres of equal segments)."""
    if count < 1 or frames < 1:
        raise InputError(
            f"need at least one frame to choose from and to choose, got {count}, {frames}"
        )
    frames = min(frames, count)
    return sorted({int((i + 0.5) * count / frames) for i in range(frames)})


def head_rotations(landmarks: np.ndarray) -> Rotation:
    """Head orientation per frame from 2D landmarks, by a weak-perspective fit of a generic face.

    The rigid landmarks (:data:`RIGID_LANDMARKS`: nose and eye corners, which expressions barely
    move) are fitted with :data:`RIGID_TEMPLATE` under an affine camera; the nearest scaled
    rotation gives the orientation. Absolute angles are only as good as the generic face, but
    the differences between frames of one person are what frame selection needs.

    Args:
        landmarks: (T, 68, 2) iBUG-68 pixels, all finite.

    Returns:
        T rotations (template to head, camera axes), one :class:`~scipy.spatial.transform.Rotation`.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2) or not np.isfinite(points).all():
        raise InputError(f"landmarks: expected finite (T, 68, 2) pixels, got {points.shape}")
    rigid = points[:, list(RIGID_LANDMARKS)]
    rigid = rigid - rigid.mean(axis=1, keepdims=True)
    # x ~ X M^T for each frame: M^T = pinv(X) x, (3, 2)
    affine = np.einsum("ik,tkj->tji", np.linalg.pinv(RIGID_TEMPLATE), rigid)  # (T, 2, 3)
    u, _, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt  # (T, 2, 3), orthonormal rows: the first two rows of the rotation
    matrices = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
    return Rotation.from_matrix(matrices)


def select_frames(
    landmarks: np.ndarray,
    count: int,
    usable: np.ndarray | None = None,
) -> list[int]:
    """``count`` frames of varied head pose, spread over time where the pose does not vary.

    The rule:

    1. Candidates are the frames whose landmarks are all finite (and that ``usable`` allows);
       when there are ``count`` or fewer, they are all chosen, and when there are none the
       frames are spread evenly (:func:`spread_frames`).
    2. Each candidate's head rotation is estimated from its rigid landmarks
       (:func:`head_rotations`) and smoothed over time by a running median of
       :data:`SMOOTHING_FRAMES` candidates (per frame, the detector's jitter is worth a few
       degrees).
    3. Glitches are dropped: candidates whose rotation lies farther than :data:`GLITCH_FACTOR`
       times the median (and :data:`GLITCH_FLOOR_DEGREES`) from their smoothed one (a
       misdetection would otherwise look like the most varied frame of all).
    4. Farthest-point sampling picks the frames under the distance ``sqrt((angle /
       POSE_STEP_DEGREES)^2 + (gap * count / T)^2)`` between two frames (``angle``: their
       smoothed head rotations' difference in degrees, ``gap``: their distance in frames): first
       the one nearest the mean, then repeatedly the candidate farthest from every frame chosen
       so far (ties: the earliest). A still head thus gets frames spread over the recording; a
       head that turns gets the turned poses.

    Expression is not a criterion: on studio recordings of a speaking face whose head stays
    still, choosing the most varied expressions (farthest-point sampling on the landmark
    shapes) was no better than spreading the frames evenly; the mouth's changes do not pin down
    the face's weak directions.

    Args:
        landmarks: (T, 68, 2) the reference camera's iBUG-68 pixels, NaN for a missing one.
        count: N, how many frames to choose.
        usable: optional (T,) bool, frames that may be chosen (e.g. where every camera has
            landmarks).

    Returns:
        N (fewer when fewer are usable) sorted frame indices.

    Raises:
        InputError: malformed ``landmarks`` or ``usable``, or ``count`` < 1.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2) or len(points) == 0:
        raise InputError(f"landmarks: expected (T >= 1, 68, 2) pixels, got {points.shape}")
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise InputError(f"count: expected a positive integer, got {count}")
    count = int(count)
    candidates = np.isfinite(points).all(axis=(1, 2))
    if usable is not None:
        usable = np.asarray(usable)
        if usable.shape != (len(points),) or usable.dtype != bool:
            raise InputError(f"usable: expected ({len(points)},) bool, got {usable.shape}")
        candidates &= usable
    index = np.flatnonzero(candidates)
    if len(index) == 0:
        return spread_frames(len(points), count)
    if len(index) <= count:
        return index.tolist()
    rotvecs = head_rotations(points[index]).as_rotvec(degrees=True)
    window = (min(SMOOTHING_FRAMES, len(index)), 1)
    smooth = ndimage.median_filter(rotvecs, size=window, mode="nearest")
    jitter = np.linalg.norm(rotvecs - smooth, axis=1)
    steady = jitter <= max(GLITCH_FACTOR * float(np.median(jitter)), GLITCH_FLOOR_DEGREES)
    if steady.sum() > count:
        index, smooth = index[steady], smooth[steady]
    pose = Rotation.from_rotvec(smooth, degrees=True).as_quat()
    time = index * (count / len(points))

    def distance(frame: int) -> np.ndarray:
        angle = 2 * np.degrees(np.arccos(np.clip(np.abs(pose @ pose[frame]), 0.0, 1.0)))
        return (angle / POSE_STEP_DEGREES) ** 2 + (time - time[frame]) ** 2

    mean_pose = Rotation.from_quat(pose).mean().as_quat()
    nearest = 2 * np.degrees(np.arccos(np.clip(np.abs(pose @ mean_pose), 0.0, 1.0)))
    chosen = [int(np.argmin((nearest / POSE_STEP_DEGREES) ** 2 + (time - time.mean()) ** 2))]
    far = np.full(len(index), np.inf)
    while True:
        far = np.minimum(far, distance(chosen[-1]))
        far[chosen[-1]] = -1.0  # never twice, even among identical frames
        if len(chosen) == count:
            break
        chosen.append(int(np.argmax(far)))
    return sorted(int(index[i]) for i in chosen)

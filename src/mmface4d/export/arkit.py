"""ARKit-52 blendshape weights: the basis of a face model, a bounded solver, Live Link Face CSV.

Real-time engines and Audio2Face-style services exchange face animation as 52 ARKit blendshape
weights per frame. This module turns vertex animation into such weights and writes them in the
CSV layout of Epic's Live Link Face app, which Unreal's importers and many tools read.

Letters: T frames, V vertices, K blendshape targets.

Live Link Face CSV layout (as exported by the app, checked against several open readers of it):

- a header row ``Timecode,BlendShapeCount,`` then the 52 blendshapes in Live Link Face order and
  PascalCase spelling (``EyeBlinkLeft, ..., JawForward, JawRight, JawLeft, ...``; note that
  ``JawRight`` precedes ``JawLeft`` and ``MouthRight`` precedes ``MouthLeft``, unlike Apple's
  list), then 9 rotation columns ``HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch,
  LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll``;
- one row per frame; ``BlendShapeCount`` is 61 (52 shapes + 9 rotations); weights in [0, 1];
  the rotation columns are written as 0 (the animation has no head or eye rotation);
- ``Timecode`` is ``HH:MM:SS:FF.fff``: hours, minutes, seconds, then the frame number ``FF``
  counted at the integer timecode rate ``R = round(fps)`` (non-drop-frame) and the sub-frame
  fraction to three decimals. Frame ``i`` sits at ``t = i / fps`` seconds, i.e. at frame
  position ``t * R`` of the timecode; at an integer fps the sub-frame is always ``.000``, at
  29.97 fps it drifts by ``.001`` per frame, as in files recorded by the app.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52, canonical_arkit_name
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.checks import check_vertices

#: The 52 blendshape columns of a Live Link Face CSV, in the app's order and spelling.
LIVE_LINK_FACE_SHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawRight", "JawLeft", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
)  # fmt: skip

#: The head and eye rotation columns that follow the blendshapes (written as 0).
LIVE_LINK_FACE_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip

_CANONICAL_BY_LOWER = {name.lower(): name for name in ARKIT_52}
_CHUNK_FRAMES = 256  # frames per block when touching (T, V, 3) arrays in float64


@dataclass
class ArkitBasis:
    """The ARKit-named expression targets of a face model.

    Attributes:
        targets: (K, V, 3) float32 vertex offsets, one per ARKit name.
        names: K canonical ARKit names, in :data:`ARKIT_52` order.
        components: for each target, the model's expression component indices summed into it
            (two for a source that splits a shape into halves, e.g. ``browInnerUp_L/_R``).
    """

    targets: np.ndarray
    names: list[str]
    components: list[tuple[int, ...]]


@dataclass
class ArkitSolve:
    """Per-frame blendshape weights fitted to vertex offsets.

    Attributes:
        weights: (T, K) float32 weights in [0, 1].
        residual_rms: (T,) float32 root-mean-square over vertices of the length of the
            unweighted residual ``o_v - sum_k w_k b_kv``, metres.
        fallback_frames: number of frames the fast solver handed to scipy's solver.
    """

    weights: np.ndarray
    residual_rms: np.ndarray
    fallback_frames: int = 0


class ArkitCsv(NamedTuple):
    """A Live Link Face CSV read back (a tuple: ``weights, names, fps = read_arkit_csv(p)``).

    Attributes:
        weights: (T, 52) float32 weights in :data:`ARKIT_52` order.
        names: the 52 canonical ARKit names (:data:`ARKIT_52`).
        fps: frames per second.
    """

    weights: np.ndarray
    names: list[str]
    fps: float


def arkit_basis(model: FaceModel, min_targets: int = 20) -> ArkitBasis | None:
    """Collect a face model's ARKit-named expression components as a blendshape basis.

    Components whose names map to the same canonical ARKit name (a source's left and right
    halves of ``browInnerUp``) are summed, matching :func:`arkit_to_model_weights`, which gives
    both the same weight.

    Args:
        model: the face model; its ``expression_names`` are matched with
            :func:`canonical_arkit_name`.
        min_targets: fewest distinct ARKit names for the model to count as ARKit-rigged.

    Returns:
        The basis with K <= 52 targets in :data:`ARKIT_52` order, or None when the model has
        fewer than ``min_targets`` ARKit-named components (a PCA model such as BFM).
    """
    groups: dict[str, list[int]] = {}
    for k, name in enumerate(model.expression_names):
        canonical = canonical_arkit_name(name)
        if canonical is not None:
            groups.setdefault(canonical, []).append(k)
    if len(groups) < min_targets:
        return None
    names = [name for name in ARKIT_52 if name in groups]
    basis = model.expression_basis
    targets = np.stack([basis[groups[name]].sum(axis=0) for name in names]).astype(np.float32)
    return ArkitBasis(targets, names, [tuple(groups[name]) for name in names])


def _check_offsets_basis(
    offsets: np.ndarray, basis: np.ndarray, vertex_weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    offsets = check_vertices(offsets, "offsets")
    basis = np.asarray(basis)
    if basis.ndim != 3 or basis.shape[1:] != offsets.shape[1:] or basis.shape[0] == 0:
        raise InputError(
            f"basis must be (K, {offsets.shape[1]}, 3) to match the offsets, got {basis.shape}"
        )
    if not np.isfinite(basis).all():
        raise InputError("basis contains NaN or infinite values")
    if vertex_weights is not None:
        vertex_weights = np.asarray(vertex_weights, dtype=np.float64)
        if vertex_weights.shape != (offsets.shape[1],):
            raise InputError(
                f"vertex_weights must be ({offsets.shape[1]},), got {vertex_weights.shape}"
            )
        if not np.isfinite(vertex_weights).all() or (vertex_weights < 0).any():
            raise InputError("vertex_weights must be finite and >= 0")
        if not (vertex_weights > 0).any():
            raise InputError("vertex_weights are all zero")
    return offsets, basis, vertex_weights


def _box_qp_active_set(
    gram: np.ndarray, rhs: np.ndarray, max_iter: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Primal-dual active-set solver of ``min w.G.w/2 - h.w, 0 <= w <= 1``, many problems at once.

    Args:
        gram: (K, K) symmetric positive definite G.
        rhs: (T, K) one h per problem.
        max_iter: most active-set updates.

    Returns:
        (T, K) solutions clipped to [0, 1] and (T,) bool: True where the active sets settled.
    """
    import scipy.linalg  # scipy loads here, not with the module (animate imports it for blinks)

    T, K = rhs.shape
    step = 1.0 / np.diag(gram)
    w = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram), rhs.T).T  # unconstrained
    lower, upper = w <= 0.0, w >= 1.0
    settled = np.zeros(T, dtype=bool)
    todo = np.ones(T, dtype=bool)
    eye = np.eye(K, dtype=bool)
    for _ in range(max_iter):
        free = ~(lower[todo] | upper[todo])
        fixed_values = upper[todo].astype(np.float64)
        # free rows: G_II w_I = h_I - G_IA w_A; active rows: identity, value at the bound
        system = np.where(free[:, :, None] & free[:, None, :], gram, 0.0)
        system[~free[:, :, None] & eye] = 1.0
        b = np.where(free, rhs[todo] - fixed_values @ gram, fixed_values)
        w[todo] = np.linalg.solve(system, b[..., None])[..., 0]
        z = w[todo] - step * (w[todo] @ gram - rhs[todo])  # a bound stays while its
        new_lower, new_upper = z <= 0.0, z >= 1.0  # multiplier has the right sign
        changed = (new_lower != lower[todo]).any(1) | (new_upper != upper[todo]).any(1)
        index = np.flatnonzero(todo)
        settled[index[~changed]] = True
        lower[index], upper[index] = new_lower, new_upper
        todo[index[~changed]] = False
        if not todo.any():
            break
    return np.clip(w, 0.0, 1.0), settled


def _kkt_ok(gram: np.ndarray, rhs: np.ndarray, w: np.ndarray, tol: float) -> np.ndarray:
    """(T,) True where ``w`` satisfies the box-QP optimality conditions to ``tol``."""
    grad = w @ gram - rhs
    at_lower, at_upper = w <= 0.0, w >= 1.0
    ok = np.where(at_lower, grad >= -tol, np.where(at_upper, grad <= tol, np.abs(grad) <= tol))
    return ok.all(axis=1)


def solve_arkit_weights(
    offsets: np.ndarray,
    basis: np.ndarray,
    vertex_weights: np.ndarray | None = None,
) -> ArkitSolve:
    """Fit blendshape weights in [0, 1] to vertex offsets, frame by frame.

    Solves ``min_w sum_v m_v |sum_k w_k b_kv - o_v|^2`` subject to ``0 <= w <= 1`` for every
    frame. The (T, V, 3) data is touched once, to form ``G = B^T M B`` (K x K) and
    ``h_t = B^T M o_t``; each frame is then a K-dimensional box-constrained quadratic problem,
    solved for all frames together by a primal-dual active-set method with batched K x K solves
    (a tiny ridge, 1e-10 of G's mean diagonal, keeps rank-deficient bases solvable). Frames
    where the active set does not settle or the optimality check fails are re-solved with
    :func:`scipy.optimize.lsq_linear` on the reduced system ``L^T w ~ L^-1 h`` (``G = L L^T``),
    which has the same minimiser as the full problem.

    Args:
        offsets: (T, V, 3) vertex offsets from the neutral face, metres.
        basis: (K, V, 3) blendshape targets (offsets at weight 1).
        vertex_weights: (V,) optional non-negative per-vertex importance ``m_v`` (default 1).

    Returns:
        :class:`ArkitSolve` with (T, K) weights and the (T,) residual RMS in metres.
    """
    offsets, basis, vertex_weights = _check_offsets_basis(offsets, basis, vertex_weights)
    return ArkitSolver(basis, vertex_weights).solve(offsets)


class ArkitSolver:
    """:func:`solve_arkit_weights` for one basis, called again and again (a stream's frames):
    the basis's K x K Gram matrix is formed once.

    Args:
        basis: (K, V, 3) blendshape targets (offsets at weight 1).
        vertex_weights: (V,) optional non-negative per-vertex importance (default 1).
    """

    def __init__(self, basis: np.ndarray, vertex_weights: np.ndarray | None = None):
        basis = np.asarray(basis)
        _check_offsets_basis(np.zeros((1, *basis.shape[1:]), np.float32), basis, vertex_weights)
        K, V, _ = basis.shape
        self.num_vertices = V
        self.flat_basis = flat_basis = basis.reshape(K, V * 3).astype(np.float64)
        weighted_basis = flat_basis
        if vertex_weights is not None:
            weights = np.asarray(vertex_weights, dtype=np.float64)
            weighted_basis = flat_basis * np.repeat(weights, 3)[None, :]
        self.weighted_basis = weighted_basis
        gram = weighted_basis @ flat_basis.T
        gram = 0.5 * (gram + gram.T)
        gram[np.diag_indices(K)] += 1e-10 * max(float(np.trace(gram)) / K, 1e-30)
        self.gram = gram

    def solve(self, offsets: np.ndarray) -> ArkitSolve:
        """(T, K) weights of (T, V, 3) offsets (see :func:`solve_arkit_weights`)."""
        offsets = check_vertices(offsets, "offsets")
        T, V, _ = offsets.shape
        if V != self.num_vertices:
            raise InputError(f"offsets: expected (T, {self.num_vertices}, 3), got {offsets.shape}")
        gram, weighted_basis, flat_basis = self.gram, self.weighted_basis, self.flat_basis
        K = len(gram)
        rhs = np.empty((T, K), dtype=np.float64)
        flat_offsets = offsets.reshape(T, V * 3)
        for start in range(0, T, _CHUNK_FRAMES):
            chunk = flat_offsets[start : start + _CHUNK_FRAMES].astype(np.float64)
            rhs[start : start + _CHUNK_FRAMES] = chunk @ weighted_basis.T

        weights = np.empty((T, K), dtype=np.float64)
        settled = np.empty(T, dtype=bool)
        for start in range(0, T, 1024):
            block = slice(start, start + 1024)
            weights[block], settled[block] = _box_qp_active_set(gram, rhs[block])
        tol = 1e-9 * float(np.abs(gram).max()) + 1e-12 * float(np.abs(rhs).max(initial=0.0))
        retry = np.flatnonzero(~settled | ~_kkt_ok(gram, rhs, weights, tol))
        if len(retry):
            import scipy.linalg
            import scipy.optimize

            chol = np.linalg.cholesky(gram)  # G = L L^T
            reduced_targets = scipy.linalg.solve_triangular(chol, rhs[retry].T, lower=True).T
            for row, t in enumerate(retry):
                fit = scipy.optimize.lsq_linear(
                    chol.T, reduced_targets[row], bounds=(0.0, 1.0), method="bvls", tol=1e-12
                )
                weights[t] = np.clip(fit.x, 0.0, 1.0)

        residual_rms = np.empty(T, dtype=np.float64)
        for start in range(0, T, _CHUNK_FRAMES):
            block = slice(start, start + _CHUNK_FRAMES)
            residual = flat_offsets[block].astype(np.float64) - weights[block] @ flat_basis
            residual_rms[block] = np.sqrt(np.square(residual).sum(axis=1) / V)
        return ArkitSolve(weights.astype(np.float32), residual_rms.astype(np.float32), len(retry))


def _format_timecode(frame: int, fps: float) -> str:
    rate = round(fps)
    position = frame * rate / fps  # frame position at the timecode rate
    whole_seconds, in_second = divmod(position, rate)
    frames = math.floor(in_second)
    sub = round((in_second - frames) * 1000)
    if sub == 1000:  # the fraction rounded up to the next frame
        frames, sub = frames + 1, 0
        if frames == rate:
            whole_seconds, frames = whole_seconds + 1, 0
    minutes, seconds = divmod(int(whole_seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}.{sub:03d}"


def _parse_timecode(text: str, path: Path, row: int) -> tuple[int, float]:
    """``HH:MM:SS:FF[.fff]`` -> (whole seconds, frame position within the second)."""
    parts = text.strip().split(":")
    try:
        if len(parts) != 4:
            raise ValueError
        hours, minutes, seconds = (int(p) for p in parts[:3])
        frame_position = float(parts[3])
    except ValueError:
        raise InputError(
            f"{path}: row {row}: Timecode {text!r} is not HH:MM:SS:FF or HH:MM:SS:FF.fff"
        ) from None
    return hours * 3600 + minutes * 60 + seconds, frame_position


def write_arkit_csv(path: str | Path, weights: np.ndarray, names: list[str], fps: float) -> Path:
    """Write per-frame ARKit weights as a Live Link Face CSV (layout in the module docstring).

    Args:
        path: output ``.csv`` path, written atomically.
        weights: (T, K) weights in [0, 1].
        names: K ARKit names in any source spelling (``eyeBlink_L``, ``eyeBlinkLeft``); each
            canonical name at most once. ARKit shapes not among them are written as 0.
        fps: frame rate of the weights, >= 1.

    Returns:
        ``path``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[0] == 0 or weights.shape[1] != len(names):
        raise InputError(
            f"weights must be (T, {len(names)}) to match the names, got {weights.shape}"
        )
    with ArkitCsvWriter(path, names, fps) as writer:
        writer.write(weights)
    return Path(path)


class ArkitCsvWriter:
    """A Live Link Face CSV written as the frames come (a stream, a long file), under a
    temporary name renamed when the ``with`` block ends without an error.

    Args:
        path: output ``.csv`` path.
        names: K ARKit names of the weights' columns (see :func:`write_arkit_csv`).
        fps: frame rate, >= 1.
    """

    def __init__(self, path: str | Path, names: list[str], fps: float):
        if not (math.isfinite(fps) and fps >= 1):
            raise InputError(f"fps must be a number >= 1, got {fps}")
        column_of = {name.lower(): k for k, name in enumerate(LIVE_LINK_FACE_SHAPES)}
        order = np.full(len(LIVE_LINK_FACE_SHAPES), -1)
        for k, name in enumerate(names):
            canonical = canonical_arkit_name(name)
            if canonical is None:
                raise InputError(f"names: {name!r} is not an ARKit blendshape name")
            column = column_of[canonical.lower()]
            if order[column] >= 0:
                raise InputError(f"names: {name!r} repeats ARKit shape {canonical!r}")
            order[column] = k
        self.path, self.fps, self.count, self._order = Path(path), fps, len(names), order
        self.frames = 0
        self._file: Any = None
        self._atomic: Any = None

    def __enter__(self) -> ArkitCsvWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._file = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        header = ",".join(("Timecode", "BlendShapeCount") + LIVE_LINK_FACE_SHAPES)
        self._file.write(header + "," + ",".join(LIVE_LINK_FACE_ROTATIONS) + "\n")
        return self

    def write(self, weights: np.ndarray) -> None:
        """Append (n, K) weights in [0, 1], the next n frames."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != self.count:
            raise InputError(
                f"weights must be (T, {self.count}) to match the names, got {weights.shape}"
            )
        if not np.isfinite(weights).all():
            raise InputError("weights contain NaN or infinite values")
        if len(weights) and (weights.min() < -1e-6 or weights.max() > 1 + 1e-6):
            raise InputError(
                f"ARKit weights must lie in [0, 1], got [{weights.min():.4g}, {weights.max():.4g}]"
            )
        order = self._order
        table = np.zeros((weights.shape[0], len(LIVE_LINK_FACE_SHAPES)))
        table[:, order >= 0] = np.clip(weights[:, order[order >= 0]], 0.0, 1.0)
        count = len(LIVE_LINK_FACE_SHAPES) + len(LIVE_LINK_FACE_ROTATIONS)
        rotations = ",".join(["0"] * len(LIVE_LINK_FACE_ROTATIONS))
        lines = []
        for t, row in enumerate(table, start=self.frames):
            values = ",".join(f"{v:.7f}" for v in row)
            lines.append(f"{_format_timecode(t, self.fps)},{count},{values},{rotations}\n")
        self._file.write("".join(lines))
        self.frames += len(table)

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self._file.close()
        if error is None and self.frames == 0:
            error = InputError("weights must be (T, K) with T >= 1, got no frames")
            self._atomic.__exit__(type(error), error, None)
            raise error
        self._atomic.__exit__(kind, error, trace)


def read_arkit_csv(path: str | Path, fps: float | None = None) -> ArkitCsv:
    """Read a Live Link Face CSV (this module's or the app's) back into ARKit weights.

    Columns are matched by name, case-insensitively, so files with or without the rotation
    columns, or in another column order, read the same; missing ARKit columns read as 0.

    The frame rate comes from the timecodes: the timecode rate ``R`` is one more than the
    largest ``FF`` seen, which needs the clip to cross a second boundary; for a clip shorter
    than that pass ``fps``. The returned fps is ``R`` over the mean spacing of the rows in
    timecode frames (29.97 for a 29.97 fps file with R = 30).

    Args:
        path: the ``.csv`` file.
        fps: the frame rate, when known; required for clips shorter than one second.

    Returns:
        :class:`ArkitCsv` ``(weights (T, 52), names, fps)``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ARKit CSV file")
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header row and at least one frame row")
    header = [cell.strip() for cell in rows[0]]
    if not header or header[0].lower() != "timecode":
        raise InputError(f"{path}: first column must be Timecode, got {header[:1]}")
    columns = {}
    for c, name in enumerate(header):
        canonical = _CANONICAL_BY_LOWER.get(name.lower())
        if canonical is not None:
            columns[ARKIT_52.index(canonical)] = c
    if not columns:
        raise InputError(f"{path}: no ARKit blendshape columns (e.g. EyeBlinkLeft) in the header")
    weights = np.zeros((len(rows) - 1, len(ARKIT_52)), dtype=np.float32)
    seconds = np.empty(len(rows) - 1, dtype=np.int64)
    positions = np.empty(len(rows) - 1, dtype=np.float64)
    for r, row in enumerate(rows[1:]):
        if len(row) < len(header):
            raise InputError(f"{path}: row {r + 2} has {len(row)} cells, expected {len(header)}")
        seconds[r], positions[r] = _parse_timecode(row[0], path, r + 2)
        try:
            for k, c in columns.items():
                weights[r, k] = float(row[c])
        except ValueError:
            raise InputError(f"{path}: row {r + 2}: a blendshape value is not a number") from None
    if fps is not None:
        if not (math.isfinite(fps) and fps >= 1):
            raise InputError(f"fps must be a number >= 1, got {fps}")
        return ArkitCsv(weights, list(ARKIT_52), float(fps))
    if len(weights) < 2 or seconds[-1] == seconds[0]:
        raise InputError(
            f"{path}: the clip does not cross a second boundary, so its timecode rate is "
            "unknown; pass fps"
        )
    rate = int(math.floor(positions.max())) + 1
    frame_positions = (seconds - seconds[0]) * rate + positions
    spacing = (frame_positions[-1] - frame_positions[0]) / (len(frame_positions) - 1)
    if spacing <= 0:
        raise InputError(f"{path}: timecodes do not increase")
    estimate = rate / spacing
    return ArkitCsv(
        weights, list(ARKIT_52), float(rate if abs(estimate - rate) < 1e-6 else estimate)
    )

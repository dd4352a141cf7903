"""Pinhole cameras in the OpenCV convention, their clip-space projection and the MMFace4D JSON.

Camera frame: x right, y down, z forward (into the scene). Extrinsics map world to camera:
``p_cam = R @ p_world + t``. Pixel coordinates follow OpenCV: the centre of pixel column ``i``
is ``u = i`` (so an ideal centred principal point is ``cx = (W - 1) / 2``); the rasterizer samples
exactly those centres (see :mod:`mmface4d.render.rasterize`).

Face models use x = subject's left, y = up, z = out of the face, so a camera in front of the face
sits at +z looking towards -z with ``R = diag(1, -1, -1)`` (:meth:`PinholeCamera.look_at`,
:func:`frame_mesh`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

VIEWS = ("front", "three-quarter")
#: Rotation of the ``three-quarter`` view about the vertical axis, towards the subject's left.
THREE_QUARTER_DEGREES = 32.0
_JSON_KNOWN = ("intrinsic_matrix", "width", "height")


def _as_points(points: torch.Tensor | np.ndarray) -> torch.Tensor:
    points = torch.as_tensor(points)
    if points.dim() not in (2, 3) or points.shape[-1] != 3:
        raise InputError(f"points must be (N, 3) or (B, N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.float()
    return points


@dataclass
class PinholeCamera:
    """A pinhole camera: intrinsics in pixels, world-to-camera extrinsics, image size.

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels (OpenCV: pixel centres at integers).
        width, height: image size in pixels.
        R: (3, 3) world-to-camera rotation (numpy or torch; torch keeps gradients).
        t: (3,) world-to-camera translation, in the scene's length unit.
        metadata: extra fields of the source JSON (color_mode, serial_number, ...), written back
            unchanged by :meth:`to_mmface4d_json`.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    R: np.ndarray | torch.Tensor = field(default_factory=lambda: np.eye(3))
    t: np.ndarray | torch.Tensor = field(default_factory=lambda: np.zeros(3))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)):
            raise InputError(
                f"camera intrinsics must be finite, got fx={self.fx} fy={self.fy} "
                f"cx={self.cx} cy={self.cy}"
            )
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(
                f"image size must be positive, got width={self.width} height={self.height}"
            )
        self.width, self.height = int(self.width), int(self.height)
        if tuple(self.R.shape) != (3, 3) or tuple(self.t.shape) != (3,):
            raise InputError(
                f"camera R must be (3, 3) and t (3,), got {tuple(self.R.shape)} and "
                f"{tuple(self.t.shape)}"
            )
        if not isinstance(self.R, torch.Tensor):
            self.R = np.asarray(self.R, dtype=np.float64)
        if not isinstance(self.t, torch.Tensor):
            self.t = np.asarray(self.t, dtype=np.float64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def look_at(
        cls,
        eye: np.ndarray | list[float],
        target: np.ndarray | list[float],
        up: np.ndarray | list[float] = (0.0, 1.0, 0.0),
        *,
        width: int,
        height: int,
        fov_degrees: float = 20.0,
    ) -> PinholeCamera:
        """A camera at ``eye`` looking at ``target``, ``up`` pointing up in the image.

        Args:
            eye, target, up: (3,) world points/direction.
            width, height: image size in pixels.
            fov_degrees: vertical field of view; square pixels, centred principal point.
        """
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        forward = target - eye
        if np.linalg.norm(forward) == 0:
            raise InputError("look_at: eye and target coincide")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:
            raise InputError("look_at: up is parallel to the viewing direction")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        if not 0 < fov_degrees < 180:
            raise InputError(f"fov_degrees must be in (0, 180), got {fov_degrees}")
        focal = 0.5 * height / math.tan(math.radians(fov_degrees) / 2)
        return cls(
            fx=focal,
            fy=focal,
            cx=(width - 1) / 2,
            cy=(height - 1) / 2,
            width=width,
            height=height,
            R=rotation,
            t=-rotation @ eye,
        )

    @classmethod
    def from_mmface4d_json(cls, path: str | os.PathLike[str]) -> PinholeCamera:
        """Read MMFace4D / Azure-Kinect (Open3D) intrinsics: column-major 3x3 ``intrinsic_matrix``,
        ``width``, ``height``; every other field goes to ``metadata``. Extrinsics are identity."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or any(k not in data for k in _JSON_KNOWN):
            raise InputError(f"{path}: expected a JSON object with {', '.join(_JSON_KNOWN)}")
        matrix = np.asarray(data["intrinsic_matrix"], dtype=np.float64)
        if matrix.shape != (9,):
            raise InputError(f"{path}: intrinsic_matrix must hold 9 numbers, got {matrix.shape}")
        k = matrix.reshape(3, 3).T  # column-major
        metadata = {key: value for key, value in data.items() if key not in _JSON_KNOWN}
        return cls(
            fx=float(k[0, 0]),
            fy=float(k[1, 1]),
            cx=float(k[0, 2]),
            cy=float(k[1, 2]),
            width=int(data["width"]),
            height=int(data["height"]),
            metadata=metadata,
        )

    def to_mmface4d_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the intrinsics in the MMFace4D / Open3D layout (atomically), metadata included.

        Extrinsics are not part of that format and are not written.
        """
        data: dict[str, Any] = dict(self.metadata)
        data["intrinsic_matrix"] = self.intrinsic_matrix().T.reshape(-1).tolist()
        data["width"], data["height"] = self.width, self.height
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
        return path

    def intrinsic_matrix(self) -> np.ndarray:
        """(3, 3) float64 K."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    def resized(self, width: int, height: int) -> PinholeCamera:
        """The same camera for an image scaled to ``width`` x ``height`` (OpenCV centres)."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    @property
    def center(self) -> np.ndarray:
        """(3,) camera position in the world: ``-R^T t``."""
        rotation = torch.as_tensor(self.R).detach().cpu().double().numpy()
        translation = torch.as_tensor(self.t).detach().cpu().double().numpy()
        return -rotation.T @ translation

    # ------------------------------------------------------------------ projection
    def _extrinsics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rotation = torch.as_tensor(self.R, device=like.device).to(like.dtype)
        translation = torch.as_tensor(self.t, device=like.device).to(like.dtype)
        return rotation, translation

    def world_to_camera(self, points: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, N, 3) or (N, 3) world points -> the same shape in the camera frame."""
        points = _as_points(points)
        rotation, translation = self._extrinsics(points)
        return points @ rotation.T + translation

    def project(self, points: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Pixel coordinates (u, v) of world points, OpenCV convention.

        Args:
            points: (B, N, 3) or (N, 3) world points (in front of the camera).

        Returns:
            (B, N, 2) or (N, 2); differentiable.
        """
        cam = self.world_to_camera(points)
        z = cam[..., 2]
        return torch.stack(
            [self.fx * cam[..., 0] / z + self.cx, self.fy * cam[..., 1] / z + self.cy], -1
        )

    def to_clip(
        self, points: torch.Tensor | np.ndarray, near: float = 0.01, far: float = 100.0
    ) -> torch.Tensor:
        """Clip coordinates for :func:`mmface4d.render.rasterize`.

        ``w`` is the camera-frame depth z; NDC x, y put OpenCV pixel ``(u, v)`` at rasterizer
        pixel centre ``(u + 0.5, v + 0.5)``; NDC z maps ``near`` to -1 and ``far`` to +1.

        Args:
            points: (B, N, 3) or (N, 3) world points.
            near, far: clipping distances along the camera z, ``0 < near < far``.

        Returns:
            (B, N, 4) or (N, 4); differentiable.
        """
        if not 0 < near < far:
            raise InputError(f"need 0 < near < far, got near={near} far={far}")
        cam = self.world_to_camera(points)
        x, y, z = cam.unbind(-1)
        clip_x = (2 * self.fx / self.width) * x + (2 * (self.cx + 0.5) / self.width - 1) * z
        clip_y = (2 * self.fy / self.height) * y + (2 * (self.cy + 0.5) / self.height - 1) * z
        clip_z = ((far + near) * z - 2 * far * near) / (far - near)
        return torch.stack([clip_x, clip_y, clip_z, z], dim=-1)

    def backproject(
        self,
        depth: torch.Tensor | np.ndarray,
        mask: torch.Tensor | np.ndarray | None = None,
        frame: str = "camera",
    ) -> torch.Tensor:
        """Points seen by the pixels of a depth image.

        Args:
            depth: (H, W) camera-frame z per pixel (0 or non-finite = no measurement), in the
                scene's unit (metres for rendered depth; convert millimetre captures first).
            mask: optional (H, W) bool; only True pixels are used.
            frame: ``camera`` or ``world``.

        Returns:
            (N, 3) points, row-major pixel order.
        """
        depth = torch.as_tensor(depth)
        if depth.shape != (self.height, self.width):
            raise InputError(
                f"depth must be ({self.height}, {self.width}) for this camera, got "
                f"{tuple(depth.shape)}"
            )
        if frame not in ("camera", "world"):
            raise InputError(f"frame must be 'camera' or 'world', got {frame!r}")
        if not depth.is_floating_point():
            depth = depth.double()
        valid = torch.isfinite(depth) & (depth > 0)
        if mask is not None:
            mask = torch.as_tensor(mask, device=depth.device)
            if mask.shape != depth.shape:
                raise InputError(f"mask must be {tuple(depth.shape)}, got {tuple(mask.shape)}")
            valid &= mask.bool()
        rows, cols = valid.nonzero(as_tuple=True)
        z = depth[rows, cols]
        x = (cols.to(depth.dtype) - self.cx) / self.fx * z
        y = (rows.to(depth.dtype) - self.cy) / self.fy * z
        points = torch.stack([x, y, z], dim=-1)
        if frame == "world":
            rotation, translation = self._extrinsics(points)
            points = (points - translation) @ rotation
        return points


def frame_mesh(
    vertices: torch.Tensor | np.ndarray,
    view: str = "front",
    width: int = 512,
    height: int = 512,
    fill: float = 0.8,
    fov_degrees: float = 20.0,
) -> PinholeCamera:
    """A camera that shows the whole mesh filling ``fill`` of the image's tighter side.

    Args:
        vertices: (V, 3) or (T, V, 3) face-model-convention points (x subject's left, y up,
            z out of the face); for a sequence the union of all frames is framed, so the camera
            stays still.
        view: ``front`` (camera on +z looking at -z) or ``three-quarter`` (rotated
            :data:`THREE_QUARTER_DEGREES` about +y, towards the subject's left).
        width, height: image size in pixels.
        fill: fraction of the image the mesh's extent spans, in (0, 1].
        fov_degrees: vertical field of view.
    """
    if view not in VIEWS:
        raise InputError(f"view must be one of {VIEWS}, got {view!r}")
    if not 0 < fill <= 1:
        raise InputError(f"fill must be in (0, 1], got {fill}")
    points = torch.as_tensor(vertices).detach().reshape(-1, 3).double().cpu().numpy()
    if len(points) == 0 or not np.isfinite(points).all():
        raise InputError("frame_mesh: vertices are empty or hold NaN/infinite values")
    angle = math.radians(THREE_QUARTER_DEGREES if view == "three-quarter" else 0.0)
    direction = np.array([math.sin(angle), 0.0, math.cos(angle)])  # from the mesh to the camera
    probe = PinholeCamera.look_at(
        direction, np.zeros(3), width=width, height=height, fov_degrees=fov_degrees
    )
    rotation = np.asarray(probe.R)
    local = points @ rotation.T  # camera-aligned axes, origin still at the world origin
    low, high = local.min(0), local.max(0)
    centre = 0.5 * (low + high)
    local = local - centre
    focal = probe.fx
    # Distance along the camera axis so that every point projects inside the fill box.
    half_w, half_h = 0.5 * fill * width, 0.5 * fill * height
    needed = (
        np.maximum(focal * np.abs(local[:, 0]) / half_w, focal * np.abs(local[:, 1]) / half_h)
        - local[:, 2]
    )
    distance = float(needed.max())
    distance = max(distance, float(-local[:, 2].min()) + 1e-6, 1e-6)
    eye_local = np.array([0.0, 0.0, -distance])
    target_world = rotation.T @ centre
    eye_world = rotation.T @ (centre + eye_local)
    return PinholeCamera(
        fx=focal,
        fy=focal,
        cx=probe.cx,
        cy=probe.cy,
        width=width,
        height=height,
        R=rotation,
        t=-rotation @ eye_world,
        metadata={"view": view, "target": target_world.tolist()},
    )

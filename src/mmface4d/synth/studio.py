"""A synthetic RGB-D capture studio: MMFace4D-like captures of known faces.

Three Azure-Kinect-class cameras film a face mesh whose every vertex is known, so that calibration,
reconstruction and tracking can be scored in millimetres against the truth.

World frame and camera order. The world is the centre camera's frame (OpenCV: x right, y down,
z forward, metres), the frame of MMFace4D's reconstructed meshes and of the synthetic corpus. As
in the MMFace4D release (``docs/FORMATS.md``: camera 1 is the centre/master camera), camera
:data:`CENTRE_CAMERA` = 1 is the centre camera, so its camera-from-world pose is the identity.
Camera 0 stands on the subject's left (world +x, the right of the centre camera's picture) and
camera 2 on the subject's right; both are turned 45 degrees about the vertical axis through the
face (the paper's rig: three tripods at 1.2 m, the seated subject's face at about that height, so
all optical axes are horizontal). Camera 0's side was read off the sample recording 000337: in
``000337_0.pkl`` the nose tip lies next to the subject's right cheek contour (landmark 0), which a
camera on the subject's left sees. Poses are 4x4 camera-from-world matrices: ``p_cam = T @ p``.

Colour intrinsics default to the three real ones of ``000337_{0,1,2}.json`` in the shared
MMFace4D sample (1920x1080, fx ~ fy ~ 911 px, principal point near the centre); ``scale`` picks
a working resolution and scales them consistently (OpenCV pixel centres).

Depth is the Kinect's depth already transformed into the colour camera (as MMFace4D stores it):
uint16 millimetres, 0 = no measurement, degraded by the Kinect-like noise model of
:mod:`mmface4d.synth.depth_noise` (axial noise, quantisation, holes at grazing angles,
dropouts, range and field of view, flying pixels, drawn on the depth sensor's grid).

Colour: the face model's albedo lit by per-camera SH lighting (the Deep3DFaceRecon convention
that :func:`mmface4d.render.render_rgbd` and the paper's fitting use), a per-camera exposure and
white balance, and signal-dependent sensor noise. Behind the head stands a curved wall (a vertical
cylinder about the face, 1.5 m from every camera) of blurred noise on a vertical gradient, so the
depth has a background too. Openings of the mesh that would show the wall through the head (an
open mouth without a mouth interior, gaps at the eyes) are closed by a dark cavity 3 cm behind
the surrounding face; they are not part of the face mask.

Not modelled: the depth camera's offset and 6-degree tilt from the colour camera (occlusion
shadows), lateral depth noise, multi-path and skin sub-surface bias, MJPEG artefacts, motion blur,
antialiased edges, and hair, ears and neck (the face models are front-face masks).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mmface4d.capture.cameras import CENTRE_CAMERA
from mmface4d.capture.ground_truth import GroundTruthFile, read_ground_truth, write_ground_truth
from mmface4d.errors import InputError
from mmface4d.facemodel.lighting import SH_COEFFS
from mmface4d.geometry import face_normals
from mmface4d.geometry.checks import check_vertices
from mmface4d.geometry.frames import CAMERA_DISTANCE, axis_flip_matrix
from mmface4d.render.camera import PinholeCamera
from mmface4d.render.rasterize import Backend, check_faces
from mmface4d.render.shade import render_rgbd
from mmface4d.synth.depth_noise import (
    DepthNoise,
    degrade_depth,
    depth_field_of_view,
    sensor_cell,
)

#: Index of the centre (master) camera, whose frame is the world, as in the MMFace4D release.
#: Full colour resolution (MJPG_1080P) of the MMFace4D cameras.
COLOUR_SIZE = (1920, 1080)
#: (fx, fy, cx, cy) at 1920x1080 of cameras 0, 1, 2: /work/shared/data/mmface4d_sample/
#: 000337_{0,1,2}.json (real Azure Kinect factory calibrations of the MMFace4D rig).
SAMPLE_INTRINSICS = (
    (910.9786376953125, 910.66961669921875, 963.4462890625, 543.6405029296875),
    (911.56536865234375, 911.16424560546875, 963.89404296875, 544.8760986328125),
    (911.77130126953125, 911.38262939453125, 961.4317626953125, 546.3134765625),
)
#: Yaw of each camera about the vertical axis through the face, degrees; + = subject's left.
CAMERA_YAW_SIGN = (1.0, 0.0, -1.0)
#: Per-axis std, in pixels at 1920x1080, of a landmark detector on frontal studio frames: HRNetV2
#: on WFLW has a mean error of ~4.6% of the outer-eye-corner distance (~90 px here), i.e. ~4 px,
#: about 1.25 sigma for 2D Gaussian errors, 3 px (Wang et al., "Deep High-Resolution
#: Representation Learning for Visual Recognition", TPAMI 2020); frontal studio frames are easier,
#: so 2 px.
LANDMARK_NOISE_PX = 2.0


@dataclass(frozen=True)
class StudioRig:
    """Three cameras around a face; poses camera-from-world, the world = camera 1's frame."""

    distance: float = CAMERA_DISTANCE
    """Distance of every camera from the face pivot, metres (MMFace4D faces: 0.66-0.78 m)."""
    side_angle_degrees: float = 45.0
    """Yaw of the side cameras about the vertical axis through the face pivot."""
    scale: float = 1.0
    """Working resolution as a fraction of 1920x1080 (1/8 -> 240x135); intrinsics follow."""
    intrinsics: tuple[tuple[float, float, float, float], ...] = SAMPLE_INTRINSICS
    """(fx, fy, cx, cy) per camera at 1920x1080, OpenCV pixel centres."""
    pose_jitter_degrees: float = 1.0
    """Std of the side cameras' random rotation about each axis (the calibration to recover)."""
    pose_jitter_m: float = 0.01
    """Std of the side cameras' random displacement along each axis, metres."""
    backdrop_distance: float = 1.5
    """Distance from each camera to the backdrop straight ahead, metres: a curved wall (vertical
    cylinder of radius backdrop_distance - distance about the face pivot)."""
    seed: int = 0
    """Seed of the pose perturbation and the backdrop texture."""

    def __post_init__(self) -> None:
        if not 0.2 <= self.distance < self.backdrop_distance - 0.15:
            raise InputError(
                f"rig distance must be in [0.2, backdrop_distance - 0.15) metres, got "
                f"{self.distance} (backdrop at {self.backdrop_distance})"
            )
        if not 0 <= self.side_angle_degrees < 80:
            raise InputError(
                f"side_angle_degrees must be in [0, 80), got {self.side_angle_degrees}"
            )
        width, height = self.image_size
        if not 0 < self.scale <= 2 or width < 8 or height < 8:
            raise InputError(f"scale must give at least 8x8 pixels and be <= 2, got {self.scale}")
        if len(self.intrinsics) != 3 or any(len(k) != 4 for k in self.intrinsics):
            raise InputError("intrinsics must be three (fx, fy, cx, cy) tuples")
        if self.pose_jitter_degrees < 0 or self.pose_jitter_m < 0:
            raise InputError("pose jitter must be non-negative")

    @property
    def num_cameras(self) -> int:
        return 3

    @property
    def image_size(self) -> tuple[int, int]:
        """(W, H) of the working resolution."""
        return round(COLOUR_SIZE[0] * self.scale), round(COLOUR_SIZE[1] * self.scale)

    @property
    def pivot(self) -> np.ndarray:
        """(3,) world point the cameras turn about and look at: the face, ``distance`` ahead."""
        return np.array([0.0, 0.0, self.distance])

    def nominal_camera_from_world(self) -> np.ndarray:
        """(3, 4, 4) ideal poses: exact 45-degree yaws, no perturbation."""
        poses = np.tile(np.eye(4), (3, 1, 1))
        for cam, sign in enumerate(CAMERA_YAW_SIGN):
            phi = math.radians(sign * self.side_angle_degrees)
            rotation = np.array(
                [
                    [math.cos(phi), 0.0, math.sin(phi)],
                    [0.0, 1.0, 0.0],
                    [-math.sin(phi), 0.0, math.cos(phi)],
                ]
            )
            centre = self.pivot + self.distance * np.array([math.sin(phi), 0.0, -math.cos(phi)])
            poses[cam, :3, :3], poses[cam, :3, 3] = rotation, -rotation @ centre
        return poses

    def camera_from_world(self) -> np.ndarray:
        """(3, 4, 4) true poses: the side cameras perturbed (seeded); camera 1 is the identity."""
        poses = self.nominal_camera_from_world()
        rng = np.random.default_rng([self.seed, 7101])
        for cam in range(3):
            rotvec = rng.normal(0.0, math.radians(self.pose_jitter_degrees), 3)
            shift = rng.normal(0.0, self.pose_jitter_m, 3)
            if cam == CENTRE_CAMERA:
                continue
            rotation = Rotation.from_rotvec(rotvec).as_matrix() @ poses[cam, :3, :3]
            centre = -poses[cam, :3, :3].T @ poses[cam, :3, 3] + shift
            poses[cam, :3, :3], poses[cam, :3, 3] = rotation, -rotation @ centre
        return poses

    def cameras(self) -> list[PinholeCamera]:
        """The three true cameras at the working resolution (metadata as MMFace4D's json)."""
        width, height = self.image_size
        cams = []
        for index, ((fx, fy, cx, cy), pose) in enumerate(
            zip(self.intrinsics, self.camera_from_world(), strict=True)
        ):
            full = PinholeCamera(fx, fy, cx, cy, *COLOUR_SIZE, R=pose[:3, :3], t=pose[:3, 3])
            full.metadata = {
                "color_mode": "MJPG_1080P",
                "depth_mode": "NFOV_UNBINNED",
                "serial_number": f"synthetic-{self.seed:04d}-{index}",
            }
            cams.append(full.resized(width, height))
        return cams


@dataclass(frozen=True)
class ColourNoise:
    """How lighting and camera response are drawn, and the colour sensor noise."""

    ambient_std: float = 0.08
    """Std of each camera's ambient SH coefficient (0.8 is added by the SH model)."""
    key_strength: float = 0.3
    """Strength of the key light (first-order SH), shared by all cameras in the world."""
    key_direction_std: float = 0.35
    """Spread of the key light's direction around upper-front-left, radians."""
    quadratic_std: float = 0.05
    """Std of each camera's second-order SH coefficients."""
    white_balance_std: float = 0.03
    """Std of each camera's per-channel gain."""
    exposure_std: float = 0.08
    """Std of each camera's log exposure."""
    read_noise: float = 1.5
    """Signal-independent sensor noise std, 8-bit levels."""
    shot_noise: float = 0.05
    """Signal-dependent variance per 8-bit level: std = sqrt(read^2 + shot * level)."""


@dataclass
class StudioLighting:
    """Per-camera lighting and response of one capture.

    Attributes:
        sh: (C, 27) SH coefficients per camera (camera-frame normals, see render_rgbd).
        white_balance: (C, 3) per-channel gains.
        exposure: (C,) overall gain.
    """

    sh: np.ndarray
    white_balance: np.ndarray
    exposure: np.ndarray

    @property
    def gains(self) -> np.ndarray:
        """(C, 3) total gain applied to each camera's linear image."""
        return self.white_balance * self.exposure[:, None]


@dataclass
class CameraFrame:
    """What one camera recorded at one instant.

    Attributes:
        colour: (H, W, 3) uint8 RGB.
        depth: (H, W) uint16 millimetres in the colour camera, 0 = no measurement.
        mask: (H, W) bool, pixels where the face mesh is visible.
        depth_true: (H, W) float32 noise-free depth in metres (face, cavity and backdrop), 0
            where the view ray hits nothing.
    """

    colour: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    depth_true: np.ndarray


def sample_lighting(
    rig: StudioRig, rng: np.random.Generator | int, colour: ColourNoise | None = None
) -> StudioLighting:
    """Draw per-camera lighting: one world key light seen by each camera, plus per-camera
    ambient, second-order terms, white balance and exposure."""
    colour, rng = colour or ColourNoise(), np.random.default_rng(rng)
    num = rig.num_cameras
    key = np.array([-0.4, 0.5, 1.0])  # centre camera face axes: image left, up, to the camera
    key = Rotation.from_rotvec(rng.normal(0.0, colour.key_direction_std, 3)).apply(key)
    key /= np.linalg.norm(key)
    flip = axis_flip_matrix()  # OpenCV <-> face axes (x right, y up, z to the camera)
    sh = np.zeros((num, 3, 9))
    for cam, pose in enumerate(rig.camera_from_world()):
        light = flip @ pose[:3, :3] @ flip @ key
        # Linear band: basis (-y, z, -x) * a1c1, so these coefficients give a1c1 * (n . light).
        sh[cam, :, 1:4] = colour.key_strength * np.array([-light[1], light[2], -light[0]])
        sh[cam, :, 0] = rng.normal(0.0, colour.ambient_std)
        sh[cam, :, 4:] = rng.normal(0.0, colour.quadratic_std, 5)
    sh *= 1.0 + rng.normal(0.0, 0.02, (num, 3, 1))  # slightly tinted lights
    return StudioLighting(
        sh=sh.reshape(num, SH_COEFFS).astype(np.float32),
        white_balance=(1.0 + rng.normal(0.0, colour.white_balance_std, (num, 3))).astype(
            np.float32
        ),
        exposure=np.exp(rng.normal(0.0, colour.exposure_std, num)).astype(np.float32),
    )


@dataclass
class _View:
    """What stays fixed for one camera during a capture: rays, backdrop, depth field of view."""

    camera: PinholeCamera
    directions: np.ndarray  # (H, W, 3) float32 unit camera-frame view rays
    wall_depth: np.ndarray  # (H, W) float32 metres, 0 where the ray misses the backdrop
    wall_rgb: np.ndarray  # (H, W, 3) float32 linear colour of the backdrop
    wall_incidence: np.ndarray  # (H, W) float32 incidence angle on the backdrop, radians
    in_fov: np.ndarray  # (H, W) bool, inside the depth camera's field of view
    cell: float  # colour pixels per depth-sensor pixel


def _backdrop_texture(seed: int) -> np.ndarray:
    """(128, 128, 3) linear colour of 6 m x 6 m of wall: blurred noise on a vertical gradient."""
    rng = np.random.default_rng([seed, 7102])
    base = rng.uniform(0.32, 0.55) * (1.0 + rng.normal(0.0, 0.04, 3))  # near-neutral
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (128, 128)), 2.5, mode="wrap")
    noise /= noise.std()
    rows = np.linspace(1.12, 0.82, 128)[:, None]  # lighter above, darker below
    return np.clip(base * (rows * (1.0 + 0.07 * noise))[..., None], 0.0, 1.0)


def _views(rig: StudioRig, depth: DepthNoise) -> list[_View]:
    texture = _backdrop_texture(rig.seed)
    width, height = rig.image_size
    radius = rig.backdrop_distance - rig.distance
    views = []
    for cam in rig.cameras():
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
        world = rays @ np.asarray(cam.R)  # R^T r for every ray
        # The backdrop: a vertical cylinder of ``radius`` about the pivot (a curved studio wall),
        # 1.5 m from every camera straight ahead; cameras stand inside it, so every ray that is
        # not vertical meets it once ahead.
        origin = cam.center - rig.pivot
        a = world[..., 0] ** 2 + world[..., 2] ** 2
        b = 2 * (origin[0] * world[..., 0] + origin[2] * world[..., 2])
        c = origin[0] ** 2 + origin[2] ** 2 - radius**2
        t = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * np.maximum(a, 1e-12))
        hit = (a > 1e-9) & (c < 0)
        points = origin + t[..., None] * world
        arc = radius * np.arctan2(points[..., 0], points[..., 2])
        tex = (np.stack([arc, points[..., 1]], -1) + 3.0) / 6.0 * 127.0  # 6 m x 6 m, 128 cells
        coords = [tex[..., 1], tex[..., 0]]
        wall = np.stack(
            [
                ndimage.map_coordinates(texture[..., k], coords, order=1, mode="mirror")
                for k in range(3)
            ],
            -1,
        )
        normal = np.stack([points[..., 0], np.zeros_like(t), points[..., 2]], -1) / radius
        length = np.linalg.norm(world, axis=-1)
        incidence = np.arccos(np.clip(np.abs((normal * world).sum(-1)) / length, 0.0, 1.0))
        views.append(
            _View(
                camera=cam,
                directions=(rays / length[..., None]).astype(np.float32),
                wall_depth=np.where(hit, t, 0.0).astype(np.float32),
                wall_rgb=np.where(hit[..., None], wall, 0.0).astype(np.float32),
                wall_incidence=incidence.astype(np.float32),
                in_fov=depth_field_of_view(rays, depth),
                cell=sensor_cell(cam.fx, depth),
            )
        )
    return views


#: Linear colour and depth offset (metres) of the cavity behind the mesh's openings.
_CAVITY_RGB = np.array([0.07, 0.035, 0.03], dtype=np.float32)
_CAVITY_DEPTH = 0.03


def _fill_openings(face: np.ndarray, linear: np.ndarray, z: np.ndarray, theta: np.ndarray) -> None:
    """Close the see-through openings of a face mask (a mesh's open mouth, gaps at the eyes)
    in place: pixels enclosed by the face that show the backdrop become a dark cavity
    :data:`_CAVITY_DEPTH` behind the nearest face pixel, seen head-on."""
    rows, cols = np.nonzero(face)
    if len(rows) == 0:
        return
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    inside = face[box]
    openings = ndimage.binary_fill_holes(inside) & ~inside
    if not openings.any():
        return
    _, (near_r, near_c) = ndimage.distance_transform_edt(~inside, return_indices=True)
    depth = z[box]
    depth[openings] = depth[near_r[openings], near_c[openings]] + _CAVITY_DEPTH
    linear[box][openings] = _CAVITY_RGB
    theta[box][openings] = 0.0


def _finish_colour(
    linear: np.ndarray, gain: np.ndarray, noise: ColourNoise, rng: np.random.Generator
) -> np.ndarray:
    """uint8 image from a linear (H, W, 3) image: gain, sensor noise, quantisation."""
    levels = np.clip(linear * (gain.astype(np.float32) * 255.0), 0.0, 255.0)
    std = np.sqrt(np.float32(noise.read_noise**2) + np.float32(noise.shot_noise) * levels)
    levels += std * rng.standard_normal(levels.shape, dtype=np.float32)
    return np.clip(np.round(levels), 0, 255).astype(np.uint8)


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _check_sequence(vertices: Any, albedo: Any, faces: Any) -> tuple[np.ndarray, ...]:
    verts = check_vertices(np.asarray(vertices, dtype=np.float32))
    if np.any(verts[..., 2] < 0.05):
        raise InputError(
            "vertices must be in the centre camera's frame (OpenCV, metres, the face ~0.7 m "
            "ahead): some lie behind or on the camera (z < 0.05 m)"
        )
    colours = np.asarray(albedo, dtype=np.float32)
    if colours.shape != verts.shape[1:]:
        raise InputError(f"albedo must be {verts.shape[1:]} (V, 3), got {colours.shape}")
    faces = check_faces(np.asarray(faces), verts.shape[1], "cpu").numpy()
    return verts, colours, faces


def render_capture(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    albedo: np.ndarray | torch.Tensor,
    rig: StudioRig,
    rng: np.random.Generator | int,
    *,
    lighting: StudioLighting | None = None,
    depth_noise: DepthNoise | None = None,
    colour_noise: ColourNoise | None = None,
    frames_per_batch: int = 4,
    backend: Backend = "auto",
    device: str | torch.device = "cpu",
) -> Iterator[list[CameraFrame]]:
    """Film a mesh sequence with the rig, one frame at a time.

    Args:
        vertices: (T, V, 3) metres in the centre camera's frame (OpenCV axes), e.g. a corpus
            recording's mesh sequence or ``performance_vertices(..., camera_frame=True)``.
        faces: (F, 3) triangles.
        albedo: (V, 3) RGB albedo in [0, 1] (e.g. ``model.albedo(coeffs)[0]``).
        rig: the cameras.
        rng: generator (or seed) of the lighting (when not given) and of all per-frame noise;
            the same seed gives the same capture.
        lighting: per-camera lighting; None draws one with :func:`sample_lighting` first. Draw it
            yourself to record it in the :class:`StudioGroundTruth`.
        depth_noise, colour_noise: the degradation models (defaults:
            :class:`~mmface4d.synth.depth_noise.DepthNoise`,
            :class:`ColourNoise`).
        frames_per_batch: frames rasterised together (speed only; results do not depend on it).
        backend, device: rasterizer backend and torch device.

    Yields:
        Per frame, a list of C :class:`CameraFrame` in camera order (camera 1 = centre).
    """
    verts, colours, faces = _check_sequence(vertices, albedo, faces)
    rng = _as_rng(rng)
    depth_noise, colour_noise = depth_noise or DepthNoise(), colour_noise or ColourNoise()
    if lighting is None:
        lighting = sample_lighting(rig, rng, colour_noise)
    if lighting.sh.shape != (rig.num_cameras, SH_COEFFS):
        raise InputError(
            f"lighting.sh must be ({rig.num_cameras}, {SH_COEFFS}), got {lighting.sh.shape}"
        )
    if int(frames_per_batch) < 1:
        raise InputError(f"frames_per_batch must be >= 1, got {frames_per_batch}")
    views = _views(rig, depth_noise)
    cameras = [view.camera for view in views]
    faces_t = torch.as_tensor(faces, device=device)
    albedo_t = torch.as_tensor(colours, device=device)
    gains = lighting.gains
    for start in range(0, len(verts), int(frames_per_batch)):
        batch = torch.as_tensor(verts[start : start + int(frames_per_batch)], device=device)
        sh = torch.as_tensor(lighting.sh, device=device).expand(len(batch), -1, -1)
        with torch.no_grad():
            out = render_rgbd(batch, faces_t, albedo_t, cameras, sh, backend=backend)
            normals = face_normals(batch, faces_t)
            normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        rgb, depth = out.rgb.float().cpu().numpy(), out.depth.float().cpu().numpy()
        mask, tri = out.mask.cpu().numpy(), out.triangle_id.cpu().numpy()
        normals = normals.float().cpu().numpy()
        for b in range(len(batch)):
            frame = []
            for c, view in enumerate(views):
                face = mask[b, c]
                rows, cols = np.nonzero(face)
                linear, z = view.wall_rgb.copy(), view.wall_depth.copy()
                linear[rows, cols] = rgb[b, c, rows, cols]
                z[rows, cols] = depth[b, c, rows, cols]
                rotation = np.asarray(view.camera.R, dtype=np.float32)
                n_cam = normals[b][tri[b, c, rows, cols]] @ rotation.T
                cos = np.abs((n_cam * view.directions[rows, cols]).sum(-1))
                theta = view.wall_incidence.copy()
                theta[rows, cols] = np.arccos(np.clip(cos, 0.0, 1.0))
                _fill_openings(face, linear, z, theta)
                frame.append(
                    CameraFrame(
                        colour=_finish_colour(linear, gains[c], colour_noise, rng),
                        depth=degrade_depth(
                            z, theta, depth_noise, rng, in_fov=view.in_fov, cell=view.cell
                        ),
                        mask=face.copy(),
                        depth_true=z,
                    )
                )
            yield frame


def render_capture_frame(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    albedo: np.ndarray | torch.Tensor,
    rig: StudioRig,
    rng: np.random.Generator | int,
    **options: Any,
) -> list[CameraFrame]:
    """Film one mesh: (V, 3) vertices in the centre camera's frame; see :func:`render_capture`
    for the other arguments. Returns C :class:`CameraFrame` in camera order."""
    verts = np.asarray(vertices, dtype=np.float32)
    if verts.ndim != 2:
        raise InputError(f"vertices must be (V, 3) for one frame, got {verts.shape}")
    return next(render_capture(verts[None], faces, albedo, rig, rng, **options))


def project_landmarks(
    vertices: np.ndarray | torch.Tensor,
    landmark_vertex_indices: Sequence[int] | np.ndarray,
    camera: PinholeCamera,
    noise_std_px: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Pixel positions of landmark vertices seen by a camera, optionally detector-noisy.

    Args:
        vertices: (V, 3) or (T, V, 3) world points (the centre camera's frame).
        landmark_vertex_indices: (K,) vertex indices (e.g. ``model.landmarks``).
        camera: e.g. one of ``rig.cameras()``.
        noise_std_px: per-axis Gaussian std in pixels of this camera's image
            (:data:`LANDMARK_NOISE_PX` at 1080p, times ``rig.scale``, mimics a detector).
        rng: generator or seed of the noise (needed when noise_std_px > 0).

    Returns:
        (K, 2) or (T, K, 2) float64 (u, v) pixels, OpenCV convention. Occluded landmarks are
        projected all the same (as a detector hallucinates a hidden contour).
    """
    verts = np.asarray(vertices, dtype=np.float64)
    index = np.asarray(landmark_vertex_indices)
    if verts.ndim not in (2, 3) or verts.shape[-1] != 3:
        raise InputError(f"vertices must be (V, 3) or (T, V, 3), got {verts.shape}")
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise InputError(f"landmark_vertex_indices must be (K,) integers, got {index.shape}")
    if index.size and (index.min() < 0 or index.max() >= verts.shape[-2]):
        raise InputError(f"landmark indices must lie in 0..{verts.shape[-2] - 1}")
    if noise_std_px < 0:
        raise InputError(f"noise_std_px must be non-negative, got {noise_std_px}")
    points = verts[..., index, :]
    pixels = camera.project(torch.as_tensor(points)).numpy().astype(np.float64)
    if noise_std_px > 0:
        if rng is None:
            raise InputError("project_landmarks: noise_std_px > 0 needs an rng (or seed)")
        pixels = pixels + _as_rng(rng).normal(0.0, noise_std_px, pixels.shape)
    return pixels


def landmark_visibility(
    vertices: np.ndarray | torch.Tensor,
    landmark_vertex_indices: Sequence[int] | np.ndarray,
    camera: PinholeCamera,
    depth_true: np.ndarray,
    tolerance_m: float = 0.01,
) -> np.ndarray:
    """(K,) bool: which landmarks a camera sees (not hidden by the face, inside the image).

    Args:
        vertices: (V, 3) world points of the frame.
        landmark_vertex_indices: (K,) vertex indices.
        camera: the camera.
        depth_true: (H, W) that camera's noise-free depth (:attr:`CameraFrame.depth_true`).
        tolerance_m: how far the landmark may lie from the surface its pixel sees.
    """
    pixels = np.round(project_landmarks(vertices, landmark_vertex_indices, camera)).astype(int)
    if pixels.ndim != 2:
        raise InputError("landmark_visibility takes the (V, 3) vertices of one frame")
    if depth_true.shape != (camera.height, camera.width):
        raise InputError(
            f"depth_true must be ({camera.height}, {camera.width}), got {depth_true.shape}"
        )
    points = np.asarray(vertices, dtype=np.float64)[np.asarray(landmark_vertex_indices)]
    z = camera.world_to_camera(torch.as_tensor(points)).numpy()[:, 2]
    u, v = pixels[:, 0], pixels[:, 1]
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    seen = np.zeros(len(pixels), dtype=bool)
    surface = depth_true[v[inside], u[inside]]
    seen[inside] = (surface > 0) & (np.abs(z[inside] - surface) <= tolerance_m)
    return seen


@dataclass
class StudioGroundTruth:
    """Everything a capture was made from, to score what is recovered from it.

    Attributes:
        camera_from_world: (C, 4, 4) true poses (world = centre camera frame, OpenCV, metres).
        intrinsics: (C, 3, 3) true colour intrinsics at the working resolution.
        image_size: (W, H) of the working resolution.
        vertices: (T, V, 3) float32 meshes, world frame.
        faces: (F, 3) int64.
        lighting: the per-camera lighting and response.
        rig, depth_noise, colour_noise: the configuration used.
        seed: the seed of the per-frame noise, when it was an int.
    """

    camera_from_world: np.ndarray
    intrinsics: np.ndarray
    image_size: tuple[int, int]
    vertices: np.ndarray
    faces: np.ndarray
    lighting: StudioLighting
    rig: StudioRig = field(default_factory=StudioRig)
    depth_noise: DepthNoise = field(default_factory=DepthNoise)
    colour_noise: ColourNoise = field(default_factory=ColourNoise)
    seed: int | None = None

    @classmethod
    def create(
        cls,
        rig: StudioRig,
        vertices: np.ndarray,
        faces: np.ndarray,
        lighting: StudioLighting,
        depth_noise: DepthNoise | None = None,
        colour_noise: ColourNoise | None = None,
        seed: int | None = None,
    ) -> StudioGroundTruth:
        """The ground truth of ``render_capture(vertices, faces, ..., rig, seed, lighting=...)``."""
        verts = np.asarray(vertices, dtype=np.float32)
        if verts.ndim == 2:
            verts = verts[None]
        cams = rig.cameras()
        return cls(
            camera_from_world=rig.camera_from_world(),
            intrinsics=np.stack([cam.intrinsic_matrix() for cam in cams]),
            image_size=rig.image_size,
            vertices=verts,
            faces=np.asarray(faces, dtype=np.int64),
            lighting=lighting,
            rig=rig,
            depth_noise=depth_noise or DepthNoise(),
            colour_noise=colour_noise or ColourNoise(),
            seed=seed,
        )

    def cameras(self) -> list[PinholeCamera]:
        """The true cameras as :class:`PinholeCamera` (camera-from-world extrinsics)."""
        return [
            PinholeCamera(
                k[0, 0], k[1, 1], k[0, 2], k[1, 2], *self.image_size, R=pose[:3, :3], t=pose[:3, 3]
            )
            for k, pose in zip(self.intrinsics, self.camera_from_world, strict=True)
        ]


def save_ground_truth(path: str | os.PathLike[str], truth: StudioGroundTruth) -> Path:
    """Write ``path`` (.npz: poses, intrinsics, meshes, lighting) and the .json beside it
    (configuration, conventions), both atomically, in the format of
    :mod:`mmface4d.capture.ground_truth`. Returns the .npz path."""
    meta = {
        "world": "centre camera frame (camera 1), OpenCV axes (x right, y down, z forward), m",
        "poses": "camera_from_world 4x4: p_cam = T @ p_world",
        "image_size": list(truth.image_size),
        "seed": truth.seed,
        "rig": asdict(truth.rig),
        "depth_noise": asdict(truth.depth_noise),
        "colour_noise": asdict(truth.colour_noise),
    }
    arrays = {
        "camera_from_world": truth.camera_from_world,
        "intrinsics": truth.intrinsics,
        "vertices": truth.vertices.astype(np.float32),
        "faces": truth.faces.astype(np.int64),
        "sh": truth.lighting.sh,
        "white_balance": truth.lighting.white_balance,
        "exposure": truth.lighting.exposure,
    }
    return write_ground_truth(path, GroundTruthFile(arrays, meta))


def load_ground_truth(path: str | os.PathLike[str]) -> StudioGroundTruth:
    """Read what :func:`save_ground_truth` wrote."""
    stored = read_ground_truth(path)
    arrays, meta = stored.arrays, stored.metadata

    def tuples(value: Any) -> Any:
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    rig = StudioRig(**{k: tuples(v) for k, v in meta["rig"].items()})
    return StudioGroundTruth(
        camera_from_world=arrays["camera_from_world"],
        intrinsics=arrays["intrinsics"],
        image_size=stored.image_size,
        vertices=arrays["vertices"],
        faces=arrays["faces"],
        lighting=StudioLighting(arrays["sh"], arrays["white_balance"], arrays["exposure"]),
        rig=rig,
        depth_noise=DepthNoise(**{k: tuples(v) for k, v in meta["depth_noise"].items()}),
        colour_noise=ColourNoise(**meta["colour_noise"]),
        seed=meta["seed"],
    )

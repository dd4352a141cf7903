"""Shading on top of the rasterizer: SH-lit RGB-D for fitting, Lambert previews for people.

SH lighting frame (:func:`render_rgbd`): normals are rotated into each camera and expressed in the
face-model axis convention -- x image-right, y image-up, z towards the camera -- i.e.
``n_sh = diag(1, -1, -1) @ R @ n_world``. That is the frame of Deep3DFaceRecon's rotated normals,
so its 27 SH coefficients mean the same here; for a front camera (``R = diag(1, -1, -1)``) it is
the world frame itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.lighting import SH_COEFFS, sh_shade
from mmface4d.geometry import vertex_normals
from mmface4d.render.camera import PinholeCamera, frame_mesh
from mmface4d.render.rasterize import (
    Backend,
    check_faces,
    interpolate,
    interpolate_packed,
    rasterize,
    view_depth,
)

_CV_TO_FACE = (1.0, -1.0, -1.0)  # OpenCV camera axes -> x right, y up, z towards the camera
DEFAULT_SKIN = (0.78, 0.66, 0.60)


@dataclass
class RenderOutput:
    """RGB-D renders of B meshes seen by C cameras.

    Attributes:
        rgb: (B, C, H, W, 3) float colour, 0 on background.
        depth: (B, C, H, W) camera-frame z in the vertices' unit (metres), 0 on background.
        mask: (B, C, H, W) bool coverage.
        triangle_id: (B, C, H, W) int64 visible face, -1 on background.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    triangle_id: torch.Tensor


def _batched(name: str, value: torch.Tensor | np.ndarray, batch: int | None) -> torch.Tensor:
    value = torch.as_tensor(value)
    if value.dim() == 2:
        value = value.unsqueeze(0)
    if value.dim() != 3 or value.shape[-1] != 3 or (batch is not None and value.shape[0] != batch):
        expected = f"({batch}, V, 3)" if batch is not None else "(B, V, 3)"
        raise InputError(f"{name} must be (V, 3) or {expected}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        value = value.float()
    if not torch.isfinite(value).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return value


def render_rgbd(
    vertices: torch.Tensor,
    faces: torch.Tensor | np.ndarray,
    albedo: torch.Tensor,
    cameras: Sequence[PinholeCamera],
    sh_lighting: torch.Tensor | None = None,
    backend: Backend = "auto",
    near: float = 0.01,
    far: float = 100.0,
) -> RenderOutput:
    """Render colour, depth and coverage of B meshes from C cameras in one rasterizer call.

    Colour is shaded per vertex (``sh_shade`` with camera-frame normals, see the module doc) and
    interpolated; without ``sh_lighting`` it is the albedo itself. Everything is differentiable
    w.r.t. vertices, albedo and lighting except the coverage.

    Args:
        vertices: (B, V, 3) world points.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        albedo: (B, V, 3) or (V, 3) RGB.
        cameras: C cameras sharing one image size.
        sh_lighting: (B, C, 27) SH coefficients per mesh and camera, or None.
        backend: rasterizer backend.
        near, far: clipping distances along each camera's z.
    """
    vertices = _batched("vertices", vertices, None)
    batch, num_vertices = vertices.shape[:2]
    albedo = _batched("albedo", albedo, None).to(vertices)
    if albedo.shape[0] not in (1, batch) or albedo.shape[1] != num_vertices:
        raise InputError(
            f"albedo must be ({num_vertices}, 3) or ({batch}, {num_vertices}, 3), got "
            f"{tuple(albedo.shape)}"
        )
    if len(cameras) == 0:
        raise InputError("render_rgbd needs at least one camera")
    sizes = {(cam.height, cam.width) for cam in cameras}
    if len(sizes) != 1:
        raise InputError(f"all cameras must share one image size, got {sorted(sizes)}")
    (height, width), num_cams = sizes.pop(), len(cameras)
    faces = check_faces(faces, num_vertices, vertices.device)
    clip = torch.stack([cam.to_clip(vertices, near, far) for cam in cameras], dim=1)
    clip = clip.reshape(batch * num_cams, num_vertices, 4)
    colour = albedo.expand(batch, -1, -1)
    if sh_lighting is not None:
        sh_lighting = torch.as_tensor(sh_lighting, device=vertices.device).to(vertices.dtype)
        if sh_lighting.shape != (batch, num_cams, SH_COEFFS):
            raise InputError(
                f"sh_lighting must be ({batch}, {num_cams}, {SH_COEFFS}), got "
                f"{tuple(sh_lighting.shape)}"
            )
        normals = vertex_normals(vertices, faces)
        flip = torch.tensor(_CV_TO_FACE, device=vertices.device, dtype=vertices.dtype)
        rotations = torch.stack(
            [torch.as_tensor(cam.R, device=vertices.device).to(vertices.dtype) for cam in cameras]
        )  # (C, 3, 3)
        cam_normals = torch.einsum("cij,bvj->bcvi", rotations, normals) * flip
        colour = sh_shade(
            colour[:, None].expand(-1, num_cams, -1, -1).reshape(batch * num_cams, -1, 3),
            cam_normals.reshape(batch * num_cams, -1, 3),
            sh_lighting.reshape(batch * num_cams, SH_COEFFS),
        )
    else:
        colour = colour.repeat_interleave(num_cams, dim=0)
    fragments = rasterize(clip, faces, (height, width), backend=backend)
    rgb = interpolate(colour, fragments, faces)
    depth = view_depth(clip, fragments, faces)
    shape = (batch, num_cams, height, width)
    return RenderOutput(
        rgb=rgb.reshape(*shape, 3),
        depth=depth.reshape(shape),
        mask=fragments.mask.reshape(shape),
        triangle_id=fragments.triangle_id.reshape(shape),
    )


# Preview lights in the camera frame (x right, y down, z forward): directions towards the light.
_KEY_LIGHT = (-0.45, -0.6, -1.0)  # upper left of the viewer, in front
_FILL_LIGHT = (0.7, -0.1, -0.8)  # right of the viewer, dimmer
_AMBIENT, _KEY, _FILL, _SPECULAR, _SHININESS = 0.28, 0.72, 0.22, 0.08, 24.0


def render_preview(
    vertices: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    colors: torch.Tensor | np.ndarray | None = None,
    camera: PinholeCamera | None = None,
    width: int = 512,
    height: int = 512,
    view: str = "front",
    background: tuple[int, int, int] = (38, 40, 44),
    light_gamma: float | None = None,
    supersample: int = 2,
    backend: Backend = "auto",
) -> np.ndarray:
    """A good-looking shaded picture of a mesh (or of each frame of a sequence).

    Smooth Lambert shading from a key light above-left of the viewer, a dim fill light from the
    right, ambient light and a faint specular sheen, all fixed to the camera; both sides of a
    surface are lit. Edges are antialiased by supersampling. Dense meshes (at least one vertex per
    8 rendered pixels) are shaded per vertex and interpolated, coarser ones per pixel.

    Args:
        vertices: (V, 3) or (B, V, 3) face-model-convention points (torch or numpy).
        faces: (F, 3) vertex indices.
        colors: (V, 3) or (B, V, 3) albedo in [0, 1]; None gives a neutral skin tone.
        camera: the camera to use (its own image size wins); None frames all frames of the mesh
            with :func:`frame_mesh` (``view``, ``width``, ``height``).
        width, height: image size when ``camera`` is None.
        view: ``front`` or ``three-quarter`` when ``camera`` is None.
        background: RGB 0-255 of uncovered pixels.
        light_gamma: if set, the shading factor is raised to ``1 / light_gamma`` (values > 1
            soften shadows).
        supersample: render at this factor and average down (1 = no antialiasing).
        backend: rasterizer backend.

    Returns:
        (H, W, 3) uint8 for (V, 3) input, (B, H, W, 3) for (B, V, 3) input.
    """
    single = torch.as_tensor(vertices).dim() == 2
    verts = _batched("vertices", vertices, None).detach()
    batch, num_vertices = verts.shape[:2]
    if colors is None:
        albedo = torch.tensor(DEFAULT_SKIN, dtype=verts.dtype, device=verts.device)
        albedo = albedo.expand(1, num_vertices, 3)
    else:
        albedo = _batched("colors", colors, None).detach().to(verts)
        if albedo.shape[0] not in (1, batch) or albedo.shape[1] != num_vertices:
            raise InputError(
                f"colors must be ({num_vertices}, 3) or ({batch}, {num_vertices}, 3), got "
                f"{tuple(albedo.shape)}"
            )
    if len(background) != 3:
        raise InputError(f"background must be (R, G, B), got {background!r}")
    if int(supersample) < 1:
        raise InputError(f"supersample must be >= 1, got {supersample}")
    if light_gamma is not None and not light_gamma > 0:
        raise InputError(f"light_gamma must be positive, got {light_gamma}")
    faces = check_faces(faces, num_vertices, verts.device)
    if camera is None:
        camera = frame_mesh(verts, view=view, width=width, height=height)
    factor = int(supersample)
    big = camera.resized(camera.width * factor, camera.height * factor)
    cam_points = big.world_to_camera(verts)
    depth = cam_points[..., 2]
    front = depth[depth > 0]
    if front.numel() == 0:
        raise InputError("render_preview: the whole mesh is behind the camera")
    near, far = 0.5 * float(front.min()), 2.0 * float(front.max())
    normals = vertex_normals(cam_points, faces)
    colour = albedo.expand(batch, -1, -1)
    # Dense meshes (a vertex per 8 pixels or more) are lit per vertex, the rest per pixel.
    per_vertex = num_vertices * 8 >= big.width * big.height
    if per_vertex:
        vertex_colour = _lambert(
            cam_points.reshape(-1, 3), normals.reshape(-1, 3), colour.reshape(-1, 3), light_gamma
        ).reshape(batch, num_vertices, 3)
    frames_per_chunk = max(1, (1 << 22) // (big.width * big.height))
    bg = torch.tensor(background, dtype=torch.float32) / 255.0
    images = []
    for start in range(0, batch, frames_per_chunk):
        stop = min(batch, start + frames_per_chunk)
        clip = big.to_clip(verts[start:stop], near, far)
        fragments = rasterize(clip, faces, (big.height, big.width), backend=backend)
        if per_vertex:
            lit = interpolate_packed(vertex_colour[start:stop], fragments, faces)
        else:
            inputs = torch.cat([normals[start:stop], colour[start:stop]], dim=-1)
            packed = interpolate_packed(inputs, fragments, faces)
            lit = _lambert(
                _pixel_rays(big, fragments.pixel_index), packed[:, :3], packed[:, 3:], light_gamma
            )
        image = bg.to(lit).expand(stop - start, big.height, big.width, 3).clone()
        image.reshape(-1, 3).index_copy_(0, fragments.pixel_index, lit)
        if factor > 1:
            image = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), factor)
            image = image.permute(0, 2, 3, 1)
        images.append(image)
    out = (torch.cat(images).clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return out[0] if single else out


def _pixel_rays(camera: PinholeCamera, pixel_index: torch.Tensor) -> torch.Tensor:
    """(N, 3) camera-frame ray directions (z = 1) through flat pixel indices of (B, H, W)."""
    rest = torch.remainder(pixel_index, camera.width * camera.height)
    row = torch.div(rest, camera.width, rounding_mode="floor")
    col = rest - row * camera.width
    x = (col.to(torch.float32) - camera.cx) / camera.fx
    y = (row.to(torch.float32) - camera.cy) / camera.fy
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def _lambert(
    position: torch.Tensor, normal: torch.Tensor, albedo: torch.Tensor, light_gamma: float | None
) -> torch.Tensor:
    """(N, 3) colour of camera-frame surface points (or any point on their viewing rays) with
    the preview lights."""
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    to_eye = -position / position.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    facing = (normal * to_eye).sum(-1, keepdim=True)
    normal = torch.where(facing < 0, -normal, normal)  # light both sides
    key = torch.tensor(_KEY_LIGHT, dtype=normal.dtype, device=normal.device)
    fill = torch.tensor(_FILL_LIGHT, dtype=normal.dtype, device=normal.device)
    key, fill = key / key.norm(), fill / fill.norm()
    diffuse = (
        _AMBIENT
        + _KEY * (normal @ key).clamp_min(0)[:, None]
        + _FILL * (normal @ fill).clamp_min(0)[:, None]
    )
    if light_gamma is not None:
        diffuse = diffuse.clamp_min(0) ** (1.0 / light_gamma)
    halfway = to_eye + key
    halfway = halfway / halfway.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sheen = _SPECULAR * (normal * halfway).sum(-1, keepdim=True).clamp_min(0) ** _SHININESS
    return albedo * diffuse + sheen

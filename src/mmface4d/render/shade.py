"""Shading on top of the rasterizer: SH-lit RGB-D for fitting, Lambert previews for people.

SH lighting frame (:func:`render_rgbd`): normals are rotated into each camera and expressed in the
face-model axis convention -- x image-right, y image-up, z towards the camera -- i.e.
``n_sh = diag(1, -1, -1) @ R @ n_world`` (:func:`mmface4d.geometry.frames.flip_axes`). That is
the frame of Deep3DFaceRecon's rotated normals, so its 27 SH coefficients mean the same here; for
a front camera (``R = diag(1, -1, -1)``) it is the world frame itself.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.lighting import SH_COEFFS, sh_shade
from mmface4d.geometry import vertex_normals
from mmface4d.geometry.frames import flip_axes
from mmface4d.geometry.mesh import vertex_normals_by_coordinate
from mmface4d.render.camera import PinholeCamera, frame_mesh
from mmface4d.render.rasterize import (
    Backend,
    Rasterizer,
    check_faces,
    fragments_from_triangle_ids,
    get_rasterizer,
    interpolate,
    preview_interpolator,
    rasterize,
    view_depth,
)

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
    triangle_id: torch.Tensor | None = None,
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
        triangle_id: (B, C, H, W) visible triangles of an earlier render of nearly the same
            meshes (its ``triangle_id``): skips the rasterizer and only recomputes the
            (differentiable) barycentrics of those triangles, the way fitting loops re-test
            visibility only every few iterations.
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
    colour = _vertex_colours(vertices, faces, albedo.expand(batch, -1, -1), cameras, sh_lighting)
    if triangle_id is None:
        fragments = rasterize(clip, faces, (height, width), backend=backend)
    else:
        if tuple(triangle_id.shape) != (batch, num_cams, height, width):
            raise InputError(
                f"triangle_id must be ({batch}, {num_cams}, {height}, {width}), got "
                f"{tuple(triangle_id.shape)}"
            )
        ids = triangle_id.reshape(batch * num_cams, height, width).to(vertices.device)
        fragments = fragments_from_triangle_ids(clip, faces, ids)
    rgb = interpolate(colour, fragments, faces)
    depth = view_depth(clip, fragments, faces)
    shape = (batch, num_cams, height, width)
    return RenderOutput(
        rgb=rgb.reshape(*shape, 3),
        depth=depth.reshape(shape),
        mask=fragments.mask.reshape(shape),
        triangle_id=fragments.triangle_id.reshape(shape),
    )


def _vertex_colours(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    colour: torch.Tensor,
    cameras: Sequence[PinholeCamera],
    sh_lighting: torch.Tensor | None,
) -> torch.Tensor:
    """(B * C, V, 3) per-vertex colour seen by each camera: ``colour`` (B, V, 3) shaded with each
    camera's SH lighting and camera-frame normals (see the module doc), or unshaded."""
    batch, num_cams = len(vertices), len(cameras)
    if sh_lighting is None:
        return colour.repeat_interleave(num_cams, dim=0)
    sh_lighting = torch.as_tensor(sh_lighting, device=vertices.device).to(vertices.dtype)
    if sh_lighting.shape != (batch, num_cams, SH_COEFFS):
        raise InputError(
            f"sh_lighting must be ({batch}, {num_cams}, {SH_COEFFS}), got "
            f"{tuple(sh_lighting.shape)}"
        )
    normals = vertex_normals(vertices, faces)
    rotations = torch.stack(
        [torch.as_tensor(cam.R, device=vertices.device).to(vertices.dtype) for cam in cameras]
    )  # (C, 3, 3)
    # OpenCV camera axes -> x right, y up, z towards the camera (the SH lighting frame)
    cam_normals = flip_axes(torch.einsum("cij,bvj->bcvi", rotations, normals))
    return sh_shade(
        colour[:, None].expand(-1, num_cams, -1, -1).reshape(batch * num_cams, -1, 3),
        cam_normals.reshape(batch * num_cams, -1, 3),
        sh_lighting.reshape(batch * num_cams, SH_COEFFS),
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
    with torch.no_grad():
        images = _preview_frames(
            verts, faces, albedo, camera, background, light_gamma, int(supersample), backend
        )
    out = images.cpu().numpy()
    return out[0] if single else out


# Much of a preview's time goes to the rasterizer's gathers and scatters, which PyTorch runs on
# one thread: on the CPU, up to this many groups of frames are rendered concurrently (measured on
# two cores: 4 groups ~1.5x faster than 1, a little faster than 2). The groups share a budget of
# _PIXELS_IN_FLIGHT pixels: each renders its frames in chunks of its share.
_FRAME_GROUPS = 4
_PIXELS_IN_FLIGHT = 1 << 22
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _preview_frames(
    verts: torch.Tensor,
    faces: torch.Tensor,
    albedo: torch.Tensor,
    camera: PinholeCamera,
    background: tuple[int, int, int],
    light_gamma: float | None,
    factor: int,
    backend: Backend,
) -> torch.Tensor:
    """(B, H, W, 3) uint8 previews of validated (B, V, 3) vertices and (1 | B, V, 3) albedo."""
    big = camera.resized(camera.width * factor, camera.height * factor)
    points = _camera_frame(big, verts)
    near, far = _near_far(points[2])
    groups = _frame_groups(verts.shape[0], verts.device)
    rasterizer = get_rasterizer(backend, verts.device)
    chunk = max(1, _PIXELS_IN_FLIGHT // (len(groups) * big.width * big.height))
    job = _Preview(big, faces, near, far, light_gamma, background, factor, rasterizer, chunk)
    albedo = albedo.permute(2, 0, 1)  # (3, 1 | B, V)

    def frames(start: int, stop: int) -> torch.Tensor:
        colours = albedo if albedo.shape[1] == 1 else albedo[:, start:stop]
        return job.frames(points[:, start:stop], colours)

    pending = [_executor().submit(frames, *group) for group in groups[1:]]
    images = [frames(*groups[0])] + [future.result() for future in pending]
    return images[0] if len(images) == 1 else torch.cat(images)


def _frame_groups(batch: int, device: torch.device) -> list[tuple[int, int]]:
    """(start, stop) of the frame groups to render concurrently (one group off the CPU)."""
    groups = min(batch, _FRAME_GROUPS) if device.type == "cpu" else 1
    size = -(-batch // groups)
    return [(start, min(batch, start + size)) for start in range(0, batch, size)]


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(_FRAME_GROUPS - 1, thread_name_prefix="mmface4d-preview")
        return _EXECUTOR


def _forget_executor() -> None:
    """A forked child inherits the pool but not its threads: it starts its own."""
    global _EXECUTOR, _EXECUTOR_LOCK
    _EXECUTOR, _EXECUTOR_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_executor)


@dataclass(frozen=True)
class _Preview:
    """What the frames of one :func:`render_preview` call share.

    Attributes:
        camera: the (supersampled) camera.
        faces: (F, 3) int64, validated.
        near, far: clipping distances.
        light_gamma, background: as in :func:`render_preview`.
        factor: supersampling factor.
        rasterizer: the visibility backend.
        chunk: frames rasterized at once.
    """

    camera: PinholeCamera
    faces: torch.Tensor
    near: float
    far: float
    light_gamma: float | None
    background: tuple[int, int, int]
    factor: int
    rasterizer: Rasterizer
    chunk: int

    @torch.no_grad()  # also in worker threads: grad mode is per thread
    def frames(self, points: torch.Tensor, albedo: torch.Tensor) -> torch.Tensor:
        """(b, H, W, 3) uint8 images of (3, b, V) camera-frame points, coordinates first.

        The rasterizer's visibility is used directly and colours are interpolated without
        gradients (:func:`preview_interpolator`: the backend's own or :func:`interpolate_visible`),
        skipping the differentiable fragments.

        Args:
            points: (3, b, V) camera-frame vertices.
            albedo: (3, 1 | b, V) RGB.
        """
        cam, faces = self.camera, self.faces
        batch, num_vertices = points.shape[1:]
        normals = vertex_normals_by_coordinate(points, faces)
        # Dense meshes (a vertex per 8 pixels or more) are lit per vertex, the rest per pixel.
        per_vertex = num_vertices * 8 >= cam.width * cam.height
        if per_vertex:  # (b, V, 3), a view of the (3, b, V) colours
            colour = _lambert(points, normals, albedo.contiguous(), self.light_gamma)
        else:
            colour = albedo.expand(-1, batch, -1)
        interpolate = preview_interpolator(self.rasterizer)
        images = []
        for start in range(0, batch, self.chunk):
            stop = min(batch, start + self.chunk)
            clip = _clip_coordinates(cam, points[:, start:stop], self.near, self.far)
            ids = self.rasterizer.visible_triangles(clip, faces, (cam.height, cam.width))
            if per_vertex:
                attributes = colour[:, start:stop].permute(1, 2, 0)
                pixel_index, lit = interpolate(attributes, clip, faces, ids)
            else:
                inputs = torch.cat([normals[:, start:stop], colour[:, start:stop]])
                pixel_index, packed = interpolate(inputs.permute(1, 2, 0), clip, faces, ids)
                lit = self._light_pixels(pixel_index, packed)
            shape = (stop - start, cam.height, cam.width)
            images.append(_compose(lit, pixel_index, shape, self.background, self.factor))
        return images[0] if len(images) == 1 else torch.cat(images)

    def _light_pixels(self, pixel_index: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        """(N, 3) colours of the covered pixels lit one by one, from their interpolated normals
        and albedo (``packed``, (N, 6)); the view vectors, which depend on the pixel only, come
        from the camera's table (:func:`_pixel_view`). Slices of :data:`_LIGHT_SLICE` pixels
        keep the many elementwise steps in the CPU's cache (the same values; the lighting of 8
        frames' pixels took 2.6 instead of 4.9 ms a frame, timed alone on one core)."""
        cam = self.camera
        rows = torch.remainder(pixel_index, cam.width * cam.height)
        table = _pixel_view(cam, pixel_index.device)
        lit = packed.new_empty(3, len(pixel_index))
        for start in range(0, len(pixel_index), _LIGHT_SLICE):
            part = slice(start, start + _LIGHT_SLICE)
            view = table.index_select(1, rows[part])
            normal, albedo = packed[part, :3].t(), packed[part, 3:].t()
            lit[:, part] = _lambert(None, normal, albedo, self.light_gamma, (view[:3], view[3:]))
        return lit.t()


#: Pixels lit at once (see :meth:`_Preview._light_pixels`).
_LIGHT_SLICE = 1 << 16


def _camera_frame(camera: PinholeCamera, verts: torch.Tensor) -> torch.Tensor:
    """(3, B, V) camera-frame coordinates of (B, V, 3) world points, coordinates first.

    :meth:`PinholeCamera.world_to_camera` (``R @ p + t``) as one (3, 3) @ (3, B*V) product,
    which is many times faster on the CPU than the (B*V, 3) @ (3, 3) one.
    """
    rotation = torch.as_tensor(camera.R, device=verts.device).to(verts.dtype)
    translation = torch.as_tensor(camera.t, device=verts.device).to(verts.dtype)
    rows = verts.permute(2, 0, 1).reshape(3, -1)
    return torch.addmm(translation[:, None], rotation, rows).view(3, *verts.shape[:2])


def _near_far(depth: torch.Tensor) -> tuple[float, float]:
    """Clipping distances framing the points in front of the camera (camera-frame z)."""
    low, high = (float(v) for v in torch.aminmax(depth))
    if high <= 0:
        raise InputError("render_preview: the whole mesh is behind the camera")
    if low <= 0:
        low = float(depth[depth > 0].min())
    return 0.5 * low, 2.0 * high


def _clip_coordinates(
    camera: PinholeCamera, points: torch.Tensor, near: float, far: float
) -> torch.Tensor:
    """(B, V, 4) clip coordinates of (3, B, V) camera-frame points.

    The projection of :meth:`PinholeCamera.to_clip` for points already in the camera frame; the
    result is a view of a (4, B, V) buffer, so each clip coordinate is a contiguous row.
    """
    x, y, z = points
    clip = points.new_empty(4, *points.shape[1:])
    torch.mul(x, 2 * camera.fx / camera.width, out=clip[0])
    clip[0].add_(z, alpha=2 * (camera.cx + 0.5) / camera.width - 1)
    torch.mul(y, 2 * camera.fy / camera.height, out=clip[1])
    clip[1].add_(z, alpha=2 * (camera.cy + 0.5) / camera.height - 1)
    torch.mul(z, (far + near) / (far - near), out=clip[2])
    clip[2].sub_(2 * far * near / (far - near))
    clip[3] = z
    return clip.permute(1, 2, 0)


def _to_uint8(colour: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] (clamped) to uint8, rounding to nearest."""
    return colour.clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8)


def _compose(
    lit: torch.Tensor,
    pixel_index: torch.Tensor,
    shape: tuple[int, int, int],
    background: tuple[int, int, int],
    factor: int,
) -> torch.Tensor:
    """(B, H / factor, W / factor, 3) uint8 image of (N, 3) colours at the covered pixels.

    Args:
        lit: (N, 3) colours of the covered pixels.
        pixel_index: (N,) flat indices into ``B * H * W`` (``shape``).
        background: RGB 0-255 of the uncovered pixels.
        factor: supersampling factor: the image is averaged down by it.
    """
    frames, height, width = shape
    pixels = frames * height * width
    if factor == 1:  # quantise only the covered pixels; the background is already uint8
        image = _background(torch.tensor(background, dtype=torch.uint8), pixels).to(lit.device)
        image.index_copy_(0, pixel_index, _to_uint8(lit))
        return image.view(frames, height, width, 3)
    bg = torch.tensor(background, dtype=torch.float32) / 255.0
    image = _background(bg.to(lit), pixels)
    image.index_copy_(0, pixel_index, lit)
    image = image.view(frames, height, width, 3).permute(0, 3, 1, 2)
    image = torch.nn.functional.avg_pool2d(image, factor).permute(0, 2, 3, 1)
    return _to_uint8(image)


def _background(colour: torch.Tensor, pixels: int) -> torch.Tensor:
    """(pixels, 3) image of one (3,) colour: repeating a row is much faster than expanding."""
    row = colour.repeat(min(pixels, 1024))
    return row.repeat(-(-pixels // 1024))[: 3 * pixels].view(pixels, 3)


def _pixel_rays(camera: PinholeCamera, pixel_index: torch.Tensor) -> torch.Tensor:
    """(3, N) camera-frame ray directions (z = 1) through flat pixel indices of (B, H, W)."""
    rest = torch.remainder(pixel_index, camera.width * camera.height)
    row = torch.div(rest, camera.width, rounding_mode="floor")
    col = rest - row * camera.width
    x = (col.to(torch.float32) - camera.cx) / camera.fx
    y = (row.to(torch.float32) - camera.cy) / camera.fy
    return torch.stack([x, y, torch.ones_like(x)])


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    """(3, ...) vectors, coordinates first, scaled to unit length (zero stays zero)."""
    x, y, z = vectors
    length = (x.square() + y.square() + z.square()).sqrt_().clamp_min_(1e-12)
    return vectors / length


def _dot(vectors: torch.Tensor, direction: Sequence[float]) -> torch.Tensor:
    """(...) dot products of (3, ...) vectors with a constant direction."""
    return (
        (vectors[0] * direction[0])
        .add_(vectors[1], alpha=direction[1])
        .add_(vectors[2], alpha=direction[2])
    )


def _unit_tuple(vector: Sequence[float]) -> tuple[float, float, float]:
    length = sum(v * v for v in vector) ** 0.5
    return (vector[0] / length, vector[1] / length, vector[2] / length)


_KEY_DIRECTION, _FILL_DIRECTION = _unit_tuple(_KEY_LIGHT), _unit_tuple(_FILL_LIGHT)


def _view_vectors(position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, ...) unit vectors towards the eye and halfway between them and the key light, of
    (3, ...) camera-frame points (or any points on their viewing rays)."""
    to_eye = _unit(-position)
    key = torch.tensor(_KEY_DIRECTION, dtype=to_eye.dtype, device=to_eye.device)
    return to_eye, _unit(to_eye + key.view(3, *([1] * (to_eye.dim() - 1))))


@functools.lru_cache(maxsize=8)
def _pixel_view_cached(
    intrinsics: tuple[float, float, float, float, int, int], device: torch.device
) -> torch.Tensor:
    fx, fy, cx, cy, width, height = intrinsics
    camera = PinholeCamera(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
    pixels = torch.arange(width * height, device=device)
    to_eye, halfway = _view_vectors(_pixel_rays(camera, pixels))
    return torch.cat([to_eye, halfway])


def _pixel_view(camera: PinholeCamera, device: torch.device) -> torch.Tensor:
    """(6, H * W) :func:`_view_vectors` of every pixel's ray (to the eye, then halfway): the
    same for every frame a camera sees, so computed once per camera (and kept for a few)."""
    key = (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
    return _pixel_view_cached(tuple(float(v) for v in key[:4]) + key[4:], torch.device(device))


def _lambert(
    position: torch.Tensor | None,
    normal: torch.Tensor,
    albedo: torch.Tensor,
    light_gamma: float | None,
    view: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Colour of camera-frame surface points (or any point on their viewing rays) with the
    preview lights.

    Coordinates come first (cheap elementwise maths on contiguous rows): ``position`` and
    ``normal`` are (3, ...), ``albedo`` (3, ...) broadcastable to them; returns (3, ...) RGB.
    ``view``: the positions' :func:`_view_vectors` where already known (then ``position`` is
    not read).
    """
    normal = _unit(normal)
    to_eye, halfway = view if view is not None else _view_vectors(position)
    facing = normal[0] * to_eye[0] + normal[1] * to_eye[1] + normal[2] * to_eye[2]
    flip = facing.clamp_max_(0).sign_().mul_(2).add_(1)  # -1 where facing away: light both sides
    normal = normal * flip
    diffuse = _dot(normal, _KEY_DIRECTION).clamp_min_(0).mul_(_KEY)
    diffuse.add_(_dot(normal, _FILL_DIRECTION).clamp_min_(0), alpha=_FILL).add_(_AMBIENT)
    if light_gamma is not None:
        diffuse = diffuse.clamp_min(0) ** (1.0 / light_gamma)
    sheen = (normal * halfway).sum(0).clamp_min_(0).pow_(_SHININESS).mul_(_SPECULAR)
    return (albedo * diffuse).add_(sheen)

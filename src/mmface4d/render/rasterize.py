"""Triangle rasterization with nvdiffrast's split: visibility first, then interpolation.

:func:`rasterize` decides per pixel which triangle is visible (a z-buffer, no gradients) and then
recomputes that triangle's perspective-correct barycentrics differentiably from its clip-space
vertices; :func:`interpolate` blends per-vertex attributes with them. Gradients therefore flow to
vertex positions and attributes through the barycentrics, as in nvdiffrast without its
antialiasing pass (silhouette edges get no gradient).

Three visibility backends, chosen by the ``backend`` setting: ``torch`` (pure PyTorch, any
device), ``numba`` (the same answers from compiled CPU loops, :mod:`mmface4d.render.numba_backend`;
``auto`` picks it for CPU tensors) and ``nvdiffrast`` (CUDA; ``auto`` picks it on a GPU where it
is installed).

Conventions (shared by the backends, and by :class:`mmface4d.render.PinholeCamera.to_clip`):

- Clip coordinates ``(x, y, z, w)``; NDC ``x/w, y/w, z/w`` in [-1, 1].
- Pixel centres at ``(i + 0.5, j + 0.5)``: column ``i`` samples NDC x = ``2 (i + 0.5) / W - 1``,
  row ``j`` samples NDC y = ``2 (j + 0.5) / H - 1``. Row 0 is NDC y = -1, which a camera whose
  image y axis points down (OpenCV) puts at the top of the picture. This is nvdiffrast's memory
  layout too, so no backend flips.
- Triangles are drawn from both sides (no culling). A pixel is covered when its centre lies inside
  or on the edge of the projected triangle and its depth ``z/w`` lies in [-1, 1] (near/far
  clipping per pixel). Triangles with a vertex at ``w <= 0`` (at or behind the camera plane) are
  skipped whole by the torch and numba backends; nvdiffrast clips them instead.
- Ties in depth go to the lower triangle index.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from mmface4d._optional import require
from mmface4d.errors import InputError
from mmface4d.render.torch_backend import TorchRasterizer

Backend = Literal["auto", "torch", "numba", "nvdiffrast"]
BACKENDS = ("auto", "torch", "numba", "nvdiffrast")


@dataclass
class Fragments:
    """What the rasterizer found at each pixel, stored packed over the N covered pixels.

    Attributes:
        triangle_id: (B, H, W) int64 index into ``faces`` of the visible triangle, -1 where the
            pixel shows background.
        pixel_index: (N,) int64 flat indices into ``B * H * W`` of the covered pixels.
        packed_triangle: (N,) int64 triangle index of each covered pixel.
        corner_vertices: (3, N) int64 vertex index of the triangle's corners at each covered
            pixel (``faces[packed_triangle].T``).
        corner_weights: (3, N) perspective-correct barycentric weight of each corner (summing to
            1 over the corners), differentiable w.r.t. the clip vertices.
        packed_depth: (N,) NDC depth ``z/w`` in [-1, 1], differentiable.

    The dense (B, H, W, ...) views :attr:`barycentrics` and :attr:`depth` are built on access;
    :func:`interpolate` works on the packed values, so gradients never touch background pixels.
    """

    triangle_id: torch.Tensor
    pixel_index: torch.Tensor
    packed_triangle: torch.Tensor
    corner_vertices: torch.Tensor
    corner_weights: torch.Tensor
    packed_depth: torch.Tensor

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[2])

    @property
    def batch_size(self) -> int:
        return int(self.triangle_id.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool, True where a triangle covers the pixel."""
        return self.triangle_id >= 0

    @property
    def packed_batch(self) -> torch.Tensor:
        """(N,) int64 batch index of each covered pixel."""
        height, width = self.resolution
        return torch.div(self.pixel_index, height * width, rounding_mode="floor")

    @property
    def packed_barycentrics(self) -> torch.Tensor:
        """(N, 3) barycentrics of the covered pixels (a view of ``corner_weights``)."""
        return self.corner_weights.t()

    @property
    def barycentrics(self) -> torch.Tensor:
        """(B, H, W, 3) perspective-correct barycentrics, 0 on background (differentiable)."""
        return self.scatter(self.packed_barycentrics)

    @property
    def depth(self) -> torch.Tensor:
        """(B, H, W) NDC depth ``z/w``, 0 on background (differentiable); see :func:`view_depth`
        for metric depth."""
        return self.scatter(self.packed_depth[:, None])[..., 0]

    def scatter(self, packed: torch.Tensor, background: float = 0.0) -> torch.Tensor:
        """Dense (B, H, W, C) image of per-covered-pixel values (N, C); differentiable."""
        height, width = self.resolution
        dense = packed.new_full((self.batch_size * height * width, packed.shape[1]), background)
        dense.index_copy_(0, self.pixel_index, packed)  # in place: no second dense copy
        return dense.reshape(self.batch_size, height, width, packed.shape[1])


@runtime_checkable
class Rasterizer(Protocol):
    """A visibility backend: which triangle each pixel sees.

    Backends implement only the non-differentiable z-buffer; :func:`rasterize` turns its answer
    into differentiable :class:`Fragments` the same way for every backend. A backend may also
    offer its own ``interpolate_visible`` (the arguments and results of the function of that
    name), which previews then use (:func:`preview_interpolator`).
    """

    name: str

    def visible_triangles(
        self, clip_vertices: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> torch.Tensor:
        """(B, H, W) int64 visible triangle per pixel, -1 for background (no gradients).

        Args:
            clip_vertices: (B, V, 4) clip coordinates, finite.
            faces: (F, 3) int64 on the same device, indices in 0..V-1.
            resolution: (H, W), both positive.
        """
        ...


class NvdiffrastRasterizer:
    """nvdiffrast's CUDA rasterizer (optional extra ``mmface4d[nvdiffrast]``; CUDA tensors only).

    Old nvdiffrast releases need both image sides to be multiples of 8 and at most 2048; they
    raise their own error otherwise.
    """

    name = "nvdiffrast"

    def __init__(self) -> None:
        self._dr = require("nvdiffrast.torch", "nvdiffrast")
        self._contexts: dict[torch.device, object] = {}

    @torch.no_grad()
    def visible_triangles(
        self, clip_vertices: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> torch.Tensor:
        if not clip_vertices.is_cuda:
            raise InputError(
                f"the nvdiffrast backend needs CUDA tensors, got clip vertices on "
                f"{clip_vertices.device}; use backend='torch' on the CPU"
            )
        device = clip_vertices.device
        if device not in self._contexts:
            self._contexts[device] = self._dr.RasterizeCudaContext(device=device)
        rast, _ = self._dr.rasterize(
            self._contexts[device],
            clip_vertices.detach().float().contiguous(),
            faces.int().contiguous(),
            resolution=[int(resolution[0]), int(resolution[1])],
            grad_db=False,
        )
        return rast[..., 3].round().long() - 1


_RASTERIZERS: dict[str, Rasterizer] = {}


def get_rasterizer(backend: Backend = "auto", device: torch.device | str = "cpu") -> Rasterizer:
    """The backend a name selects.

    ``auto`` is nvdiffrast for CUDA devices when it is installed (else torch) and numba for CPU
    devices (torch where Numba is missing).

    Args:
        backend: ``auto``, ``torch``, ``numba`` or ``nvdiffrast``.
        device: where the tensors live (decides ``auto``).
    """
    if backend not in BACKENDS:
        raise InputError(f"rasterizer backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if torch.device(device).type == "cuda":
            backend = "nvdiffrast" if _installed("nvdiffrast") else "torch"
        else:
            backend = "numba" if _installed("numba") else "torch"
    if backend not in _RASTERIZERS:
        if backend == "torch":
            _RASTERIZERS[backend] = TorchRasterizer()
        elif backend == "numba":
            from mmface4d.render.numba_backend import NumbaRasterizer

            _RASTERIZERS[backend] = NumbaRasterizer()
        else:
            _RASTERIZERS[backend] = NvdiffrastRasterizer()
    return _RASTERIZERS[backend]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check_inputs(
    clip_vertices: torch.Tensor, faces: torch.Tensor | np.ndarray, resolution: Sequence[int]
) -> tuple[torch.Tensor, tuple[int, int]]:
    if not isinstance(clip_vertices, torch.Tensor):
        raise InputError(
            f"clip_vertices must be a torch tensor, got {type(clip_vertices).__name__}"
        )
    if clip_vertices.dim() != 3 or clip_vertices.shape[-1] != 4:
        raise InputError(f"clip_vertices must be (B, V, 4), got {tuple(clip_vertices.shape)}")
    if not clip_vertices.is_floating_point():
        raise InputError(f"clip_vertices must be floating point, got {clip_vertices.dtype}")
    if clip_vertices.shape[0] == 0 or clip_vertices.shape[1] == 0:
        raise InputError(f"clip_vertices is empty: shape {tuple(clip_vertices.shape)}")
    if not torch.isfinite(clip_vertices).all():
        raise InputError("clip_vertices holds NaN or infinite values")
    faces = check_faces(faces, clip_vertices.shape[1], clip_vertices.device)
    if len(resolution) != 2:
        raise InputError(f"resolution must be (H, W), got {tuple(resolution)}")
    height, width = (int(r) for r in resolution)
    if height <= 0 or width <= 0:
        raise InputError(f"resolution must be positive (H, W), got ({height}, {width})")
    return faces, (height, width)


def check_faces(
    faces: torch.Tensor | np.ndarray, num_vertices: int, device: torch.device | str
) -> torch.Tensor:
    """Validate triangles and return them as an (F, 3) int64 tensor on ``device``.

    Raises:
        InputError: when ``faces`` is not a non-empty (F, 3) integer array indexing 0..V-1.
    """
    faces = torch.as_tensor(faces)
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise InputError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if faces.shape[0] == 0:
        raise InputError("faces is empty: the mesh has no triangles")
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise InputError(f"faces must hold integers, got {faces.dtype}")
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or high >= num_vertices:
        raise InputError(
            f"faces index vertices {low}..{high}, expected 0..{num_vertices - 1} "
            f"({num_vertices} vertices)"
        )
    return faces.to(device=device, dtype=torch.int64)


def rasterize(
    clip_vertices: torch.Tensor,
    faces: torch.Tensor | np.ndarray,
    resolution: Sequence[int],
    backend: Backend | Rasterizer = "auto",
) -> Fragments:
    """Rasterize triangles: visibility by z-buffer, then differentiable barycentrics.

    Args:
        clip_vertices: (B, V, 4) clip coordinates (see the module doc for the conventions).
        faces: (F, 3) integer vertex indices.
        resolution: (H, W) in pixels.
        backend: ``auto``, ``torch``, ``nvdiffrast`` or a :class:`Rasterizer` instance.

    Returns:
        :class:`Fragments`; ``barycentrics`` and ``depth`` carry gradients to ``clip_vertices``.

    Raises:
        InputError: bad shapes, NaN vertices, out-of-range or empty faces, zero-size resolution.
    """
    faces, (height, width) = _check_inputs(clip_vertices, faces, resolution)
    rasterizer = (
        backend
        if isinstance(backend, Rasterizer)
        else get_rasterizer(backend, clip_vertices.device)
    )
    ids = rasterizer.visible_triangles(clip_vertices, faces, (height, width))
    return fragments_from_triangle_ids(clip_vertices, faces, ids)


@dataclass
class _CoveredPixels:
    """The covered pixels of a (B, H, W) triangle-id image, packed (N of them, in raster order)."""

    pixel_index: torch.Tensor  # (N,) int64 flat index into B * H * W
    triangle: torch.Tensor  # (N,) int64 visible triangle
    frame: torch.Tensor  # (N,) int64 batch index
    ndc_x: torch.Tensor  # (N,) NDC x of the pixel centre
    ndc_y: torch.Tensor  # (N,) NDC y of the pixel centre


def _covered_pixels(triangle_id: torch.Tensor, dtype: torch.dtype) -> _CoveredPixels:
    """Pack the covered pixels of ``triangle_id`` (B, H, W); NDC centres in ``dtype``.

    ``nonzero`` on the (B*H, W) view yields rows and columns directly; frames and NDC y come from
    (B*H,) lookup tables, so no per-pixel integer division is needed.
    """
    batch, height, width = triangle_id.shape
    device = triangle_id.device
    row, col = (triangle_id >= 0).reshape(batch * height, width).nonzero().unbind(1)
    pixel_index = row * width + col
    row_ndc = (torch.arange(height, device=device, dtype=dtype) + 0.5) * (2.0 / height) - 1.0
    row_frame = torch.arange(batch, device=device).repeat_interleave(height)
    return _CoveredPixels(
        pixel_index=pixel_index,
        triangle=triangle_id.reshape(-1).index_select(0, pixel_index),
        frame=row_frame.index_select(0, row),
        ndc_x=(col.to(dtype) + 0.5) * (2.0 / width) - 1.0,
        ndc_y=row_ndc.repeat(batch).index_select(0, row),
    )


def _visible_corners(faces: torch.Tensor, triangle: torch.Tensor) -> torch.Tensor:
    """(3, N) int64 corner vertices of the (N,) triangles: ``faces[triangle].T``."""
    faces_t = faces.t().contiguous()  # 1-D gathers: several times faster than (F, 3) rows
    return torch.stack([faces_t[k].index_select(0, triangle) for k in range(3)])


def fragments_from_triangle_ids(
    clip_vertices: torch.Tensor, faces: torch.Tensor, triangle_id: torch.Tensor
) -> Fragments:
    """Differentiable barycentrics and depth of the visible triangles.

    The weights solve ``sum_k b_k (x_k, y_k, w_k) ~ (p_x, p_y, 1)`` for the pixel centre ``p``
    in NDC (2D homogeneous rasterization): with ``q_k = (x_k - p_x w_k, y_k - p_y w_k)`` the
    weight of vertex k is proportional to ``cross(q_i, q_j)`` of the two other vertices, which
    is perspective-correct and needs no division by ``w``.

    Args:
        clip_vertices: (B, V, 4) clip coordinates.
        faces: (F, 3) int64.
        triangle_id: (B, H, W) int64 visible triangle per pixel, -1 for background.
    """
    num_vertices = clip_vertices.shape[1]
    pixels = _covered_pixels(triangle_id, clip_vertices.dtype)
    corner_vertices = _visible_corners(faces, pixels.triangle)  # (3, N)
    table = clip_vertices.reshape(-1, 4).t().contiguous()  # (4, B*V): coordinates outermost
    rows = (corner_vertices + pixels.frame * num_vertices).reshape(-1)
    # One 1-D gather per coordinate: several times faster than gathering rows or columns.
    cx, cy, cz, cw = (table[k].index_select(0, rows).reshape(3, -1) for k in range(4))
    qx = cx - pixels.ndc_x * cw
    qy = cy - pixels.ndc_y * cw
    weights = torch.stack(
        [qx[(k + 1) % 3] * qy[(k + 2) % 3] - qy[(k + 1) % 3] * qx[(k + 2) % 3] for k in range(3)]
    )
    total = weights.sum(dim=0)
    total = torch.where(total == 0, torch.ones_like(total), total)
    bary = weights / total  # (3, N)
    packed_depth = (bary * cz).sum(0) / (bary * cw).sum(0)
    return Fragments(
        triangle_id=triangle_id,
        pixel_index=pixels.pixel_index,
        packed_triangle=pixels.triangle,
        corner_vertices=corner_vertices,
        corner_weights=bary,
        packed_depth=packed_depth,
    )


@torch.no_grad()
def interpolate_visible(
    attributes: torch.Tensor,
    clip_vertices: torch.Tensor,
    faces: torch.Tensor,
    triangle_id: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct attributes at the covered pixels, without gradients (previews).

    The same weights as :func:`fragments_from_triangle_ids` and :func:`interpolate_packed` (equal
    up to float rounding), several times faster: no autograd bookkeeping, no depth, fused
    arithmetic and one coordinate-major table of positions and attributes.

    Args:
        attributes: (B, V, C) or (1, V, C) per-vertex values.
        clip_vertices: (B, V, 4) the clip coordinates that were rasterized.
        faces: (F, 3) int64, validated (see :func:`check_faces`).
        triangle_id: (B, H, W) int64 from :meth:`Rasterizer.visible_triangles`.

    Returns:
        ``pixel_index`` (N,) int64 flat indices into ``B * H * W`` of the covered pixels (in
        raster order) and their (N, C) values, in the clip vertices' dtype, stored channel by
        channel (a transposed view of a (C, N) tensor: each channel's values are contiguous,
        which the per-pixel steps after it read fastest).
    """
    batch, num_vertices = clip_vertices.shape[:2]
    if attributes.dim() != 3 or attributes.shape[0] not in (1, batch):
        raise InputError(
            f"attributes must be (1, V, C) or ({batch}, V, C), got {tuple(attributes.shape)}"
        )
    if attributes.shape[1] != num_vertices:
        raise InputError(
            f"attributes have {attributes.shape[1]} vertices, the clip vertices {num_vertices}"
        )
    dtype, channels = clip_vertices.dtype, attributes.shape[2]
    pixels = _covered_pixels(triangle_id, dtype)
    rows = _visible_corners(faces, pixels.triangle).add_(pixels.frame * num_vertices)
    # (3 + C, B*V): clip x, y, w, then the attributes; one 1-D gather per row and corner.
    table = clip_vertices.new_empty(3 + channels, batch, num_vertices)
    for row, coordinate in enumerate((0, 1, 3)):
        table[row] = clip_vertices[..., coordinate]
    table[3:] = attributes.permute(2, 0, 1)
    table = table.view(3 + channels, -1)
    x, y, w = ([table[c].index_select(0, rows[k]) for k in range(3)] for c in range(3))
    qx = [torch.addcmul(x[k], pixels.ndc_x, w[k], value=-1) for k in range(3)]
    qy = [torch.addcmul(y[k], pixels.ndc_y, w[k], value=-1) for k in range(3)]
    weights = [
        torch.addcmul(qx[i] * qy[j], qy[i], qx[j], value=-1) for i, j in ((1, 2), (2, 0), (0, 1))
    ]
    total = weights[0] + weights[1] + weights[2]
    scale = total.add_(total == 0).reciprocal_()  # 1 where degenerate, as in the fragments
    weights = [weight.mul_(scale) for weight in weights]
    values = clip_vertices.new_empty(channels, len(pixels.pixel_index))
    for c in range(channels):
        corner = [table[3 + c].index_select(0, rows[k]) for k in range(3)]
        blend = corner[0].mul_(weights[0]).addcmul_(corner[1], weights[1])
        values[c] = blend.addcmul_(corner[2], weights[2])
    return pixels.pixel_index, values.t()


def preview_interpolator(rasterizer: Rasterizer):
    """The no-gradient interpolation previews use with ``rasterizer``'s visibility: the
    backend's own ``interpolate_visible`` where it has one (numba), else
    :func:`interpolate_visible`. Both take and give the same things."""
    return getattr(rasterizer, "interpolate_visible", interpolate_visible)


def interpolate(
    attributes: torch.Tensor,
    fragments: Fragments,
    faces: torch.Tensor | np.ndarray,
    background: float = 0.0,
) -> torch.Tensor:
    """Blend per-vertex attributes with the fragments' barycentrics.

    Args:
        attributes: (B, V, C), (1, V, C) or (V, C) per-vertex values.
        fragments: from :func:`rasterize`.
        faces: the (F, 3) triangles that were rasterized (the fragments carry their corners;
            ``faces`` is checked against the attributes' vertex count).
        background: value of uncovered pixels.

    Returns:
        (B, H, W, C), differentiable w.r.t. ``attributes`` and the rasterized vertices.
    """
    return fragments.scatter(interpolate_packed(attributes, fragments, faces), background)


def interpolate_packed(
    attributes: torch.Tensor, fragments: Fragments, faces: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Like :func:`interpolate` but only at the N covered pixels: (N, C)."""
    if not isinstance(attributes, torch.Tensor):
        raise InputError(f"attributes must be a torch tensor, got {type(attributes).__name__}")
    if attributes.dim() == 2:
        attributes = attributes.unsqueeze(0)
    batch = fragments.batch_size
    if attributes.dim() != 3 or attributes.shape[0] not in (1, batch):
        raise InputError(
            f"attributes must be (V, C), (1, V, C) or ({batch}, V, C), got "
            f"{tuple(attributes.shape)}"
        )
    num_vertices, channels = attributes.shape[1], attributes.shape[2]
    faces = torch.as_tensor(faces, device=attributes.device, dtype=torch.int64)
    if faces.dim() != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"faces must be (F, 3) and non-empty, got {tuple(faces.shape)}")
    if int(faces.max()) >= num_vertices:
        raise InputError(
            f"faces index vertex {int(faces.max())} but attributes have {num_vertices} vertices"
        )
    rows = fragments.corner_vertices  # (3, N)
    if attributes.shape[0] > 1:
        rows = rows + fragments.packed_batch * num_vertices
    table = attributes.reshape(-1, channels).t().contiguous()  # (C, B*V)
    rows = rows.reshape(-1)
    weights = fragments.corner_weights.to(attributes.dtype)  # (3, N)
    values = torch.stack(
        [(weights * table[c].index_select(0, rows).reshape(3, -1)).sum(0) for c in range(channels)],
        dim=1,
    )
    return values


def view_depth(
    clip_vertices: torch.Tensor, fragments: Fragments, faces: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Metric depth per pixel: the perspective-correct interpolation of clip ``w``.

    For a pinhole camera (:meth:`PinholeCamera.to_clip`) ``w`` is the camera-frame z, so this is
    the depth image in the vertices' unit (metres for the project's meshes).

    Args:
        clip_vertices: (B, V, 4) the clip vertices that were rasterized.
        fragments: from :func:`rasterize`.
        faces: (F, 3).

    Returns:
        (B, H, W) depth, 0 on background; differentiable.
    """
    return interpolate(clip_vertices[..., 3:4], fragments, faces)[..., 0]

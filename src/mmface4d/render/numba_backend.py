"""The compiled CPU rasterizer behind ``backend="numba"`` (the default for CPU tensors).

It gives the pure-PyTorch backend's answers (:mod:`mmface4d.render.torch_backend`) with loops
that Numba compiles, instead of grids of candidate pixels and scatters:

- :meth:`NumbaRasterizer.visible_triangles` follows the torch backend step for step: the same
  per-triangle set-up (screen-space corners, the box of pixel centres, the edge functions
  relative to the box's first pixel and the plane of the quantised depth ``z/w``, with the same
  floating-point operations in the same order, fused multiply-adds where PyTorch's kernels fuse
  them), the same careful tests for triangles at the image border or across the near/far planes
  (skipped, as there, for a step of frames whose vertices all lie inside), and the same
  ``quantised depth << 32 | triangle index`` keys, the smallest kept per pixel. It walks each
  triangle's box pixel by pixel, so its triangle ids are the torch backend's (tested pixel for
  pixel) at a fraction of the cost.
- :meth:`NumbaRasterizer.interpolate_visible` is :func:`mmface4d.render.rasterize.
  interpolate_visible` (perspective-correct attributes at the covered pixels, no gradients: what
  previews and videos use) as one loop over the pixels: bit for bit in float32 (tested), to the
  last bit in float64 (where the loops do not fuse the multiply-adds PyTorch fuses).

Gradients never come here: :func:`mmface4d.render.rasterize.rasterize` recomputes the visible
triangles' barycentrics in PyTorch, whichever backend found them. The loops release the GIL, so
the concurrent frame groups of :func:`mmface4d.render.render_preview` run in parallel. They are
compiled on first use and cached on disk by Numba (``NUMBA_CACHE_DIR`` moves the cache).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from mmface4d.errors import InputError
from mmface4d.render.torch_backend import _DEPTH_STEPS, _ID_BITS, _MISS_DEPTH

_MISS_KEY = int(_MISS_DEPTH) << _ID_BITS
_ID_MASK = (1 << _ID_BITS) - 1
# error_model="numpy": a division by zero gives inf or NaN as in PyTorch, without checks
_jit = numba.njit(nogil=True, cache=True, error_model="numpy")

# The loops below are compiled by Numba; coverage cannot see inside them.


@_jit
def _fma(a, b, c, single):  # pragma: no cover
    """``a * b + c`` as PyTorch's CPU ``addcmul`` computes it: fused (one rounding). For float32
    data (``single``) the float64 product is exact and one rounding to float32 follows (the sum's
    float64 rounding can differ from a true fused result only on an exact float32 tie); for
    float64 data an unfused multiply-add, which may differ from PyTorch's in the last bit."""
    if single:
        return np.float32(np.float64(a) * np.float64(b) + np.float64(c))
    return a * b + c


@_jit
def _screen(clip, consts):  # pragma: no cover
    """(3, b, V) screen x, y (pixels, centres at i + 0.5) and z/w of (b, V, 4) clip vertices, and
    whether every vertex lies at least a pixel inside the image and between the near and far
    planes (``torch_backend._all_inside``). ``(x * (1 / w) + 1) * (W / 2)`` as there; NaN for a
    vertex behind the camera, which is never inside."""
    frames, count = clip.shape[0], clip.shape[1]
    zero, one, half_w, half_h = consts[0], consts[2], consts[6], consts[7]
    width, height = consts[8], consts[9]
    nan = consts[12]
    screen = np.empty((3, frames, count), dtype=clip.dtype)
    inside = True
    for f in range(frames):
        for v in range(count):
            w = clip[f, v, 3]
            inv = one / w if w > zero else nan
            x = (clip[f, v, 0] * inv + one) * half_w
            y = (clip[f, v, 1] * inv + one) * half_h
            z = clip[f, v, 2] * inv
            screen[0, f, v] = x
            screen[1, f, v] = y
            screen[2, f, v] = z
            ok = x - one >= zero and width - one - x >= zero and y - one >= zero
            if not (ok and height - one - y >= zero and z >= -one and z <= one):
                inside = False
    return screen, inside


@_jit
def _scan_frames(clip, faces, width, height, consts, single, zbuf):  # pragma: no cover
    """Keep the nearest hit of every triangle of b frames in ``zbuf`` (b * H * W keys).

    Mirrors ``torch_backend._set_up`` (box, edges, depth plane, usable and careful flags; sums of
    three in the order (0 + 1) + 2) and ``torch_backend._scan_boxes`` (a function's value at
    pixel offset (dx, dy) is ``(C + B dy) + A dx``; a hit has every tested value >= 0; its depth
    is ``min(max(depth, 0), miss)``, truncated).
    """
    zero, half, one, steps, miss, half_steps = (
        consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    )  # fmt: skip
    limit_x, limit_y = consts[8], consts[9]
    screen, inside = _screen(clip, consts)
    frames, num_faces = clip.shape[0], faces.shape[0]
    xs = np.empty(3, dtype=clip.dtype)
    ys = np.empty(3, dtype=clip.dtype)
    zs = np.empty(3, dtype=clip.dtype)
    ex = np.empty(3, dtype=clip.dtype)
    ey = np.empty(3, dtype=clip.dtype)
    ec = np.empty(3, dtype=clip.dtype)
    for f in range(frames):
        frame_first = np.int64(f) * width * height
        for t in range(num_faces):
            for k in range(3):
                v = faces[t, k]
                xs[k] = screen[0, f, v]
                ys[k] = screen[1, f, v]
                zs[k] = screen[2, f, v]
            # a NaN corner (behind the camera) makes the area NaN: never usable, as in torch
            low_x = min(min(xs[0], xs[1]), xs[2])
            high_x = max(max(xs[0], xs[1]), xs[2])
            low_y = min(min(ys[0], ys[1]), ys[2])
            high_y = max(max(ys[0], ys[1]), ys[2])
            first_x = min(max(np.ceil(low_x - half), zero), limit_x)
            first_y = min(max(np.ceil(low_y - half), zero), limit_y)
            last_x = max(min(np.floor(high_x - half), limit_x - one), -one)
            last_y = max(min(np.floor(high_y - half), limit_y - one), -one)
            size_x = last_x - first_x + one
            size_y = last_y - first_y + one
            # edge k runs from corner k+1 to corner k+2; ec_k: its value at the first pixel
            for k in range(3):
                i, j = (k + 1) % 3, (k + 2) % 3
                ex[k] = xs[j] - xs[i]
                ey[k] = ys[j] - ys[i]
                ec[k] = ex[k] * ((first_y + half) - ys[i]) - ey[k] * ((first_x + half) - xs[i])
            area = (ec[0] + ec[1]) + ec[2]
            if not (area != zero and size_x > zero and size_y > zero and np.isfinite(area)):
                continue
            careful = False
            if not inside:
                z_low = min(min(zs[0], zs[1]), zs[2])
                z_high = max(max(zs[0], zs[1]), zs[2])
                if not (z_low <= one and z_high >= -one):
                    continue
                room_x = min(first_x, limit_x - one - last_x)
                room = min(room_x, min(first_y, limit_y - one - last_y))
                careful = room <= zero or z_low < -one or z_high > one
            sign = np.sign(area)
            scale = half_steps / area
            a0, a1, a2 = ey[0] * -sign, ey[1] * -sign, ey[2] * -sign
            b0, b1, b2 = ex[0] * sign, ex[1] * sign, ex[2] * sign
            c0, c1, c2 = ec[0] * sign, ec[1] * sign, ec[2] * sign
            a3 = ((ey[0] * zs[0] + ey[1] * zs[1]) + ey[2] * zs[2]) * -scale
            b3 = ((ex[0] * zs[0] + ex[1] * zs[1]) + ex[2] * zs[2]) * scale
            c3 = _fma((ec[0] * zs[0] + ec[1] * zs[1]) + ec[2] * zs[2], scale, half_steps, single)
            # careful channels: the box limits (size - 0.5 - d) and the far limit (steps - depth)
            c4, c5 = size_x - half, size_y - half
            a6, b6, c6 = -a3, -b3, steps - c3
            start = frame_first + np.int64(first_y) * width + np.int64(first_x)
            for dy in range(np.int64(size_y)):
                fy = consts[13 + dy]
                d0, d1, d2, d3 = c0 + b0 * fy, c1 + b1 * fy, c2 + b2 * fy, c3 + b3 * fy
                d4, d5, d6 = c4 + zero * fy, c5 + (-one) * fy, c6 + b6 * fy
                row = start + dy * width
                for dx in range(np.int64(size_x)):
                    fx = consts[13 + dx]
                    lowest = min(min(d0 + a0 * fx, d1 + a1 * fx), d2 + a2 * fx)
                    depth = d3 + a3 * fx
                    if careful:
                        limits = min(min(d4 + (-one) * fx, d5 + zero * fx), d6 + a6 * fx)
                        lowest = min(min(lowest, depth), limits)
                    if lowest < zero:
                        continue
                    depth = min(max(depth, zero), miss)
                    if depth >= miss:
                        continue
                    key = (np.int64(depth) << 32) + t
                    pixel = row + dx
                    if key < zbuf[pixel]:
                        zbuf[pixel] = key


@_jit
def _keys_to_ids(zbuf, miss_key, mask):  # pragma: no cover
    """Z-buffer keys to triangle ids in place: the low 32 bits, -1 where nothing was kept."""
    for i in range(zbuf.shape[0]):
        key = zbuf[i]
        zbuf[i] = key & mask if key < miss_key else -1


@_jit
def _interpolate(attributes, clip, faces, ids, height, width, consts, single):  # pragma: no cover
    """Covered pixels (raster order) and their perspective-correct attributes, (C, N).

    ``rasterize.interpolate_visible``'s arithmetic per pixel: the centre's NDC
    ``(i + 0.5) * (2 / W) - 1``, ``q_k = (x_k - p_x w_k, y_k - p_y w_k)``, weight k
    ``q_i x q_j`` (fused as there), weights scaled by ``1 / total`` (1 when the total is 0),
    values blended corner 0, then 1, then 2 (fused).
    """
    pixels = ids.shape[0]
    count = 0
    for p in range(pixels):
        if ids[p] >= 0:
            count += 1
    channels = attributes.shape[2]
    shared = attributes.shape[0] == 1
    index = np.empty(count, dtype=np.int64)
    values = np.empty((channels, count), dtype=clip.dtype)  # channel by channel
    zero, half, one = consts[0], consts[1], consts[2]
    ndc_x = np.empty(width, dtype=clip.dtype)
    ndc_y = np.empty(height, dtype=clip.dtype)
    for col in range(width):
        ndc_x[col] = (consts[13 + col] + half) * consts[10] - one
    for row in range(height):
        ndc_y[row] = (consts[13 + row] + half) * consts[11] - one
    n = 0
    p = 0
    for frame in range(pixels // (height * width)):
        a = 0 if shared else frame
        for row in range(height):
            py = -ndc_y[row]
            for col in range(width):
                t = ids[p]
                if t >= 0:
                    px = -ndc_x[col]
                    v0, v1, v2 = faces[t, 0], faces[t, 1], faces[t, 2]
                    qx0 = _fma(px, clip[frame, v0, 3], clip[frame, v0, 0], single)
                    qx1 = _fma(px, clip[frame, v1, 3], clip[frame, v1, 0], single)
                    qx2 = _fma(px, clip[frame, v2, 3], clip[frame, v2, 0], single)
                    qy0 = _fma(py, clip[frame, v0, 3], clip[frame, v0, 1], single)
                    qy1 = _fma(py, clip[frame, v1, 3], clip[frame, v1, 1], single)
                    qy2 = _fma(py, clip[frame, v2, 3], clip[frame, v2, 1], single)
                    w0 = _fma(-qy1, qx2, qx1 * qy2, single)
                    w1 = _fma(-qy2, qx0, qx2 * qy0, single)
                    w2 = _fma(-qy0, qx1, qx0 * qy1, single)
                    total = (w0 + w1) + w2
                    scale = one / (total + (one if total == zero else zero))
                    w0, w1, w2 = w0 * scale, w1 * scale, w2 * scale
                    for c in range(channels):
                        blend = _fma(attributes[a, v1, c], w1, attributes[a, v0, c] * w0, single)
                        values[c, n] = _fma(attributes[a, v2, c], w2, blend, single)
                    index[n] = p
                    n += 1
                p += 1
    return index, values


def _constants(height: int, width: int, dtype: torch.dtype) -> np.ndarray:
    """The kernels' constants in the data's dtype (no value is promoted to another precision):
    0, 0.5, 1, depth steps, miss depth, half the steps, W / 2, H / 2, W, H, 2 / W, 2 / H, NaN,
    then the offsets 0, 1, 2, ... up to the image's larger side."""
    fixed = [0.0, 0.5, 1.0, _DEPTH_STEPS, _MISS_DEPTH, 0.5 * _DEPTH_STEPS]
    fixed += [0.5 * width, 0.5 * height, float(width), float(height), 2.0 / width, 2.0 / height]
    fixed += [float("nan")]
    offsets = np.arange(max(height, width) + 2, dtype=np.float64)
    kind = np.float64 if dtype == torch.float64 else np.float32
    return np.concatenate([fixed, offsets]).astype(kind)


class NumbaRasterizer:
    """Compiled CPU backend with the torch backend's answers (see the module doc).

    Args:
        step_triangles: triangles (frames x faces) whose careful tests are decided together:
            the torch backend's CPU step, so that both decide them alike.
    """

    name = "numba"

    def __init__(self, step_triangles: int = 1 << 17) -> None:
        if step_triangles < 1:
            raise InputError(f"step_triangles must be positive, got {step_triangles}")
        self.step_triangles = int(step_triangles)

    @staticmethod
    def _cpu(tensor: torch.Tensor) -> None:
        if tensor.device.type != "cpu":
            raise InputError(
                f"the numba backend renders CPU tensors, got a tensor on {tensor.device}; use "
                "backend='torch' or 'nvdiffrast'"
            )

    @torch.no_grad()
    def visible_triangles(
        self, clip_vertices: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> torch.Tensor:
        """(B, H, W) int64 visible triangle per pixel, -1 for background (no gradients)."""
        self._cpu(clip_vertices)
        height, width = resolution
        batch = clip_vertices.shape[0]
        num_faces = faces.shape[0]
        if num_faces >= 1 << 31:
            raise InputError(f"at most 2**31 - 1 faces, got {num_faces}")
        dtype = torch.float64 if clip_vertices.dtype == torch.float64 else torch.float32
        clip = clip_vertices.detach().to(dtype).contiguous().numpy()
        corners = faces.contiguous().numpy()
        consts = _constants(height, width, dtype)
        pixels = height * width
        zbuf = np.full(batch * pixels, _MISS_KEY, dtype=np.int64)
        frames_per_step = min(batch, max(1, self.step_triangles // num_faces))
        for start in range(0, batch, frames_per_step):
            stop = min(batch, start + frames_per_step)
            _scan_frames(
                clip[start:stop],
                corners,
                width,
                height,
                consts,
                dtype == torch.float32,
                zbuf[start * pixels :],
            )
        _keys_to_ids(zbuf, _MISS_KEY, _ID_MASK)
        return torch.from_numpy(zbuf).view(batch, height, width)

    @torch.no_grad()
    def interpolate_visible(
        self,
        attributes: torch.Tensor,
        clip_vertices: torch.Tensor,
        faces: torch.Tensor,
        triangle_id: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`mmface4d.render.rasterize.interpolate_visible` (same arguments and results),
        compiled; inputs checked by the caller."""
        self._cpu(clip_vertices)
        batch, height, width = triangle_id.shape
        dtype = clip_vertices.dtype
        index, values = _interpolate(
            attributes.detach().to(dtype).contiguous().numpy(),
            clip_vertices.detach().contiguous().numpy(),
            faces.contiguous().numpy(),
            triangle_id.contiguous().view(-1).numpy(),
            height,
            width,
            _constants(height, width, dtype),
            dtype == torch.float32,
        )
        return torch.from_numpy(index), torch.from_numpy(values).t()

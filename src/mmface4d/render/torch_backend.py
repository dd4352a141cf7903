"""The pure-PyTorch z-buffer behind ``backend="torch"`` (CPU or CUDA, no compiled code).

How it stays fast without a loop over triangles:

1. Set-up per triangle, vectorised: screen-space corners, the pixel-centre bounding box clamped
   to the image, edge functions written relative to the box's first pixel (small numbers, so
   float32 decides coverage accurately anywhere in a large image) and the screen-space plane of
   the quantised depth. Triangles whose box holds no pixel centre (faces smaller than a pixel,
   off-screen, behind the camera, degenerate, beyond near/far) cost nothing after this.
2. The rest are grouped by box size, rounded up per axis to 1, 2, 3, 4, 6, 8, 12, 16, ... (at
   most 1.5x wasted per axis); groups too small to pay for their own pass are merged into a
   larger one. A group of T triangles with boxes of at most ``kx`` x ``ky`` pixels is tested as
   one (channels, ky, kx, T) grid of affine functions -- each is separable in x and y, so the
   grid is one broadcast add, with the triangles innermost so that every op vectorises. There
   are no per-pixel gathers.
3. Covered pixels go into a z-buffer of int64 keys ``quantised z/w << 32 | triangle index``, one
   ``scatter_reduce(amin)`` per group: the nearest wins, ties go to the lower index.

Triangles whose box touches the image border or that straddle the near/far planes are kept in
separate "careful" groups that also test the box limits and the depth range; the others need
only their three edges.

Frames are processed a few at a time (``step_triangles`` triangles per step) so that a step's
working set stays in the CPU cache; on CUDA the steps are much larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmface4d.errors import InputError

_NO_HIT = torch.iinfo(torch.int64).max  # its low 32 bits read as -1 (no triangle)
_DEPTH_STEPS = float(1 << 30)  # quantisation of z/w in [-1, 1] inside the z-buffer key
_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1
_SIZE_BITS = 16  # a group key packs (careful << 32) | (kx << 16) | ky
_CAREFUL = 1 << 32
_EDGE_AND_DEPTH = 4  # channels 0-2: edges, 3: quantised depth; 4, 5: box limits, 6: far limit


@dataclass
class _Triangles:
    """Set-up of every triangle of b frames (T = b x F rows).

    ``table[:, t]`` holds 21 coefficients of seven affine functions ``A dx + B dy + C`` of the pixel
    offsets from the box's first pixel centre, laid out as
    ``[A_0..3, B_0..3, C_0..3, A_4..6, B_4..6, C_4..6]``. Functions 0-2 are the edges (>= 0
    inside), 3 is the quantised depth ``(z/w + 1) / 2 * 2**30`` (>= 0 past the near plane),
    4 and 5 the box's right and bottom limits and 6 the far limit ``2**30 - depth``.
    """

    table: torch.Tensor  # (21, T) float: triangles innermost, so grid ops vectorise over T
    base: torch.Tensor  # (T,) int64 flat pixel index of the box's first pixel (frame included)
    group: torch.Tensor  # (T,) int64 group key (see _SIZE_BITS); 0 = covers no pixel centre


def _box_bucket(size: torch.Tensor) -> torch.Tensor:
    """Smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... that is >= size (size >= 1, int64)."""
    exponent = torch.frexp((size - 1).to(torch.float32)).exponent.to(torch.int64)
    power = torch.ones_like(size) << exponent
    three_quarters = (3 * power) >> 2
    return torch.where(three_quarters >= size, three_quarters, power)


def _unpack_group(key: int) -> tuple[int, int, bool]:
    mask = (1 << _SIZE_BITS) - 1
    return (key >> _SIZE_BITS) & mask, key & mask, bool(key & _CAREFUL)


def _plan_groups(
    keys: list[int], counts: list[int], merge_cells: int
) -> list[tuple[int, int, bool, list[int]]]:
    """Merge size groups whose own pass would cost more than their wasted cells.

    Returns (kx, ky, careful, indices of the source groups) per pass, biggest boxes first.
    """
    passes: list[tuple[int, int, bool, list[int]]] = []
    by_cells = sorted(
        (i for i, key in enumerate(keys) if key != 0),
        key=lambda i: -(_unpack_group(keys[i])[0] * _unpack_group(keys[i])[1]),
    )
    for i in by_cells:
        width, height, careful = _unpack_group(keys[i])
        best = None
        for p, (pw, ph, pc, _) in enumerate(passes):
            if pc == careful and pw >= width and ph >= height:
                if best is None or pw * ph < passes[best][0] * passes[best][1]:
                    best = p
        if best is not None:
            extra = counts[i] * (passes[best][0] * passes[best][1] - width * height)
            if extra <= merge_cells:
                passes[best][3].append(i)
                continue
        passes.append((width, height, careful, [i]))
    return passes


class TorchRasterizer:
    """Pure-PyTorch visibility backend (see the module doc for the method).

    Args:
        chunk_pairs: most (triangle, pixel) tests held at once (about 40 bytes each).
        step_triangles: triangles (frames x faces) set up together; ``None`` picks 2**17 on the
            CPU (cache-sized) and 2**22 on CUDA.
        merge_cells: a size group is folded into a larger one when that wastes at most this
            many extra tests (a pass has a fixed cost of roughly this many tests).
    """

    name = "torch"

    def __init__(
        self,
        chunk_pairs: int = 1 << 18,
        step_triangles: int | None = None,
        merge_cells: int = 1 << 14,
    ) -> None:
        if chunk_pairs < 1:
            raise InputError(f"chunk_pairs must be positive, got {chunk_pairs}")
        if step_triangles is not None and step_triangles < 1:
            raise InputError(f"step_triangles must be positive, got {step_triangles}")
        self.chunk_pairs = int(chunk_pairs)
        self.step_triangles = step_triangles
        self.merge_cells = int(merge_cells)

    @torch.no_grad()
    def visible_triangles(
        self, clip_vertices: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> torch.Tensor:
        """(B, H, W) int64 visible triangle per pixel, -1 for background (no gradients)."""
        height, width = resolution
        batch = clip_vertices.shape[0]
        budget = self.step_triangles or (1 << 22 if clip_vertices.is_cuda else 1 << 17)
        frames_per_step = max(1, budget // faces.shape[0])
        dtype = torch.float64 if clip_vertices.dtype == torch.float64 else torch.float32
        clip = clip_vertices.detach().to(dtype)
        if faces.shape[0] >= 1 << 31:
            raise InputError(f"at most 2**31 - 1 faces, got {faces.shape[0]}")
        pixels = height * width
        zbuf = torch.full((batch * pixels,), _NO_HIT, dtype=torch.int64, device=faces.device)
        for start in range(0, batch, frames_per_step):
            stop = min(batch, start + frames_per_step)
            # The step's frames start at its slice; later frames' pixels serve as padding.
            self._scan_frames(clip[start:stop], faces, height, width, zbuf[start * pixels :])
        # Keep the low 32 bits, sign-extended: the triangle index, and -1 where _NO_HIT stayed.
        return (
            zbuf.bitwise_left_shift_(_ID_BITS)
            .bitwise_right_shift_(_ID_BITS)
            .view(batch, height, width)
        )

    def _scan_frames(
        self, clip: torch.Tensor, faces: torch.Tensor, height: int, width: int, zbuf: torch.Tensor
    ) -> None:
        """Scatter the packed depth/triangle keys of b frames into ``zbuf`` (from its start)."""
        num_faces = faces.shape[0]
        tris = _set_up(clip, faces, height, width)
        sorted_keys, order = torch.sort(tris.group)
        keys, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
        keys, counts = keys.tolist(), counts.tolist()
        starts = [0]
        for count in counts[:-1]:
            starts.append(starts[-1] + count)
        for group_w, group_h, careful, sources in _plan_groups(keys, counts, self.merge_cells):
            parts = [order[starts[i] : starts[i] + counts[i]] for i in sources]
            members = parts[0] if len(parts) == 1 else torch.cat(parts)
            per_chunk = max(1, self.chunk_pairs // (group_w * group_h))
            for first in range(0, len(members), per_chunk):
                chunk = members[first : first + per_chunk]
                _scan_boxes(zbuf, tris, chunk, num_faces, group_w, group_h, careful, width)


def _set_up(clip: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> _Triangles:
    """Per-triangle boxes, coverage/depth functions and size groups of b frames."""
    frames, num_vertices = clip.shape[:2]
    num_faces = faces.shape[0]
    count = frames * num_faces
    device, dtype = clip.device, clip.dtype
    w = clip[..., 3]
    inv_w = torch.where(w > 0, 1 / w, torch.full_like(w, float("nan")))  # NaN: behind camera
    screen = torch.empty(3, frames, num_vertices, dtype=dtype, device=device)
    torch.mul(clip[..., 0] * inv_w + 1, 0.5 * width, out=screen[0])  # pixel centres at i + 0.5
    torch.mul(clip[..., 1] * inv_w + 1, 0.5 * height, out=screen[1])
    torch.mul(clip[..., 2], inv_w, out=screen[2])
    # Corners 0, 1, 2, 0, 1 of every triangle: rows [0:3] are the corners, [1:4] the next
    # ones and [2:5] the ones after, as views.
    offsets = torch.arange(frames, device=device) * num_vertices
    cycle = faces.t()[[0, 1, 2, 0, 1]]  # (5, F)
    corner_index = (offsets[None, :, None] + cycle[:, None, :]).reshape(-1)
    sx5, sy5, zn5 = (
        screen[k].reshape(-1).index_select(0, corner_index).reshape(5, count) for k in range(3)
    )
    sx, sy, zn = sx5[:3], sy5[:3], zn5[:3]  # (3 corners, T) each
    limit = torch.tensor([[width], [height]], dtype=dtype, device=device)
    lowest = torch.stack([sx.amin(0), sy.amin(0)])
    highest = torch.stack([sx.amax(0), sy.amax(0)])
    first = torch.minimum(torch.ceil(lowest - 0.5).clamp_(min=0), limit)  # (2, T): x0, y0
    last = torch.minimum(torch.floor(highest - 0.5), limit - 1).clamp_(min=-1)  # x1, y1
    size = last - first + 1  # (2, T): box width, height
    # Edge k runs from corner k+1 to corner k+2 and vanishes there; E_k = area at corner k.
    sx_i, sy_i = sx5[1:4], sy5[1:4]
    ex, ey = sx5[2:5] - sx_i, sy5[2:5] - sy_i
    ec = ex * (first[1] + 0.5 - sy_i) - ey * (first[0] + 0.5 - sx_i)
    area = ec.sum(0)  # twice the signed area in pixels; NaN behind the camera
    zmin, zmax = zn.amin(0), zn.amax(0)
    usable = (area != 0) & (size > 0).all(0) & (zmin <= 1) & (zmax >= -1) & torch.isfinite(area)
    sign = torch.sign(area)
    half_steps = 0.5 * _DEPTH_STEPS
    scale = torch.where(usable, half_steps / area, torch.zeros_like(area))
    table = torch.empty(21, count, dtype=dtype, device=device)
    torch.mul(ey, -sign, out=table[0:3])
    torch.mul((ey * zn).sum(0), -scale, out=table[3])  # quantised depth: a, b, c
    torch.mul(ex, sign, out=table[4:7])
    torch.mul((ex * zn).sum(0), scale, out=table[7])
    torch.mul(ec, sign, out=table[8:11])
    torch.addcmul(torch.full_like(area, half_steps), (ec * zn).sum(0), scale, out=table[11])
    table[12:17] = torch.tensor([-1.0, 0.0, 0.0, 0.0, -1.0], dtype=dtype, device=device)[:, None]
    torch.neg(table[3], out=table[14])  # far limit: steps - depth
    torch.neg(table[7], out=table[17])
    torch.sub(size, 0.5, out=table[18:20])  # box limits: size - 0.5 - d >= 0
    torch.sub(_DEPTH_STEPS, table[11], out=table[20])
    careful = (first == 0).any(0) | (last == limit - 1).any(0) | (zmin < -1) | (zmax > 1)
    buckets = _bucket_table(max(width, height) + 1, device)
    size = torch.where(usable, size, torch.ones_like(size))  # no NaN past here
    bucket = buckets.index_select(0, size.long().reshape(-1)).reshape(2, count)
    group = (bucket[0] << _SIZE_BITS) | bucket[1] | (careful.long() << 32)
    start = first.clamp(max=limit - 1).long()
    base = start[1] * width + start[0]
    if frames > 1:
        frame = torch.arange(frames, device=device).repeat_interleave(num_faces)
        base += frame * (height * width)
    return _Triangles(
        table=table, base=base, group=torch.where(usable, group, torch.zeros_like(group))
    )


_BUCKETS: dict[tuple[int, str], torch.Tensor] = {}


def _bucket_table(size: int, device: torch.device) -> torch.Tensor:
    """Lookup table of :func:`_box_bucket` for sizes 0..size (0 maps to 1)."""
    key = (size, str(device))
    if key not in _BUCKETS:
        sizes = torch.arange(size + 1, device=device).clamp_min(1)
        _BUCKETS[key] = _box_bucket(sizes)
    return _BUCKETS[key]


def _scan_boxes(
    zbuf: torch.Tensor,
    tris: _Triangles,
    members: torch.Tensor,
    num_faces: int,
    group_w: int,
    group_h: int,
    careful: bool,
    width: int,
) -> None:
    """Test the (group_h, group_w) pixel grid of each member triangle; keep the nearest hits."""
    device = zbuf.device
    count = len(members)
    rows = (tris.table if careful else tris.table[:12]).index_select(1, members)  # (12|21, T)
    coeffs = rows[:12].reshape(3, _EDGE_AND_DEPTH, count)  # (A|B|C, channels, T)
    if careful:
        coeffs = torch.cat([coeffs, rows[12:].reshape(3, 3, count)], dim=1)
    dx = torch.arange(group_w, device=device, dtype=rows.dtype)[None, :, None]
    dy = torch.arange(group_h, device=device, dtype=rows.dtype)[None, :, None]
    down = coeffs[2, :, None, :] + coeffs[1, :, None, :] * dy  # (channels, gh, T)
    across = coeffs[0, :, None, :] * dx  # (channels, gw, T)
    values = down[:, :, None, :] + across[:, None, :, :]  # (channels, gh, gw, T)
    # Careful groups test every channel (depth >= 0 is the near plane); the others only edges.
    inside = (values if careful else values[:3]).amin(dim=0) >= 0
    depth = values[3] if careful else values[3].clamp_min(0)
    key = (depth.long() << _ID_BITS) | torch.remainder(members, num_faces)
    key = torch.where(inside, key, _NO_HIT)
    offset = torch.arange(group_h, device=device)[:, None] * width + torch.arange(
        group_w, device=device
    )
    pixel = tris.base.index_select(0, members) + offset[:, :, None]
    # Grid cells past a box's end may run past the buffer: they never hit, park them at its end.
    pixel.clamp_(max=zbuf.shape[0] - 1)
    zbuf.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), reduce="amin")

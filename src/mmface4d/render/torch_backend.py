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
3. Every tested cell goes into a z-buffer of int64 keys ``quantised z/w << 32 | triangle index``,
   one ``scatter_reduce(amin)`` per group: the nearest wins, ties go to the lower index. Cells
   outside their triangle get a depth beyond the far plane, which reads as background.

Triangles whose box touches the image border or that straddle the near/far planes are kept in
separate "careful" groups that also test the box limits and the depth range; the others need
only their three edges. When every vertex of a step lies inside the image and between the planes
(a framed preview), the per-triangle careful tests are skipped altogether.

Each group's members are gathered once, in triangle order (a stable sort), so that its chunks
are slices and its scatters stay local; the ops avoid ``where``/``masked_fill`` on large tensors,
whose per-element branches are several times slower on the CPU than arithmetic.

Frames are processed a few at a time (``step_triangles`` triangles per step) so that a step's
working set stays in the CPU cache; on CUDA the steps are much larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmface4d.errors import InputError

_DEPTH_STEPS = float(1 << 30)  # quantisation of z/w in [-1, 1] inside the z-buffer key
_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1
_MISS_DEPTH = float((1 << 31) - (1 << 8))  # depth of untouched pixels and missed cells (exact)
_MISS_KEY = int(_MISS_DEPTH) << _ID_BITS  # keys from here up read as background
_EDGE_AND_DEPTH = 4  # channels 0-2: edges, 3: quantised depth; 4, 5: box limits, 6: far limit


class _Buckets:
    """Box sizes rounded up per axis to 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (at most 1.5x waste).

    A triangle's group id packs ``1 + (careful * K + x bucket) * K + y bucket`` for the K
    buckets needed up to ``largest``; 0 is reserved for triangles that cover no pixel centre.
    """

    def __init__(self, largest: int, device: torch.device) -> None:
        sizes = [1, 2, 3, 4]
        while sizes[-1] < largest:
            sizes.append(sizes[-2] * 2)  # 6, 8, 12, 16, ...: alternately 1.5x and 4/3x
        self.sizes = sizes
        self.count = len(sizes)
        upto = torch.arange(largest + 1, device=device).clamp_min(1)
        bounds = torch.tensor(sizes, device=device)
        # int16 ids: 2 K**2 < 2**15 holds up to sizes of about 2**60
        self.index_of_size = torch.searchsorted(bounds, upto).to(torch.int16)  # (largest + 1,)

    def group_ids(self, size: torch.Tensor, careful: torch.Tensor | None) -> torch.Tensor:
        """(T,) int16 ids of (2, T) int64 box sizes in 1..largest and (T,) bool careful flags
        (None: none is careful)."""
        index = self.index_of_size.index_select(0, size.reshape(-1)).view(2, -1)
        ids = index[0] * self.count + index[1] + 1
        if careful is not None:
            ids += careful.to(torch.int16) * (self.count * self.count)
        return ids

    def unpack(self, group: int) -> tuple[int, int, bool]:
        """(box width, box height, careful) of a group id >= 1."""
        rest, y = divmod(group - 1, self.count)
        careful, x = divmod(rest, self.count)
        return self.sizes[x], self.sizes[y], bool(careful)


_BUCKETS: dict[tuple[int, str], _Buckets] = {}


def _buckets(largest: int, device: torch.device) -> _Buckets:
    key = (largest, str(device))
    if key not in _BUCKETS:
        _BUCKETS[key] = _Buckets(largest, device)
    return _BUCKETS[key]


@dataclass
class _Triangles:
    """Set-up of every triangle of b frames (T = b x F rows).

    ``table[:, t]`` holds 12 coefficients of four affine functions ``A dx + B dy + C`` of the
    pixel offsets from the box's first pixel centre, laid out as ``[A_0..3, B_0..3, C_0..3]``.
    Functions 0-2 are the edges (>= 0 inside), 3 is the quantised depth ``(z/w + 1) / 2 * 2**30``
    (>= 0 past the near plane). Careful groups add three more, derived from the depth and the
    box size (:func:`_careful_coefficients`).
    """

    table: torch.Tensor  # (12, T) float: triangles innermost, so grid ops vectorise over T
    size: torch.Tensor  # (2, T) float box width and height in pixels (careful groups only)
    base: torch.Tensor  # (T,) int64 flat pixel index of the box's first pixel (frame included)
    group: torch.Tensor  # (T,) int16 group id (see _Buckets); 0 = covers no pixel centre
    buckets: _Buckets  # decodes the group ids
    frames: int  # b


def _plan_groups(
    groups: list[tuple[int, int, bool]], counts: list[int], merge_cells: int
) -> list[tuple[int, int, bool, list[int]]]:
    """Merge size groups whose own pass would cost more than their wasted cells.

    Args:
        groups: (box width, box height, careful) of each size group.
        counts: triangles in each group.
        merge_cells: most extra tests a merge may add.

    Returns (kx, ky, careful, indices of the source groups) per pass, biggest boxes first.
    """
    passes: list[tuple[int, int, bool, list[int]]] = []
    by_cells = sorted(range(len(groups)), key=lambda i: -(groups[i][0] * groups[i][1]))
    for i in by_cells:
        width, height, careful = groups[i]
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
        batch, num_vertices = clip_vertices.shape[:2]
        budget = self.step_triangles or (1 << 22 if clip_vertices.is_cuda else 1 << 17)
        frames_per_step = min(batch, max(1, budget // faces.shape[0]))
        dtype = torch.float64 if clip_vertices.dtype == torch.float64 else torch.float32
        clip = clip_vertices.detach().to(dtype)
        if faces.shape[0] >= 1 << 31:
            raise InputError(f"at most 2**31 - 1 faces, got {faces.shape[0]}")
        pixels = height * width
        zbuf = torch.full((batch * pixels,), _MISS_KEY, dtype=torch.int64, device=faces.device)
        corners = _corner_cycle(faces, frames_per_step, num_vertices)  # shared by the steps
        for start in range(0, batch, frames_per_step):
            stop = min(batch, start + frames_per_step)
            if stop - start < frames_per_step:
                corners = _corner_cycle(faces, stop - start, num_vertices)
            # The step's frames start at its slice; later frames' pixels serve as padding.
            tris = _set_up(clip[start:stop], corners, faces.shape[0], height, width)
            self._scan_frames(tris, faces.shape[0], width, zbuf[start * pixels :])
        # The low 32 bits are the triangle index; -1 where only misses arrived.
        ids = zbuf.bitwise_and(_ID_MASK).masked_fill_(zbuf >= _MISS_KEY, -1)
        return ids.view(batch, height, width)

    def _scan_frames(
        self, tris: _Triangles, num_faces: int, width: int, zbuf: torch.Tensor
    ) -> None:
        """Scatter the packed depth/triangle keys of b frames into ``zbuf`` (from its start)."""
        # A stable sort keeps each group in triangle order: coherent gathers and scatters.
        order = torch.sort(tris.group, stable=True).indices
        counts = torch.bincount(tris.group.long()).tolist()
        starts = [0]
        for count in counts[:-1]:
            starts.append(starts[-1] + count)
        used = [g for g in range(1, len(counts)) if counts[g] > 0]
        groups = [tris.buckets.unpack(g) for g in used]
        plan = _plan_groups(groups, [counts[g] for g in used], self.merge_cells)
        for group_w, group_h, careful, sources in plan:
            parts = [order[starts[used[i]] : starts[used[i]] + counts[used[i]]] for i in sources]
            members = parts[0] if len(parts) == 1 else torch.cat(parts)
            boxes = _Boxes.gather(tris, members, num_faces, careful)
            per_chunk = max(1, self.chunk_pairs // (group_w * group_h))
            for first in range(0, len(members), per_chunk):
                chunk = boxes.slice(first, first + per_chunk)
                _scan_boxes(zbuf, chunk, group_w, group_h, width)


def _corner_cycle(faces: torch.Tensor, frames: int, num_vertices: int) -> torch.Tensor:
    """(5 * b * F,) int64 rows of corners 0, 1, 2, 0, 1 of every triangle of b frames.

    Rows index the (b*V) flattened vertices, laid out (5, b, F): gathered, rows [0:3] are the
    corners, [1:4] the next ones and [2:5] the ones after, as views.
    """
    cycle = faces.t()[[0, 1, 2, 0, 1]]  # (5, F)
    offsets = torch.arange(frames, device=faces.device) * num_vertices
    return (offsets[None, :, None] + cycle[:, None, :]).reshape(-1)


def _set_up(
    clip: torch.Tensor, corners: torch.Tensor, num_faces: int, height: int, width: int
) -> _Triangles:
    """Per-triangle boxes, coverage/depth functions and size groups of b frames.

    Args:
        clip: (b, V, 4) clip vertices.
        corners: :func:`_corner_cycle` of the faces for b frames.
        num_faces: F.
        height, width: image size.
    """
    frames, num_vertices = clip.shape[:2]
    count = frames * num_faces
    device, dtype = clip.device, clip.dtype
    w = clip[..., 3]
    inv_w = torch.where(w > 0, 1 / w, torch.full_like(w, float("nan")))  # NaN: behind camera
    screen = torch.empty(3, frames, num_vertices, dtype=dtype, device=device)
    torch.mul(clip[..., 0] * inv_w + 1, 0.5 * width, out=screen[0])  # pixel centres at i + 0.5
    torch.mul(clip[..., 1] * inv_w + 1, 0.5 * height, out=screen[1])
    torch.mul(clip[..., 2], inv_w, out=screen[2])
    # (3, 5, T): x, y and z/w of corners 0, 1, 2, 0, 1; [:, 1:4] and [:, 2:5] are the corners
    # after each one, as views.
    cycled = screen.view(3, -1).index_select(1, corners).view(3, 5, count)
    xy, zn = cycled[:2], cycled[2, :3]
    limit = torch.tensor([[width], [height]], dtype=dtype, device=device)
    corner_xy = xy[:, :3]  # (2, 3 corners, T)
    first = torch.minimum(corner_xy.amin(1).sub_(0.5).ceil_().clamp_(min=0), limit)  # x0, y0
    last = torch.minimum(corner_xy.amax(1).sub_(0.5).floor_(), limit - 1).clamp_(min=-1)
    size = last - first + 1  # (2, T): box width, height
    # Edge k runs from corner k+1 to corner k+2 and vanishes there; E_k = area at corner k.
    ex, ey = xy[:, 2:5] - xy[:, 1:4]
    to_first = (first + 0.5)[:, None, :] - xy[:, 1:4]  # first pixel centre - corner k+1
    ec = ex * to_first[1] - ey * to_first[0]
    area = ec.sum(0)  # twice the signed area in pixels; NaN behind the camera
    if _all_inside(screen, height, width):  # no triangle is careful, and none behind the camera
        usable = (area != 0) & (size.amin(0) > 0)
        careful = None
    else:
        zmin, zmax = zn.amin(0), zn.amax(0)
        usable = (area != 0) & (size > 0).all(0) & (zmin <= 1) & (zmax >= -1) & area.isfinite()
        border = torch.minimum(first.amin(0), (limit - 1 - last).amin(0)) <= 0
        careful = border | (zmin < -1) | (zmax > 1)
    sign = torch.sign(area)
    half_steps = 0.5 * _DEPTH_STEPS
    scale = half_steps / area  # unusable triangles are never read: NaN or inf is harmless
    table = torch.empty(12, count, dtype=dtype, device=device)
    torch.mul(ey, -sign, out=table[0:3])
    torch.mul((ey * zn).sum(0), -scale, out=table[3])  # quantised depth: a, b, c
    torch.mul(ex, sign, out=table[4:7])
    torch.mul((ex * zn).sum(0), scale, out=table[7])
    torch.mul(ec, sign, out=table[8:11])
    torch.addcmul(torch.full_like(area, half_steps), (ec * zn).sum(0), scale, out=table[11])
    buckets = _buckets(max(width, height) + 1, device)
    size = size.nan_to_num_(nan=1.0).clamp_min_(1)  # behind the camera or empty: any group
    group = buckets.group_ids(size.long(), careful).mul_(usable)  # 0: never scanned
    start = first.clamp(max=limit - 1).long()
    base = start[1] * width + start[0]
    if frames > 1:
        frame = torch.arange(frames, device=device).repeat_interleave(num_faces)
        base += frame * (height * width)
    return _Triangles(
        table=table, size=size, base=base, group=group, buckets=buckets, frames=frames
    )


def _all_inside(screen: torch.Tensor, height: int, width: int) -> bool:
    """Whether every vertex of (3, b, V) screen ``x, y, z/w`` lies between the near and far
    planes and at least a pixel inside the image (then no box touches the border; NaN, from
    vertices behind the camera, fails)."""
    x_low, x_high = torch.aminmax(screen[0])
    y_low, y_high = torch.aminmax(screen[1])
    z_low, z_high = torch.aminmax(screen[2])
    bounds = torch.stack([x_low - 1, width - 1 - x_high, y_low - 1, height - 1 - y_high])
    return bool((bounds >= 0).all() & (z_low >= -1) & (z_high <= 1))


def _careful_coefficients(coeffs: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(3, 3, T) A, B, C of the box's right and bottom limits and of the far limit.

    Args:
        coeffs: (3, 4, T) A, B, C of the edges and the quantised depth.
        size: (2, T) box width and height.
    """
    zero, one = torch.zeros_like(size[0]), torch.ones_like(size[0])
    depth = coeffs[:, 3]
    return torch.stack(
        [
            torch.stack([-one, zero, -depth[0]]),  # box limits: size - 0.5 - d >= 0
            torch.stack([zero, -one, -depth[1]]),
            torch.stack([size[0] - 0.5, size[1] - 0.5, _DEPTH_STEPS - depth[2]]),  # far limit
        ]
    )


@dataclass
class _Boxes:
    """The members of one pass, gathered once; chunks are slices of it."""

    coeffs: torch.Tensor  # (3, channels, M) A, B, C of 4 functions (7 in careful passes)
    base: torch.Tensor  # (M,) int64 flat pixel index of each box's first pixel
    face: torch.Tensor  # (M,) int64 triangle index within its frame

    @staticmethod
    def gather(tris: _Triangles, members: torch.Tensor, num_faces: int, careful: bool) -> _Boxes:
        """The boxes of triangles ``members`` (M,) of ``tris``."""
        coeffs = tris.table.index_select(1, members).view(3, _EDGE_AND_DEPTH, -1)
        if careful:
            extra = _careful_coefficients(coeffs, tris.size.index_select(1, members))
            coeffs = torch.cat([coeffs, extra], dim=1)
        face = members if tris.frames == 1 else torch.remainder(members, num_faces)
        return _Boxes(coeffs=coeffs, base=tris.base.index_select(0, members), face=face)

    def slice(self, start: int, stop: int) -> _Boxes:
        return _Boxes(self.coeffs[:, :, start:stop], self.base[start:stop], self.face[start:stop])


def _scan_boxes(zbuf: torch.Tensor, boxes: _Boxes, group_w: int, group_h: int, width: int) -> None:
    """Test the (group_h, group_w) pixel grid of each box; keep the nearest hits in ``zbuf``."""
    device = zbuf.device
    coeffs = boxes.coeffs
    careful = coeffs.shape[1] > _EDGE_AND_DEPTH
    dx = torch.arange(group_w, device=device, dtype=coeffs.dtype)[None, :, None]
    dy = torch.arange(group_h, device=device, dtype=coeffs.dtype)[None, :, None]
    down = coeffs[2, :, None, :] + coeffs[1, :, None, :] * dy  # (channels, gh, T)
    across = coeffs[0, :, None, :] * dx  # (channels, gw, T)
    values = down[:, :, None, :] + across[:, None, :, :]  # (channels, gh, gw, T)
    # Careful groups test every channel (depth >= 0 is the near plane); the others only edges.
    # Missed cells get _MISS_DEPTH without a (slow, branchy) where(): the depth becomes
    # min(max(depth, miss), _MISS_DEPTH) with miss = _MISS_DEPTH where the smallest value is
    # negative, else 0. The max also lifts rounding below the near plane to 0, the min bounds
    # the plane's extrapolation far outside the triangle.
    lowest = (values if careful else values[:3]).amin(dim=0)
    miss = lowest.clamp_max_(0).sign_().mul_(-_MISS_DEPTH)
    depth = torch.maximum(values[3], miss).clamp_max_(_MISS_DEPTH)
    key = torch.add(boxes.face, depth.long(), alpha=1 << _ID_BITS)  # depth << 32 | face
    offset = torch.arange(group_h, device=device)[:, None] * width + torch.arange(
        group_w, device=device
    )
    pixel = boxes.base + offset[:, :, None]
    # Grid cells past a box's end may run past the buffer: they never hit, park them at its end.
    pixel.clamp_(max=zbuf.shape[0] - 1)
    zbuf.scatter_reduce_(0, pixel.view(-1), key.view(-1), reduce="amin")

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.render import (
    Fragments,
    TorchRasterizer,
    get_rasterizer,
    interpolate,
    interpolate_packed,
    rasterize,
    view_depth,
)
from mmface4d.render.rasterize import interpolate_visible


def reference_rasterize(clip: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Slow, obviously correct: every pixel against every triangle, in float64.

    Returns triangle ids (B, H, W), perspective-correct barycentrics (B, H, W, 3) and an
    ``ambiguous`` mask of pixels whose answer hinges on rounding: a pixel centre within 1e-3 px
    of a covering triangle's edge, or two covering triangles within 1e-6 in NDC depth.
    """
    batch = clip.shape[0]
    ids = np.full((batch, height, width), -1, dtype=np.int64)
    bary = np.zeros((batch, height, width, 3))
    ambiguous = np.zeros((batch, height, width), dtype=bool)
    for b in range(batch):
        for row in range(height):
            for col in range(width):
                px, py = col + 0.5, row + 0.5  # pixel centre, pixels
                hits = []
                for f, tri in enumerate(faces):
                    x, y, z, w = clip[b, tri].T
                    if (w <= 0).any():
                        continue
                    sx = (x / w + 1) * width / 2
                    sy = (y / w + 1) * height / 2
                    edge = np.empty(3)
                    length = np.empty(3)
                    for k in range(3):
                        i, j = (k + 1) % 3, (k + 2) % 3
                        edge[k] = (sx[j] - sx[i]) * (py - sy[i]) - (sy[j] - sy[i]) * (px - sx[i])
                        length[k] = np.hypot(sx[j] - sx[i], sy[j] - sy[i])
                    area = edge.sum()
                    if area == 0:
                        continue
                    edge *= np.sign(area)
                    distance = edge / length  # signed distance of the centre to each edge
                    if (distance < -1e-3).any():
                        continue
                    linear = edge / abs(area)  # screen-space barycentrics
                    zndc = (linear * z / w).sum()
                    if abs(zndc) > 1:
                        continue
                    near_edge = (np.abs(distance) < 1e-3).any() or abs(abs(zndc) - 1) < 1e-6
                    persp = (linear / w) / (linear / w).sum()
                    hits.append((zndc, f, persp, near_edge))
                if not hits:
                    continue
                hits.sort(key=lambda h: (h[0], h[1]))
                zndc, f, persp, near_edge = hits[0]
                if near_edge:
                    ambiguous[b, row, col] = True
                    continue  # the edge test itself is a coin toss
                ids[b, row, col] = f
                bary[b, row, col] = persp
                if len(hits) > 1 and hits[1][0] - zndc < 1e-6:
                    ambiguous[b, row, col] = True
                if any(h[3] for h in hits[1:]):
                    ambiguous[b, row, col] = True  # a rival that may or may not cover it
    return ids, bary, ambiguous


def random_scene(seed: int, batch: int = 2, num_faces: int = 12, spread: float = 1.3):
    """Random triangles in clip space; some cross the image border and the near/far planes."""
    rng = np.random.default_rng(seed)
    num_vertices = 3 * num_faces
    w = rng.uniform(0.5, 3.0, (batch, num_vertices, 1))
    ndc = rng.uniform(-spread, spread, (batch, num_vertices, 2))
    zndc = rng.uniform(-1.1, 1.1, (batch, num_vertices, 1))
    clip = np.concatenate([ndc * w, zndc * w, w], axis=-1)
    faces = rng.permutation(num_vertices).reshape(num_faces, 3)
    return clip, faces


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_backend_matches_reference(seed, dtype):
    height, width = 17, 23
    clip, faces = random_scene(seed)
    ref_ids, ref_bary, ambiguous = reference_rasterize(clip, faces, height, width)
    frags = rasterize(torch.tensor(clip, dtype=dtype), faces, (height, width), backend="torch")
    ids = frags.triangle_id.numpy()
    clear = ~ambiguous
    assert ambiguous.mean() < 0.1
    assert (ref_ids[clear] >= 0).sum() > 100  # the scene really covers pixels
    np.testing.assert_array_equal(ids[clear], ref_ids[clear])
    covered = clear & (ref_ids >= 0)
    np.testing.assert_allclose(frags.barycentrics.numpy()[covered], ref_bary[covered], atol=1e-5)
    np.testing.assert_allclose(frags.barycentrics.sum(-1)[frags.mask].numpy(), 1.0, atol=1e-6)
    assert (frags.barycentrics[~frags.mask] == 0).all()


def test_chunking_step_and_merging_do_not_change_the_answer():
    clip, faces = random_scene(5, batch=3, num_faces=40, spread=1.2)
    clip = torch.tensor(clip, dtype=torch.float32)
    faces = torch.as_tensor(faces)
    default = TorchRasterizer().visible_triangles(clip, faces, (31, 29))
    tiny = TorchRasterizer(chunk_pairs=5, step_triangles=1, merge_cells=0)
    huge = TorchRasterizer(merge_cells=1 << 30, step_triangles=1 << 30)
    assert torch.equal(tiny.visible_triangles(clip, faces, (31, 29)), default)
    assert torch.equal(huge.visible_triangles(clip, faces, (31, 29)), default)
    assert (default >= 0).any()


def test_pixel_centres_and_row_order():
    """Pixel (i, j) samples (i + 0.5, j + 0.5); row 0 is NDC y = -1; edges are inclusive."""
    clip = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [0.0, -1.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 1.0]]])
    frags = rasterize(clip, [[0, 1, 2]], (4, 8), backend="torch")
    expected = torch.tensor(
        [[0, 0, 0, 0, -1, -1, -1, -1], [0, 0, 0, -1, -1, -1, -1, -1],
         [0, 0, -1, -1, -1, -1, -1, -1], [0, -1, -1, -1, -1, -1, -1, -1]]
    )  # fmt: skip
    # In pixels the triangle is (0, 0), (4, 0), (0, 4): centre (i + .5, j + .5) in iff i + j <= 3.
    assert torch.equal(frags.triangle_id[0], expected)


def test_nearest_triangle_wins_and_ties_go_to_lower_index():
    quad = [[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]
    verts = [[x, y, z, 1.0] for z in (0.5, -0.2, -0.2) for x, y in quad]
    faces = [[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6], [8, 9, 10], [9, 11, 10]]
    frags = rasterize(torch.tensor([verts]), faces, (6, 6), backend="torch")
    assert set(frags.triangle_id.unique().tolist()) == {2, 3}  # z=-0.2 copies; lower ids win
    assert torch.allclose(frags.depth, torch.tensor(-0.2))


def test_near_far_and_behind_camera_are_clipped():
    tri = [[-1.0, -1.0], [3.0, -1.0], [-1.0, 3.0]]
    faces = [[0, 1, 2]]
    for z, visible in [(-1.5, False), (1.5, False), (0.99, True)]:
        clip = torch.tensor([[[x, y, z, 1.0] for x, y in tri]])
        assert rasterize(clip, faces, (4, 4), backend="torch").mask.all().item() is visible
    behind = torch.tensor([[[x, y, 0.0, -1.0] for x, y in tri]])
    assert not rasterize(behind, faces, (4, 4), backend="torch").mask.any()


def test_subpixel_triangles_match_reference():
    rng = np.random.default_rng(3)
    centres = rng.uniform(-0.9, 0.9, (250, 1, 2))
    offsets = rng.uniform(-0.15, 0.15, (250, 3, 2))  # about a pixel at 10x10
    xy = (centres + offsets).reshape(-1, 2)
    zw = np.stack([rng.uniform(-0.5, 0.5, 750), np.ones(750)], 1)
    clip = np.concatenate([xy, zw], 1)[None]
    faces = np.arange(750).reshape(250, 3)
    frags = rasterize(torch.tensor(clip, dtype=torch.float32), faces, (10, 10), backend="torch")
    ref_ids, _, ambiguous = reference_rasterize(clip, faces, 10, 10)
    clear = ~ambiguous
    assert (ref_ids[clear] >= 0).sum() > 20
    np.testing.assert_array_equal(frags.triangle_id.numpy()[clear], ref_ids[clear])


def _tiny_scene():
    # Two triangles in perspective; pixel centres stay well away from the edges.
    clip = torch.tensor(
        [
            [
                [-0.9, -0.8, 0.1, 1.0],
                [1.6, -0.9, 0.3, 2.0],
                [-0.7, 1.5, 0.2, 1.5],
                [1.7, 1.6, 0.6, 2.2],
            ]
        ],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    return clip, faces


def test_gradcheck_interpolate_wrt_vertices_and_attributes():
    clip, faces = _tiny_scene()
    resolution = (6, 5)
    ids = rasterize(clip, faces, resolution, backend="torch").triangle_id
    assert set(ids.unique().tolist()) >= {0, 1}
    attributes = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    clip = clip.clone().requires_grad_(True)

    def render(clip_vertices, attrs):
        frags = rasterize(clip_vertices, faces, resolution, backend="torch")
        assert torch.equal(frags.triangle_id, ids)  # visibility unchanged by the probe
        return (
            interpolate(attrs, frags, faces),
            frags.depth,
            view_depth(clip_vertices, frags, faces),
        )

    assert torch.autograd.gradcheck(render, (clip, attributes), eps=1e-6, atol=1e-7)


def test_interpolate_shapes_background_and_shared_attributes():
    clip, faces = _tiny_scene()
    clip = clip.float().repeat(2, 1, 1)
    frags = rasterize(clip, faces, (6, 5))
    assert isinstance(frags, Fragments) and frags.resolution == (6, 5) and frags.batch_size == 2
    attrs = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    out = interpolate(attrs, frags, faces, background=-7.0)
    assert out.shape == (2, 6, 5, 2)
    assert (out[~frags.mask] == -7).all()
    # Attributes linear in clip-space position interpolate to that position (perspective-correct).
    linear = clip[..., :2] * 3 + clip[..., 3:] * 2
    expected = torch.stack(
        [
            ((torch.arange(5) + 0.5) * 2 / 5 - 1).expand(6, 5),
            ((torch.arange(6) + 0.5) * 2 / 6 - 1)[:, None].expand(6, 5),
        ],
        -1,
    )
    w = view_depth(clip, frags, faces)
    got = interpolate(linear, frags, faces)
    mask = frags.mask
    np.testing.assert_allclose(
        got[mask].numpy(), ((expected * 3 + 2) * w[..., None])[mask].numpy(), atol=1e-5
    )
    with pytest.raises(InputError, match="attributes"):
        interpolate(torch.zeros(3, 4, 2), frags, faces)


def test_interpolate_uses_each_batch_elements_own_attributes():
    clip, faces = random_scene(11, batch=3, num_faces=20, spread=1.1)
    clip = torch.tensor(clip, dtype=torch.float32)
    attrs = torch.randn(3, clip.shape[1], 4)
    frags = rasterize(clip, faces, (15, 13))
    together = interpolate(attrs, frags, faces)
    for b in range(3):
        alone = rasterize(clip[b : b + 1], faces, (15, 13))
        torch.testing.assert_close(together[b : b + 1], interpolate(attrs[b], alone, faces))


@pytest.mark.parametrize(
    ("clip", "faces", "resolution", "message"),
    [
        (torch.zeros(1, 3, 4), np.zeros((0, 3), dtype=int), (4, 4), "empty"),
        (torch.zeros(1, 3, 4), [[0, 1, 3]], (4, 4), "faces index"),
        (torch.zeros(1, 3, 4), [[0, 1, -1]], (4, 4), "faces index"),
        (torch.full((1, 3, 4), float("nan")), [[0, 1, 2]], (4, 4), "NaN"),
        (torch.zeros(1, 3, 4), [[0, 1, 2]], (0, 4), "resolution"),
        (torch.zeros(1, 3, 4), [[0, 1, 2]], (4,), "resolution"),
        (torch.zeros(3, 4), [[0, 1, 2]], (4, 4), r"\(B, V, 4\)"),
        (torch.zeros(1, 3, 4), [[0.0, 1.0, 2.0]], (4, 4), "integers"),
    ],
)
def test_bad_input_raises_input_error(clip, faces, resolution, message):
    with pytest.raises(InputError, match=message):
        rasterize(clip, faces, resolution, backend="torch")


def test_backend_selection(monkeypatch):
    import importlib

    module = importlib.import_module("mmface4d.render.rasterize")  # the function hides it
    assert get_rasterizer("auto", "cpu").name == "numba"  # a core dependency
    assert get_rasterizer("numba").name == "numba"
    assert get_rasterizer("torch").name == "torch"
    monkeypatch.setattr(module, "_installed", lambda name: False)
    assert get_rasterizer("auto", "cpu").name == "torch"  # where Numba is missing
    with pytest.raises(InputError, match="backend"):
        get_rasterizer("opengl")  # type: ignore[arg-type]
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"mmface4d\[nvdiffrast\]"):
            get_rasterizer("nvdiffrast")
    else:
        clip, faces = _tiny_scene()
        with pytest.raises(InputError, match="CUDA"):
            rasterize(clip.float(), faces, (4, 4), backend="nvdiffrast")


@pytest.mark.gpu
def test_nvdiffrast_matches_torch_backend_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("nvdiffrast.torch")
    clip, faces = random_scene(7, batch=2, num_faces=60, spread=1.2)
    clip = torch.tensor(clip, dtype=torch.float32, device="cuda")
    clip[..., 2] = clip[..., 2].clamp(-0.9 * clip[..., 3], 0.9 * clip[..., 3])  # no z clipping
    faces = torch.as_tensor(faces, device="cuda")
    ours = rasterize(clip, faces, (64, 48), backend="torch")
    theirs = rasterize(clip, faces, (64, 48), backend="nvdiffrast")
    agree = (ours.triangle_id == theirs.triangle_id).float().mean().item()
    assert agree > 0.995  # only pixels on shared edges may differ
    same = ours.triangle_id == theirs.triangle_id
    torch.testing.assert_close(ours.barycentrics[same], theirs.barycentrics[same])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shared", [False, True])
def test_interpolate_visible_matches_the_differentiable_path(dtype, shared):
    clip, faces = random_scene(7, batch=3, num_faces=30, spread=1.2)
    clip = torch.tensor(clip, dtype=dtype)
    faces = torch.as_tensor(faces)
    attrs = torch.randn(1 if shared else 3, clip.shape[1], 4, dtype=dtype)
    frags = rasterize(clip, faces, (19, 17), backend="torch")
    pixel_index, values = interpolate_visible(attrs, clip, faces, frags.triangle_id)
    assert torch.equal(pixel_index, frags.pixel_index)
    assert values.shape == (len(pixel_index), 4) and values.dtype == dtype
    torch.testing.assert_close(values, interpolate_packed(attrs, frags, faces), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="attributes"):
        interpolate_visible(attrs[0], clip, faces, frags.triangle_id)
    with pytest.raises(InputError, match="vertices"):
        interpolate_visible(attrs[:, :5], clip, faces, frags.triangle_id)

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.lighting import AMBIENT_OFFSET, sh_basis
from mmface4d.render import PinholeCamera, frame_mesh, render_preview, render_rgbd


def test_preview_of_sphere_is_a_lit_centred_disc(sphere):
    verts, faces = sphere
    background = (10, 20, 30)
    image = render_preview(verts, faces, width=96, height=80, background=background)
    assert image.shape == (80, 96, 3) and image.dtype == np.uint8
    is_bg = (image == np.asarray(background, dtype=np.uint8)).all(-1)
    assert is_bg[0, 0] and is_bg[-1, -1] and not is_bg[40, 48]
    rows, cols = np.nonzero(~is_bg)
    assert abs(rows.mean() - 39.5) < 1.0 and abs(cols.mean() - 47.5) < 1.0
    # The disc spans ~fill (0.8) of the tighter side (80 px): diameter ~64 px.
    assert 58 <= rows.max() - rows.min() + 1 <= 68
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 2
    # Lit: the centre is bright; the key light sits upper left, so that side is brighter.
    lum = image.astype(float).mean(-1)
    assert lum[40, 48] > 120
    assert lum[25, 33] > lum[55, 63]


def test_preview_batch_and_colors(sphere):
    verts, faces = sphere
    batch = np.stack([verts, verts + [0.02, 0.0, 0.0]])
    red = np.tile([[1.0, 0.0, 0.0]], (len(verts), 1))
    images = render_preview(torch.as_tensor(batch), faces, colors=red, width=48, height=48)
    assert images.shape == (2, 48, 48, 3)
    centre = images[:, 24, 24]
    assert (centre[:, 0] > 150).all() and (centre[:, 1:] < 40).all()  # red, faint white sheen
    # Frames share one camera (framed on the union), so the shifted sphere moves right.
    cols = [np.nonzero((img != images[0, 0, 0]).any(-1))[1].mean() for img in images]
    assert cols[1] > cols[0] + 1


def test_preview_three_quarter_and_explicit_camera(sphere):
    verts, faces = sphere
    img = render_preview(verts, faces, width=40, height=40, view="three-quarter")
    assert img.shape == (40, 40, 3)
    cam = frame_mesh(verts, width=30, height=20)
    assert render_preview(verts, faces, camera=cam).shape == (20, 30, 3)


def test_preview_rejects_bad_input(sphere):
    verts, faces = sphere
    with pytest.raises(InputError, match="colors"):
        render_preview(verts, faces, colors=np.ones((5, 3)))
    with pytest.raises(InputError, match="view"):
        render_preview(verts, faces, view="side")
    with pytest.raises(InputError, match="faces index"):
        render_preview(verts, faces + len(verts))
    bad = verts.copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        render_preview(bad, faces)


def _front_camera(width=64, height=48, distance=0.5) -> PinholeCamera:
    return PinholeCamera.look_at(
        [0.0, 0.0, distance], [0.0, 0.0, 0.0], width=width, height=height, fov_degrees=30
    )


def test_render_rgbd_shapes_depth_and_unlit_colour(sphere):
    verts, faces = sphere
    v = torch.as_tensor(verts, dtype=torch.float32)[None].repeat(2, 1, 1)
    v[1] += torch.tensor([0.0, 0.0, -0.1])  # farther away
    albedo = torch.full((len(verts), 3), 0.5)
    cams = [_front_camera(), PinholeCamera.look_at([0.5, 0, 0], [0, 0, 0], width=64, height=48)]
    out = render_rgbd(v, faces, albedo, cams, backend="torch")
    assert out.rgb.shape == (2, 2, 48, 64, 3)
    assert out.depth.shape == out.mask.shape == out.triangle_id.shape == (2, 2, 48, 64)
    assert out.mask.dtype == torch.bool
    assert torch.allclose(out.rgb[out.mask], torch.tensor(0.5))
    assert (out.rgb[~out.mask] == 0).all() and (out.depth[~out.mask] == 0).all()
    # Sphere of radius 0.1 seen from 0.5 m: the nearest point is at 0.4 m (0.5 m when moved).
    front = out.depth[:, 0][out.mask[:, 0].reshape(2, 48, 64)].reshape(-1)
    assert 0.399 < out.depth[0, 0][out.mask[0, 0]].min() < 0.401
    assert 0.499 < out.depth[1, 0][out.mask[1, 0]].min() < 0.501
    assert front.max() < 0.6


def test_render_rgbd_sh_lighting_and_gradients(sphere):
    verts, faces = sphere
    v = torch.as_tensor(verts, dtype=torch.float32)[None].requires_grad_(True)
    albedo = torch.full((1, len(verts), 3), 0.6, requires_grad=True)
    gamma = torch.zeros(1, 1, 27, requires_grad=True)
    out = render_rgbd(v, faces, albedo, [_front_camera()], sh_lighting=gamma, backend="torch")
    ambient = AMBIENT_OFFSET * float(sh_basis(torch.tensor([0.0, 0.0, 1.0]))[0])
    assert torch.allclose(out.rgb[out.mask], torch.tensor(0.6 * ambient), atol=1e-5)
    (out.rgb.sum() + out.depth.sum()).backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert albedo.grad.abs().sum() > 0 and gamma.grad.abs().sum() > 0


def test_render_rgbd_sh_uses_camera_frame_normals(sphere):
    """A light from +y (SH band 1 weight < 0 lights +y normals) brightens the image top."""
    verts, faces = sphere
    gamma = torch.zeros(1, 1, 27)
    gamma[0, 0, [1, 10, 19]] = -0.5  # -a1c1 y * (-0.5) > 0 for normals pointing up
    out = render_rgbd(
        torch.as_tensor(verts, dtype=torch.float32)[None],
        faces,
        torch.ones(len(verts), 3),
        [_front_camera()],
        sh_lighting=gamma,
        backend="torch",
    )
    lum = out.rgb[0, 0].mean(-1)
    rows = out.mask[0, 0].nonzero()[:, 0]
    top, bottom = rows.min().item() + 3, rows.max().item() - 3
    assert lum[top, 32] > lum[bottom, 32] + 0.2


def test_render_rgbd_rejects_bad_input(sphere):
    verts, faces = sphere
    v = torch.as_tensor(verts, dtype=torch.float32)[None]
    cam = _front_camera()
    with pytest.raises(InputError, match="camera"):
        render_rgbd(v, faces, torch.ones(len(verts), 3), [])
    with pytest.raises(InputError, match="image size"):
        render_rgbd(v, faces, torch.ones(len(verts), 3), [cam, _front_camera(width=32)])
    with pytest.raises(InputError, match="sh_lighting"):
        render_rgbd(v, faces, torch.ones(len(verts), 3), [cam], sh_lighting=torch.zeros(1, 27))
    with pytest.raises(InputError, match="albedo"):
        render_rgbd(v, faces, torch.ones(7, 3), [cam])


def test_preview_projection_matches_the_camera(sphere):
    from mmface4d.render.shade import _camera_frame, _clip_coordinates

    verts = torch.as_tensor(sphere[0], dtype=torch.float64)[None].repeat(2, 1, 1)
    verts[1] += 0.03
    cam = frame_mesh(verts, view="three-quarter", width=40, height=30)
    points = _camera_frame(cam, verts)  # (3, B, V)
    torch.testing.assert_close(points.permute(1, 2, 0), cam.world_to_camera(verts))
    clip = _clip_coordinates(cam, points, 0.2, 3.0)
    torch.testing.assert_close(clip, cam.to_clip(verts, 0.2, 3.0))


@pytest.mark.parametrize("size", [(40, 32), (256, 200)])  # per-vertex and per-pixel lighting
def test_preview_frame_groups_do_not_change_the_images(sphere, monkeypatch, size):
    from mmface4d.render import shade

    verts, faces = sphere
    batch = np.stack([verts + [0.004 * k, 0.0, 0.0] for k in range(5)])
    colors = np.random.default_rng(0).uniform(0, 1, (5, len(verts), 3))
    width, height = size
    grouped = render_preview(batch, faces, colors=colors, width=width, height=height)
    monkeypatch.setattr(shade, "_FRAME_GROUPS", 1)
    alone = render_preview(batch, faces, colors=colors, width=width, height=height)
    np.testing.assert_array_equal(grouped, alone)


def test_per_pixel_view_table_equals_the_rays_own_vectors():
    from mmface4d.render.camera import PinholeCamera
    from mmface4d.render.shade import _lambert, _pixel_rays, _pixel_view

    cam = PinholeCamera(fx=90.5, fy=88.0, cx=31.5, cy=22.25, width=64, height=48)
    pixels = torch.randint(0, 3 * 64 * 48, (500,))  # flat indices into three frames
    rng = torch.Generator().manual_seed(0)
    normal = torch.randn(3, 500, generator=rng)
    albedo = torch.rand(3, 500, generator=rng)
    expected = _lambert(_pixel_rays(cam, pixels), normal, albedo, None)
    view = _pixel_view(cam, pixels.device).index_select(1, pixels % (64 * 48))
    assert torch.equal(_lambert(None, normal, albedo, None, (view[:3], view[3:])), expected)

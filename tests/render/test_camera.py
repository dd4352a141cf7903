from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.render import PinholeCamera, frame_mesh, rasterize, render_rgbd, view_depth


def test_json_round_trip_on_the_real_sample(shared_data, tmp_path):
    source = shared_data / "mmface4d_sample" / "000337_0.json"
    cam = PinholeCamera.from_mmface4d_json(source)
    assert (cam.width, cam.height) == (1920, 1080)
    assert cam.fx == pytest.approx(910.9786376953125) and cam.fy == pytest.approx(910.6696166992)
    assert cam.cx == pytest.approx(963.4462890625) and cam.cy == pytest.approx(543.6405029296875)
    assert cam.metadata["serial_number"] == "000250714112"  # a string, leading zeros kept
    out = cam.to_mmface4d_json(tmp_path / "cam.json")
    assert json.loads(out.read_text()) == json.loads(source.read_text())
    again = PinholeCamera.from_mmface4d_json(out)
    assert (again.fx, again.fy, again.cx, again.cy) == (cam.fx, cam.fy, cam.cx, cam.cy)


def test_json_round_trip_keeps_unknown_fields(tmp_path):
    data = {
        "intrinsic_matrix": [600.5, 0.0, 0.0, 0.0, 601.25, 0.0, 319.5, 287.75, 1.0],
        "width": 640,
        "height": 576,
        "depth_mode": "NFOV_UNBINNED",
        "vendor_note": {"nested": [1, 2, 3]},
        "stream_length_usec": 123,
    }
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    cam = PinholeCamera.from_mmface4d_json(path)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (600.5, 601.25, 319.5, 287.75)
    np.testing.assert_array_equal(cam.intrinsic_matrix()[:, 2], [319.5, 287.75, 1.0])
    back = json.loads(cam.to_mmface4d_json(tmp_path / "out.json").read_text())
    assert back == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"width": 4, "height": 4}', "intrinsic_matrix"),
        ('{"intrinsic_matrix": [1, 2], "width": 4, "height": 4}', "9 numbers"),
        ('{"intrinsic_matrix": [0,0,0,0,1,0,2,2,1], "width": 4, "height": 4}', "positive"),
        ('{"intrinsic_matrix": [1,0,0,0,1,0,2,2,1], "width": 0, "height": 4}', "image size"),
    ],
)
def test_bad_json_raises_input_error(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        PinholeCamera.from_mmface4d_json(path)


def test_look_at_front_camera_convention():
    cam = PinholeCamera.look_at([0, 0, 2.0], [0, 0, 0], width=100, height=80)
    np.testing.assert_allclose(cam.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(cam.center, [0, 0, 2.0], atol=1e-12)
    # World +x (subject's left) appears on the image right, world +y (up) at the top.
    uv = cam.project(torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]))
    assert uv[0, 0] == pytest.approx(49.5) and uv[0, 1] == pytest.approx(39.5)
    assert uv[1, 0] > uv[0, 0] and uv[2, 1] < uv[0, 1]
    with pytest.raises(InputError, match="parallel"):
        PinholeCamera.look_at([0, 2.0, 0], [0, 0, 0], width=10, height=10)


def test_to_clip_matches_project_and_the_rasterizer_pixel_centres():
    cam = PinholeCamera(
        fx=50.0,
        fy=55.0,
        cx=20.3,
        cy=14.7,
        width=40,
        height=30,
        R=np.eye(3),
        t=np.array([0.01, -0.02, 0.0]),
    )
    points = torch.tensor([[[0.05, -0.03, 0.8], [-0.1, 0.07, 1.3]]], dtype=torch.float64)
    uv = cam.project(points)
    clip = cam.to_clip(points, near=0.1, far=5.0)
    ndc = clip[..., :2] / clip[..., 3:]
    pixel = (ndc + 1) / 2 * torch.tensor([40.0, 30.0], dtype=torch.float64) - 0.5
    torch.testing.assert_close(pixel, uv)
    torch.testing.assert_close(clip[..., 3], cam.world_to_camera(points)[..., 2])
    zndc = clip[..., 2] / clip[..., 3]
    assert (zndc > -1).all() and (zndc < 1).all()
    near = cam.to_clip(torch.tensor([[0.0, 0.0, 0.1]]), near=0.1, far=5.0)
    assert near[0, 2] / near[0, 3] == pytest.approx(-1.0)
    with pytest.raises(InputError, match="near"):
        cam.to_clip(points, near=0.0)


def test_resized_keeps_the_projection_consistent():
    cam = PinholeCamera(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)
    big = cam.resized(128, 96)
    point = torch.tensor([[0.02, 0.01, 0.5]])
    # Pixel centres scale about the image corner: u' + 0.5 = 2 (u + 0.5).
    torch.testing.assert_close(big.project(point) + 0.5, 2 * (cam.project(point) + 0.5))


def test_frame_mesh_fills_the_image(sphere):
    verts, _ = sphere
    verts = verts * [0.8, 1.2, 0.7] + [0.03, -0.02, 0.01]  # an off-centre ellipsoid
    for view in ("front", "three-quarter"):
        cam = frame_mesh(verts, view=view, width=200, height=100, fill=0.8)
        uv = cam.project(torch.as_tensor(verts)).numpy()
        assert (uv[:, 0] >= 0).all() and (uv[:, 0] <= 199).all()
        assert (uv[:, 1] >= 0).all() and (uv[:, 1] <= 99).all()
        height = uv[:, 1].max() - uv[:, 1].min()
        assert 0.76 * 100 < height <= 0.8 * 100 + 1e-6  # the tall axis limits the framing
        assert abs((uv[:, 1].max() + uv[:, 1].min()) / 2 - 49.5) < 3
    front = frame_mesh(verts, "front")
    np.testing.assert_allclose(front.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    side = frame_mesh(verts, "three-quarter")
    direction = side.center - np.asarray(side.metadata["target"])
    assert direction[0] > 0 and direction[2] > 0  # towards the subject's left, in front
    with pytest.raises(InputError, match="view"):
        frame_mesh(verts, view="top")
    with pytest.raises(InputError, match="fill"):
        frame_mesh(verts, fill=0.0)


def test_rendered_depth_backprojects_onto_the_sphere(sphere):
    verts, faces = sphere  # radius 0.1, 5,120 faces: flat facets sag up to ~0.2 mm
    cam = PinholeCamera.look_at([0.12, 0.05, 0.45], [0, 0, 0], width=160, height=120)
    out = render_rgbd(
        torch.as_tensor(verts)[None], faces, torch.ones(len(verts), 3), [cam], backend="torch"
    )
    depth, mask = out.depth[0, 0], out.mask[0, 0]
    assert mask.sum() > 2000
    points = cam.backproject(depth, mask, frame="world")
    assert points.shape == (int(mask.sum()), 3)
    radius = points.norm(dim=-1)
    assert (radius - 0.1).abs().max() < 1e-3
    assert (radius <= 0.1 + 1e-6).all()  # chords lie inside the sphere
    # Camera-frame points have the rendered z.
    cam_points = cam.backproject(depth)
    torch.testing.assert_close(cam_points[:, 2], depth[mask])


def test_view_depth_of_a_tilted_plane_is_exact():
    cam = PinholeCamera.look_at([0, 0, 1.0], [0, 0, 0], width=32, height=24, fov_degrees=40)
    plane = torch.tensor(
        [[-1.0, -1.0, -0.5], [1.0, -1.0, 0.3], [-1.0, 1.0, -0.5], [1.0, 1.0, 0.3]],
        dtype=torch.float64,
    )  # z = 0.4 x - 0.1
    clip = cam.to_clip(plane, 0.1, 10.0)[None]
    faces = [[0, 1, 2], [1, 3, 2]]
    frags = rasterize(clip, faces, (24, 32), backend="torch")
    assert frags.mask.all()
    points = cam.backproject(view_depth(clip, frags, faces)[0], frame="world")
    torch.testing.assert_close(points[:, 2], 0.4 * points[:, 0] - 0.1, atol=1e-9, rtol=0)


def test_backproject_rejects_bad_input():
    cam = PinholeCamera(fx=10.0, fy=10.0, cx=1.5, cy=1.5, width=4, height=4)
    with pytest.raises(InputError, match=r"\(4, 4\)"):
        cam.backproject(torch.ones(3, 4))
    with pytest.raises(InputError, match="mask"):
        cam.backproject(torch.ones(4, 4), mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(InputError, match="frame"):
        cam.backproject(torch.ones(4, 4), frame="ndc")
    depth = torch.ones(4, 4)
    depth[0, 0] = 0.0
    depth[1, 1] = float("nan")
    assert cam.backproject(depth).shape == (14, 3)  # holes are skipped

"""The compiled CPU backend gives the torch backend's answers, and so the same pictures.

The torch backend is the renderer's reference (checked against a brute-force rasterizer in
test_rasterize.py); the numba backend, the default on the CPU since it made video real time, must
give its triangle ids pixel for pixel, its float32 interpolation bit for bit, and therefore
previews and video frames identical to the torch backend's (tolerance: none).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.render import TorchRasterizer, frame_mesh, get_rasterizer, render_preview
from mmface4d.render.numba_backend import NumbaRasterizer
from mmface4d.render.rasterize import interpolate_visible

from .test_rasterize import random_scene


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(8))
def test_same_visible_triangles_as_the_torch_backend(seed, dtype):
    # triangles across the image border, the near and far planes and behind the camera
    clip, faces = random_scene(seed, batch=3, num_faces=60, spread=1.3)
    clip = torch.tensor(clip, dtype=dtype)
    faces = torch.as_tensor(faces)
    expected = TorchRasterizer().visible_triangles(clip, faces, (41, 37))
    ids = NumbaRasterizer().visible_triangles(clip, faces, (41, 37))
    assert ids.dtype == torch.int64 and ids.shape == (3, 41, 37)
    assert (expected >= 0).sum() > 500  # the scene covers pixels
    assert torch.equal(ids, expected)


def test_steps_of_frames_decide_careful_tests_as_the_torch_backend():
    # one frame inside the image, one across its border: steps of one frame and of both
    clip, faces = random_scene(3, batch=2, num_faces=40, spread=0.6)
    clip = torch.tensor(clip, dtype=torch.float32)
    clip[..., 2] = clip[..., 2].clamp(-0.5 * clip[..., 3], 0.5 * clip[..., 3])
    clip[1, :, 0] *= 3.0
    faces = torch.as_tensor(faces)
    for step in (40, 80):
        expected = TorchRasterizer(step_triangles=step).visible_triangles(clip, faces, (33, 29))
        ids = NumbaRasterizer(step_triangles=step).visible_triangles(clip, faces, (33, 29))
        assert torch.equal(ids, expected)


@pytest.mark.parametrize("shared", [False, True])
def test_interpolation_equals_the_torch_function(shared):
    clip, faces = random_scene(11, batch=3, num_faces=50, spread=1.2)
    faces = torch.as_tensor(faces)
    for dtype in (torch.float32, torch.float64):
        scene = torch.tensor(clip, dtype=dtype)
        ids = TorchRasterizer().visible_triangles(scene, faces, (23, 31))
        attrs = torch.randn(1 if shared else 3, scene.shape[1], 5, dtype=dtype)
        index, values = NumbaRasterizer().interpolate_visible(attrs, scene, faces, ids)
        expected_index, expected = interpolate_visible(attrs, scene, faces, ids)
        assert torch.equal(index, expected_index) and values.dtype == dtype
        if dtype == torch.float32:  # the same operations, fused where PyTorch fuses them
            assert torch.equal(values, expected)
        else:
            torch.testing.assert_close(values, expected, rtol=0, atol=1e-12)


def _moving_face(frames: int = 4):
    from mmface4d.facemodel import load_face_model

    model = load_face_model("synth")
    weights = np.linspace(0, 0.6, frames, dtype=np.float32)
    jaw = model.expression_basis[model.expression_index("jawOpen")]
    smile = model.expression_basis[model.expression_index("mouthSmileLeft")]
    verts = model.mean[None] + weights[:, None, None] * (jaw + 0.5 * smile)[None]
    return verts.astype(np.float32), model.faces, np.clip(model.albedo_mean, 0, 1)


@pytest.mark.parametrize("size", [512, 96])  # lit per pixel (the video's case) and per vertex
def test_video_frames_of_the_default_face_are_identical(size):
    verts, faces, colors = _moving_face()
    camera = frame_mesh(torch.as_tensor(verts[0]), width=size, height=size)
    old = render_preview(verts, faces, colors=colors, camera=camera, supersample=1, backend="torch")
    new = render_preview(verts, faces, colors=colors, camera=camera, supersample=1, backend="numba")
    auto = render_preview(verts, faces, colors=colors, camera=camera, supersample=1)
    assert (old != old[0, 0, 0]).any(axis=-1).mean() > 0.2  # the face fills the picture
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(auto, old)


def test_supersampled_previews_are_identical(sphere):
    verts, faces = sphere
    old = render_preview(verts, faces, width=64, height=48, backend="torch")
    new = render_preview(verts, faces, width=64, height=48, backend="numba")
    np.testing.assert_array_equal(new, old)


def test_gradients_still_flow_through_the_differentiable_path():
    from mmface4d.render import interpolate, rasterize

    clip, faces = random_scene(2, batch=1, num_faces=20, spread=1.0)
    clip = torch.tensor(clip, dtype=torch.float64, requires_grad=True)
    frags = rasterize(clip, faces, (15, 13), backend="numba")
    reference = rasterize(clip, faces, (15, 13), backend="torch")
    assert torch.equal(frags.triangle_id, reference.triangle_id)
    attrs = torch.randn(1, clip.shape[1], 2, dtype=torch.float64)
    interpolate(attrs, frags, faces).sum().backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0


def test_only_cpu_tensors():
    clip = torch.zeros(1, 3, 4, device="meta")
    faces = torch.tensor([[0, 1, 2]])
    with pytest.raises(InputError, match="CPU"):
        get_rasterizer("numba").visible_triangles(clip, faces, (4, 4))
    with pytest.raises(InputError, match="step_triangles"):
        NumbaRasterizer(step_triangles=0)

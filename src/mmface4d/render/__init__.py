"""Rendering: a differentiable rasterizer (pure PyTorch or nvdiffrast), cameras and shading."""

from mmface4d.render.camera import VIEWS, PinholeCamera, frame_mesh
from mmface4d.render.picture import show_face_model
from mmface4d.render.rasterize import (
    BACKENDS,
    Fragments,
    NvdiffrastRasterizer,
    Rasterizer,
    get_rasterizer,
    interpolate,
    interpolate_packed,
    rasterize,
    view_depth,
)
from mmface4d.render.shade import RenderOutput, render_preview, render_rgbd
from mmface4d.render.torch_backend import TorchRasterizer

__all__ = [
    "BACKENDS",
    "VIEWS",
    "Fragments",
    "NvdiffrastRasterizer",
    "PinholeCamera",
    "Rasterizer",
    "RenderOutput",
    "TorchRasterizer",
    "frame_mesh",
    "get_rasterizer",
    "interpolate",
    "interpolate_packed",
    "rasterize",
    "render_preview",
    "render_rgbd",
    "show_face_model",
    "view_depth",
]

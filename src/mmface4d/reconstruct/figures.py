"""Fig. 3 of the paper for any recording: the first frame after each fitting stage.

One row per camera: the colour image, the measured depth, then per stage (landmark, 3DMM,
vertex-level) the fitted face drawn over the colour image and the absolute depth residual
(|rendered - measured|, millimetres, on the pixels where both exist). For a studio capture a
last row shows, from the centre camera, the per-vertex error against the ground truth after
each stage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmface4d.atomic import save_figure  # noqa: E402
from mmface4d.capture.capture import Capture  # noqa: E402
from mmface4d.facemodel.model import FaceModel  # noqa: E402
from mmface4d.geometry.frames import MM_PER_M  # noqa: E402
from mmface4d.reconstruct.config import ReconstructConfig  # noqa: E402
from mmface4d.reconstruct.evaluation import vertex_distances_mm  # noqa: E402
from mmface4d.reconstruct.observation import observe  # noqa: E402
from mmface4d.reconstruct.tracking import Reconstruction  # noqa: E402
from mmface4d.render.camera import PinholeCamera  # noqa: E402
from mmface4d.render.shade import render_preview, render_rgbd  # noqa: E402

#: Colour-map range of the depth residual and vertex error panels, millimetres.
ERROR_RANGE_MM = 5.0
STAGE_NAMES = {"landmark": "landmarks", "model": "3DMM", "vertex": "vertex-level"}


def _error_colours(errors_mm: np.ndarray) -> np.ndarray:
    """(V,) millimetres -> (V, 3) RGB of the ``inferno`` map over [0, ERROR_RANGE_MM]."""
    return plt.get_cmap("inferno")(np.clip(errors_mm / ERROR_RANGE_MM, 0, 1))[:, :3]


def _crop_box(mask: np.ndarray, margin: float = 0.25) -> tuple[slice, slice]:
    """Rows and columns of ``mask``'s bounding box grown by ``margin`` of its size (the whole
    image when the mask is empty)."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return slice(None), slice(None)
    height, width = mask.shape
    grow_r = int((rows.max() - rows.min() + 1) * margin) + 2
    grow_c = int((cols.max() - cols.min() + 1) * margin) + 2
    return (
        slice(max(rows.min() - grow_r, 0), min(rows.max() + grow_r + 1, height)),
        slice(max(cols.min() - grow_c, 0), min(cols.max() + grow_c + 1, width)),
    )


def _measured_panels(
    row: np.ndarray,
    c: int,
    colour: np.ndarray,
    depth: np.ndarray,
    face: np.ndarray,
    box: tuple[slice, slice],
) -> None:
    """Camera ``c``'s colour image and measured depth (its colour range from the face's)."""
    face_depth = depth[box][face[box] & (depth[box] > 0)]
    low, high = np.percentile(face_depth, [1, 99]) if len(face_depth) else (0.0, 1.0)
    row[0].imshow(colour[box])
    row[1].imshow(
        np.where(depth > 0, depth, np.nan)[box], cmap="viridis", vmin=low, vmax=high + 0.05
    )
    row[0].set_title(f"camera {c}: colour", fontsize=7)
    row[1].set_title("depth", fontsize=7)


def _stage_panels(
    axes: tuple[Any, Any],
    name: str,
    vertices: np.ndarray,
    faces: torch.Tensor,
    albedo: torch.Tensor,
    camera: PinholeCamera,
    colour: np.ndarray,
    depth: np.ndarray,
    box: tuple[slice, slice],
) -> Any:
    """One stage seen by one camera: the fit drawn over the colour image, and the depth
    residual (returns the residual's image, for the colour bar)."""
    overlay = render_preview(vertices, faces, albedo, camera=camera, supersample=1)
    render = render_rgbd(torch.as_tensor(vertices)[None], faces, albedo, [camera])
    mask = render.mask[0, 0].numpy()
    base = (colour * 255).astype(np.uint8)
    blend = np.where(mask[..., None], overlay, base)
    residual = np.abs(render.depth[0, 0].numpy() - depth) * MM_PER_M
    residual[~mask | (depth <= 0)] = np.nan
    axes[0].imshow(blend[box])
    axes[0].set_title(f"after\n{name}", fontsize=7)
    image = axes[1].imshow(residual[box], cmap="inferno", vmin=0, vmax=ERROR_RANGE_MM)
    valid = residual[np.isfinite(residual)]
    median = f"{np.median(valid):.2f}" if len(valid) else "-"
    axes[1].set_title(f"depth error\nmedian {median} mm", fontsize=7)
    return image


def _truth_row(
    row: np.ndarray,
    model: FaceModel,
    stage_vertices: np.ndarray,
    truth_vertices: np.ndarray,
    faces: torch.Tensor,
    centre: PinholeCamera,
    box: tuple[slice, slice],
) -> None:
    """The last row: per stage, the per-vertex error against the truth seen from ``centre``."""
    row[0].text(
        0.5,
        0.5,
        "vertex error\nvs ground truth\n(centre camera)",
        ha="center",
        va="center",
        fontsize=8,
    )
    for s, vertices in enumerate(stage_vertices):
        errors = vertex_distances_mm(vertices, truth_vertices)
        picture = render_preview(
            vertices, faces, _error_colours(errors), camera=centre, supersample=1
        )
        face = model.regions.get("face", np.arange(model.num_vertices))
        row[3 + 2 * s].imshow(picture[box])
        title = f"vertex error\nface mean {errors[face].mean():.2f} mm"
        row[3 + 2 * s].set_title(title, fontsize=7)


def stage_figure(
    capture: Capture,
    model: FaceModel,
    result: Reconstruction,
    config: ReconstructConfig,
    path: str | os.PathLike[str],
    truth_vertices: np.ndarray | None = None,
) -> Path:
    """Write the per-stage figure of ``result``'s first fitted frame as PNG.

    Args:
        capture: the calibrated recording that was reconstructed.
        model: the fitted face model.
        result: the reconstruction (its ``stage_vertices``).
        config: its configuration (working scale).
        path: output ``.png``.
        truth_vertices: (V, 3) the true mesh of that frame, for the error row.
    """
    frame = next(capture.frames(result.first_frame, result.first_frame + 1))
    no_landmarks = [None] * capture.num_cameras
    observation = observe(
        frame.index, frame.colour, frame.depth, capture.calibrations, no_landmarks, config.scale
    )
    cameras, faces = observation.cameras, torch.as_tensor(model.faces)
    stages = [s.stage for s in result.stages]
    rows = capture.num_cameras + (truth_vertices is not None)
    cols = 2 + 2 * len(stages)
    size = (1.6 * cols + 0.8, 1.9 * rows + 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    depth = observation.depth.numpy()
    albedo = model.albedo(torch.as_tensor(result.coefficients["albedo"])[None])[0].clamp(0, 1)
    final = render_rgbd(torch.as_tensor(result.stage_vertices[-1])[None], faces, albedo, cameras)
    crops = [_crop_box(final.mask[0, c].numpy()) for c in range(len(cameras))]
    for c, camera in enumerate(cameras):
        colour = observation.colour[c].clamp(0, 1).numpy()
        _measured_panels(axes[c], c, colour, depth[c], final.mask[0, c].numpy(), crops[c])
        for s, vertices in enumerate(result.stage_vertices):
            name = STAGE_NAMES.get(stages[s], stages[s])
            panels = (axes[c, 2 + 2 * s], axes[c, 3 + 2 * s])
            image = _stage_panels(
                panels, name, vertices, faces, albedo, camera, colour, depth[c], crops[c]
            )
    if truth_vertices is not None:
        centre = cameras[capture.reference_camera]
        box = crops[capture.reference_camera]
        _truth_row(axes[-1], model, result.stage_vertices, truth_vertices, faces, centre, box)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5, pad=0.01, label="error (mm)")
    fig.suptitle(
        f"{Path(capture.sources[0]).name}: frame {frame.index} after each stage", fontsize=9
    )
    return save_figure(fig, path)

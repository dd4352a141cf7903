"""The registration figure: landmarks found, the fitted model, the fit error and the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.render.camera import PinholeCamera
from mmface4d.render.shade import render_preview

#: Colour scale of the error panel: this many millimetres is the top colour.
ERROR_SCALE_MM = 3.0


def _front_camera(points: np.ndarray, forward: np.ndarray, up: np.ndarray, size: int):
    from mmface4d.character.landmarks import _camera

    return _camera(points, forward, up, fill=0.85, size=size)


def _colour_ramp(values: np.ndarray, top: float) -> np.ndarray:
    """(N, 3) colours: blue (0) through yellow to red (``top`` and above); grey for NaN."""
    import matplotlib

    ramp = matplotlib.colormaps["turbo"]
    colours = ramp(np.clip(np.nan_to_num(values, nan=0.0) / top, 0, 1))[:, :3]
    colours[~np.isfinite(values)] = 0.6
    return colours.astype(np.float32)


def registration_figure(
    head_vertices: np.ndarray,
    head_faces: np.ndarray,
    registration,
    model_faces: np.ndarray,
    landmark_image: np.ndarray | None,
    landmark_pixels: np.ndarray | None,
    output: str | Path,
    size: int = 384,
) -> Path:
    """A PNG of four panels: the landmarks on the detection render, the fitted model over the
    head, the head coloured by fit error (0 to :data:`ERROR_SCALE_MM` mm) and by how much each
    vertex follows the animation (0 blue to 1 red).

    Args:
        head_vertices: (N, 3) metres, the head's own pose.
        head_faces: (F, 3).
        registration: the :class:`~mmface4d.character.register.Registration`.
        model_faces: (F_m, 3) the face model's triangles.
        landmark_image: the detection render (None for a landmark file).
        landmark_pixels: (K, 2) the landmarks in it.
        output: PNG path (written atomically).
        size: panel side in pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmface4d.character.landmarks import inner_frame

    reg = registration
    right, up, forward, _ = inner_frame(reg.head_landmarks)
    camera: PinholeCamera = _front_camera(head_vertices, forward, up, size)
    fitted_head = reg.transform.apply(reg.fitted.astype(np.float64)).astype(np.float32)
    panels = [
        ("fitted model (blue) on the head", None),
        (f"fit error, 0-{ERROR_SCALE_MM:g} mm", _colour_ramp(reg.surface_error, ERROR_SCALE_MM)),
        ("follows the animation, 0-1", _colour_ramp(reg.weights, 1.0)),
    ]
    images = []
    verts = head_vertices.astype(np.float32)
    both_v = np.concatenate([verts, fitted_head])
    both_f = np.concatenate([head_faces, model_faces + len(verts)])
    grey = np.full((len(verts), 3), 0.8, np.float32)
    blue = np.tile(np.float32([[0.3, 0.5, 0.9]]), (len(fitted_head), 1))
    colours = np.concatenate([grey, blue])
    images.append(render_preview(both_v, both_f, colors=colours, camera=camera))
    for _title, colour in panels[1:]:
        images.append(render_preview(verts, head_faces, colors=colour, camera=camera))
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.4), dpi=100)
    if landmark_image is not None:
        axes[0].imshow(landmark_image)
        if landmark_pixels is not None:
            axes[0].scatter(landmark_pixels[:, 0], landmark_pixels[:, 1], s=1.5, c="red")
        axes[0].set_title("landmarks found")
    else:
        axes[0].imshow(images[0])
        axes[0].set_title("landmarks from the file")
    for axis, image, (title, _) in zip(axes[1:], images, panels, strict=True):
        axis.imshow(image)
        axis.set_title(title)
    errors = reg.errors
    figure.suptitle(
        f"surface error on the face: mean {errors['surface_mean']:.2f} mm, "
        f"median {errors['surface_median']:.2f} mm, 95% {errors['surface_p95']:.2f} mm; "
        f"landmarks {errors['landmark_mean']:.2f} mm"
    )
    for axis in axes:
        axis.axis("off")
    output = Path(output)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(figure)
    return output

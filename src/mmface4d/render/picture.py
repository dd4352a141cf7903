"""A shaded picture of a face model (``mmface4d facemodel show``).

It lives here, not in :mod:`mmface4d.facemodel`, because it renders: the face model layer sits
below the renderer (see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.sources import load_face_model
from mmface4d.render.shade import render_preview


def show_face_model(
    spec: str | Path | FaceModel,
    output: str | Path,
    expression: dict[str, float] | None = None,
    identity: list[float] | None = None,
    size: int = 512,
    view: str = "front",
) -> Path:
    """Render a shaded picture of the model (optionally with expression weights) to a PNG.

    Args:
        spec: face model spec.
        output: PNG path, written atomically.
        expression: ``{name: weight}`` expression weights.
        identity: first identity coefficients (in standard deviations).
        size: image side in pixels.
        view: ``front`` or ``three-quarter``.
    """
    from PIL import Image

    model = load_face_model(spec)
    exp = torch.as_tensor(model.expression_vector(expression or {}))
    ident = torch.as_tensor(np.asarray(identity or [], dtype=np.float32))
    if ident.numel() > model.identity_dims:
        raise InputError(f"--identity: at most {model.identity_dims} values, got {ident.numel()}")
    verts = model.vertices(identity=ident if ident.numel() else None, expression=exp)
    image = render_preview(
        verts, model.faces, colors=model.albedo_mean, width=size, height=size, view=view
    )
    output = Path(output)
    with atomic_path(output) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return output

"""The README's main job on the embedded default (``make demo`` / ``mmface4d demo``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmface4d.atomic import atomic_path
from mmface4d.facemodel import load_face_model

#: (label, expression weights, view) of each panel of the demo picture.
DEMO_PANELS: tuple[tuple[str, dict[str, float], str], ...] = (
    ("neutral", {}, "front"),
    ("jawOpen 0.5", {"jawOpen": 0.5}, "front"),
    ("smile", {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.5,
               "cheekSquintRight": 0.5}, "front"),
    ("blink", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, "front"),
    ("funnel (\"oo\")", {"mouthFunnel": 1.0, "jawOpen": 0.1}, "front"),
    ("surprise", {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0,
                  "eyeWideLeft": 1.0, "eyeWideRight": 1.0, "jawOpen": 0.35}, "front"),
    ("pucker, look left", {"mouthPucker": 1.0, "eyeLookOutLeft": 0.8, "eyeLookInRight": 0.8},
     "three-quarter"),
    ("jawOpen 0.3", {"jawOpen": 0.3}, "three-quarter"),
)  # fmt: skip


def demo(output_dir: str | Path = "out", face_model: str = "synth", size: int = 384) -> Path:
    """Render the default face making a few expressions into ``OUTPUT_DIR/demo_expressions.png``.

    Args:
        output_dir: folder for the outputs (created).
        face_model: face model spec.
        size: side of each panel in pixels.

    Returns:
        The picture's path.
    """
    from mmface4d.render import render_preview

    model = load_face_model(face_model)
    panels = []
    for label, weights, view in DEMO_PANELS:
        known = {k: v for k, v in weights.items() if k in model.expression_names}
        verts = model.vertices(expression=torch.as_tensor(model.expression_vector(known)))
        image = render_preview(
            verts, model.faces, colors=model.albedo_mean, width=size, height=size, view=view
        )
        panel = Image.fromarray(image)
        ImageDraw.Draw(panel).text((8, 6), label, fill=(20, 20, 20))
        panels.append(np.asarray(panel))
    cols = 4
    rows = [np.concatenate(panels[i : i + cols], axis=1) for i in range(0, len(panels), cols)]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    path = Path(output_dir) / "demo_expressions.png"
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {path} ({model.name} face model, {model.num_vertices} vertices)")
    return path

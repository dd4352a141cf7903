"""The README's main job on the embedded default (``make demo`` / ``mmface4d demo``).

Speaks a sentence with the synthetic voice, animates it with the shipped model and writes
``OUT/demo.mp4`` (with the speech), ``OUT/demo.glb`` (+ ``demo.wav``), ``OUT/demo_arkit.csv`` and
``OUT/demo_frames.png`` (a strip of frames where the mouth is most and least open), offline.
"""

from __future__ import annotations

from pathlib import Path

from mmface4d.atomic import atomic_path

DEMO_TEXT = "Hello! I am a talking face, animated from speech on this computer, offline."


def demo(
    output_dir: str | Path = "out",
    text: str = DEMO_TEXT,
    lang: str = "en",
    model: str = "default",
    size: int = 512,
    progress: bool = True,
) -> dict[str, Path]:
    """Speech to an animated face on the embedded default.

    Args:
        output_dir: folder for the outputs (created).
        text: what the synthetic voice says.
        lang: ``en`` or ``zh``.
        model: the animation model (``default``: the shipped one).
        size: video width and height.
        progress: progress bars.

    Returns:
        format -> path of what was written (mp4, glb, wav, viewer, csv, png).
    """
    import numpy as np  # the imports are here so that `mmface4d demo --help` stays light
    from PIL import Image

    from mmface4d.animate.api import animate
    from mmface4d.animate.lipsync import mouth_opening
    from mmface4d.animate.outputs import write_animation
    from mmface4d.render.camera import frame_mesh
    from mmface4d.render.shade import render_preview

    result = animate(text=text, lang=lang, model=model, progress=progress)
    written = write_animation(
        result,
        output_dir,
        ("mp4", "glb", "viewer", "csv"),
        name="demo",
        progress=progress,
        size=size,
    )
    opening = mouth_opening(result.vertices, result.face_model.landmarks)
    order = np.argsort(opening)
    picks = sorted({int(order[0]), *map(int, order[-3:])})
    camera = frame_mesh(
        np.asarray(result.vertices.mean(0)), view="front", width=size // 2, height=size // 2
    )
    frames = render_preview(
        result.vertices[picks], result.faces, colors=result.colors, camera=camera
    )
    strip = Image.fromarray(np.concatenate(list(frames), axis=1))
    written["png"] = Path(output_dir) / "demo_frames.png"
    with atomic_path(written["png"]) as tmp:
        strip.save(tmp, format="PNG")
    seconds = result.duration_s
    print(f"said {text!r} ({seconds:.1f} s) with the {result.metadata['model']} model:")
    for kind, path in written.items():
        print(f"  {kind:4s} {path}")
    return written

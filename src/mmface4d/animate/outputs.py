"""Write an animation (a :class:`~mmface4d.data.sequence.MeshSequence`) in the delivery formats.

Files in ``OUTDIR``, named after the input (``NAME``):

- ``NAME.npz``: vertices (T, V, 3) float32, faces, fps, sample rate, metadata (JSON);
- ``NAME.mp4``: rendered with the project's renderer, the speech muxed in, verified;
- ``NAME.glb`` and ``NAME.wav``: glTF 2.0 with the neutral mesh, a compact morph-target basis
  (the face model's ARKit shapes when it has them, else a PCA of the offsets, at most 64) and
  the animation of their weights; the speech beside it (glTF has no audio);
- ``NAME_arkit.csv``: per-frame timecode and ARKit-52 weights (bounded least squares of the
  offsets against the face model's ARKit basis; only for face models that have one);
- ``NAME_ply/`` or ``NAME_obj/``: one mesh per frame.

Every file is written under a temporary name and renamed when complete. The module imports no
third-party library at import time (the CLI's help shows :data:`DEFAULT_FORMATS`); the writers
load with the formats asked for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmface4d.errors import InputError

if TYPE_CHECKING:
    from mmface4d.data.sequence import MeshSequence

FORMATS = ("mp4", "glb", "csv", "npz", "ply", "obj")
DEFAULT_FORMATS = ("mp4", "glb", "csv", "npz")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"mp4,glb"`` -> ("mp4", "glb"); an :class:`InputError` naming unknown formats."""
    items = tuple(
        dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    )
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise InputError(f"--formats {text!r}: expected some of {', '.join(FORMATS)}")
    return items


def write_animation(
    result: MeshSequence,
    output: str | os.PathLike[str],
    formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
    name: str | None = None,
    progress: bool = True,
    size: int = 512,
) -> dict[str, Path]:
    """Write the requested formats into ``output`` (created if needed).

    Args:
        result: the animation (what :func:`mmface4d.animate` returns): ``glb`` and ``csv`` need
            its ``template``, the ``wav`` beside the ``glb`` its ``audio``.
        output: the output folder.
        formats: some of :data:`FORMATS`.
        name: file stem (default the result's ``metadata["name"]``).
        progress: progress bars.
        size: video width and height in pixels (even).

    Returns:
        format -> written path (``glb`` also gives ``wav``; a ``csv`` that the face model cannot
        give is skipped when it was only a default, an error when asked for explicitly).
    """
    # each format's writer is imported in its branch: npz alone loads no glTF or video code
    from mmface4d.export.arkit import arkit_basis, solve_arkit_weights, write_arkit_csv

    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    name = name or str(result.metadata.get("name") or "animation")
    basis = arkit_basis(result.face_model) if result.face_model is not None else None
    formats = _check_formats(result, tuple(formats), basis is not None)
    folder.mkdir(parents=True, exist_ok=True)
    offsets = None if result.template is None else result.vertices - result.template[None]
    written: dict[str, Path] = {}
    if "npz" in formats:
        from mmface4d.export.meshes import write_animation_npz

        written["npz"] = write_animation_npz(
            folder / f"{name}.npz",
            result.vertices,
            result.faces,
            result.fps,
            result.sample_rate,
            metadata=_jsonable(result.metadata),
        )
    if "csv" in formats and basis is not None:
        solve = solve_arkit_weights(offsets, basis.targets)
        written["csv"] = write_arkit_csv(
            folder / f"{name}_arkit.csv", solve.weights, basis.names, result.fps
        )
    if "glb" in formats:
        from mmface4d.audio.io import write_wav
        from mmface4d.export.gltf import morph_basis, write_glb

        morphs = morph_basis(
            offsets,
            basis.targets if basis is not None else None,
            basis.names if basis is not None else None,
        )
        written["glb"] = write_glb(
            folder / f"{name}.glb",
            result.template,
            result.faces,
            morphs,
            result.fps,
            vertex_colors=result.colors,
            name=name,
        )
        if result.audio is not None:
            written["wav"] = write_wav(
                folder / f"{name}.wav", result.audio, result.sample_rate, encoding="pcm16"
            )
    for kind in ("ply", "obj"):
        if kind in formats:
            from mmface4d.export.meshes import write_mesh_sequence

            write_mesh_sequence(
                folder / f"{name}_{kind}",
                result.vertices,
                result.faces,
                fmt=kind,
                progress=progress,
            )
            written[kind] = folder / f"{name}_{kind}"
    if "mp4" in formats:
        from mmface4d.render.video import render_video

        render_video(
            result.vertices,
            result.faces,
            result.fps,
            folder / f"{name}.mp4",
            result.audio,
            result.sample_rate,
            colors=result.colors,
            size=(size, size),
            progress=progress,
        )
        written["mp4"] = folder / f"{name}.mp4"
    return written


def _check_formats(
    result: MeshSequence, formats: tuple[str, ...], has_arkit: bool
) -> tuple[str, ...]:
    """The formats to write: an :class:`InputError` for those the animation cannot give (a
    default ``csv`` without an ARKit basis is dropped)."""
    if result.faces.size == 0 and any(f in formats for f in ("mp4", "glb", "npz", "ply", "obj")):
        raise InputError("the animation has no triangles; give --face-model or a mesh --template")
    if result.template is None and any(f in formats for f in ("glb", "csv")):
        raise InputError("the animation has no neutral template to give glb or csv offsets")
    if "csv" in formats and not has_arkit:
        if formats != DEFAULT_FORMATS:
            raise InputError("--formats csv: the face model has no ARKit basis to solve against")
        formats = tuple(f for f in formats if f != "csv")
    return formats


def _jsonable(values: dict) -> dict:
    import numpy as np

    return json.loads(json.dumps(values, default=lambda v: np.asarray(v).tolist()))

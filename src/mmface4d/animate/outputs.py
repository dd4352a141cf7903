"""Write an animation (a :class:`~mmface4d.data.sequence.MeshSequence`) in the delivery formats.

Files in ``OUTDIR``, named after the input (``NAME``):

- ``NAME.npz``: vertices (T, V, 3) float32, faces, fps, sample rate, metadata (JSON);
- ``NAME.mp4``: rendered with the project's renderer, the speech muxed in, verified;
- ``NAME.glb`` and ``NAME.wav``: glTF 2.0 with the neutral mesh, a compact morph-target basis
  (the face model's ARKit shapes when it has them, else a PCA of the offsets, at most 64) and
  the animation of their weights; the speech beside it (glTF has no audio);
- ``NAME_viewer.html``: the glb and the speech in one self-contained page that a browser plays
  offline, from disk (:mod:`mmface4d.export.viewer`; three.js inlined from ``web/node_modules``,
  skipped with a warning when it is not installed; asking for it writes the glb too);
- ``NAME_arkit.csv``: per-frame timecode and ARKit-52 weights (bounded least squares of the
  offsets against the face model's ARKit basis; only for face models that have one);
- ``NAME_ply/`` or ``NAME_obj/``: one mesh per frame.

Every file is written under a temporary name and renamed when complete. Every format is written
as the frames come (:func:`write_animation_frames`: the NPZ's vertices appended to its ``.npy``
member, CSV rows, video frames rendered and encoded in batches, one PLY/OBJ per frame; the glTF
keeps only the per-frame morph weights, 52 floats, and is written at the end), so
``mmface4d animate`` of a long file (:func:`mmface4d.animate.api.animate_to_files`) never holds
its vertices; :func:`write_animation` writes an animation held in memory through the same
writers. (The glTF of a face model without ARKit shapes, a PCA of the clip's offsets, still
holds them.) The module imports no third-party library at import time (the CLI's help shows
:data:`DEFAULT_FORMATS`); the writers load with the formats asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmface4d.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from mmface4d.data.sequence import MeshSequence
    from mmface4d.export.gltf import MorphBasis
    from mmface4d.facemodel.model import FaceModel

FORMATS = ("mp4", "glb", "viewer", "csv", "npz", "ply", "obj")
DEFAULT_FORMATS = ("mp4", "glb", "viewer", "csv", "npz")


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
        give is skipped when it was only a default, an error when asked for explicitly;
        ``viewer`` is absent, with a warning, when three.js is not installed).
    """
    vertices = result.vertices
    batches = (vertices[start : start + BATCH] for start in range(0, len(vertices), BATCH))
    return write_animation_frames(
        batches,
        output,
        formats,
        name=name or str(result.metadata.get("name") or "animation"),
        num_frames=len(vertices),
        fps=result.fps,
        faces=result.faces,
        template=result.template,
        colors=result.colors,
        face_model=result.face_model,
        audio=result.audio,
        sample_rate=result.sample_rate or 16_000,
        metadata=lambda: _jsonable(result.metadata),
        progress=progress,
        size=size,
    )


#: Frames handed to the writers at once by :func:`write_animation`.
BATCH = 256


def write_animation_frames(
    frames: Iterable[np.ndarray],
    output: str | os.PathLike[str],
    formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
    *,
    name: str,
    num_frames: int,
    fps: float,
    faces: np.ndarray,
    template: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    face_model: FaceModel | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    metadata: dict | Callable[[], dict] | None = None,
    progress: bool = True,
    size: int = 512,
) -> dict[str, Path]:
    """Write an animation that comes in batches of frames (a stream), every format as they come.

    Args:
        frames: (n, V, 3) float32 vertex batches, face model frame, ``num_frames`` in all.
        output: the output folder (created if needed).
        formats: some of :data:`FORMATS`.
        name: file stem.
        num_frames: T, the frames ``frames`` gives (checked).
        fps: frame rate.
        faces: (F, 3) triangles.
        template: (V, 3) the neutral face (needed by ``glb`` and ``csv``).
        colors: (V, 3) albedo in [0, 1] for the glTF and the video, or None.
        face_model: its ARKit shapes give the CSV and the glTF's morph targets.
        audio: (N,) mono speech for the video and the WAV beside the glTF, or None.
        sample_rate: rate of ``audio``.
        metadata: JSON-able facts for the NPZ, or a function giving them once the frames are
            done (a stream's facts are complete then).
        progress: a progress bar over frames.
        size: video width and height in pixels (even).

    Returns:
        format -> written path, as :func:`write_animation`.
    """
    import contextlib

    import numpy as np
    from tqdm import tqdm

    from mmface4d.export.arkit import ArkitCsvWriter, ArkitSolver, arkit_basis

    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    basis = arkit_basis(face_model) if face_model is not None else None
    formats = _check_formats(
        np.asarray(faces), template is not None, tuple(formats), basis is not None
    )
    if "viewer" in formats and "glb" not in formats:  # the page embeds the glb written beside it
        formats = (*formats, "glb")
    if "mp4" in formats and (size <= 0 or size % 2):
        raise InputError(f"--size {size}: expected a positive even number of pixels")
    folder.mkdir(parents=True, exist_ok=True)
    solver = (
        ArkitSolver(basis.targets) if basis is not None and {"csv", "glb"} & set(formats) else None
    )
    written: dict[str, Path] = {}
    morph = (
        _MorphWeights(basis.targets if basis is not None else None) if "glb" in formats else None
    )
    with contextlib.ExitStack() as stack:
        npz = None
        if "npz" in formats:
            from mmface4d.export.meshes import AnimationNpzWriter

            npz = AnimationNpzWriter(folder / f"{name}.npz", num_frames, faces, fps, sample_rate)
            stack.push(lambda kind, error, trace: npz.abort(error) if error else None)
        csv = None
        if "csv" in formats and basis is not None:
            path = folder / f"{name}_arkit.csv"
            csv = stack.enter_context(ArkitCsvWriter(path, basis.names, fps))
        meshes = []
        for kind in ("ply", "obj"):
            if kind in formats:
                from mmface4d.export.meshes import MeshSequenceWriter

                meshes.append(
                    MeshSequenceWriter(folder / f"{name}_{kind}", faces, num_frames, kind)
                )
                written[kind] = folder / f"{name}_{kind}"
        bar = stack.enter_context(
            tqdm(total=num_frames, desc="animate", unit="frame", disable=not progress)
        )
        count = 0

        def consume(batch: np.ndarray) -> np.ndarray:
            nonlocal count
            batch = np.asarray(batch, dtype=np.float32)
            if count + len(batch) > num_frames:
                raise InputError(f"frames: more than the {num_frames} announced")
            for start in range(0, len(batch), _PART):  # float64 work in parts of a batch
                part = batch[start : start + _PART]
                if npz is not None:
                    npz.write(part)
                offsets = None if template is None else part - np.asarray(template, np.float32)
                weights = solver.solve(offsets).weights if solver is not None else None
                if csv is not None:
                    csv.write(weights)
                if morph is not None:
                    morph.add(offsets, weights)
                for writer in meshes:
                    writer.write(part)
            count += len(batch)
            bar.update(len(batch))
            return batch

        if "mp4" in formats:
            written["mp4"] = _write_video(
                (consume(batch) for batch in frames),
                folder / f"{name}.mp4",
                num_frames,
                fps,
                faces,
                template,
                colors,
                audio,
                sample_rate,
                size,
            )
        else:
            for batch in frames:
                consume(batch)
        if count != num_frames:
            raise InputError(f"frames: {count} given of the {num_frames} announced")
        facts = metadata() if callable(metadata) else dict(metadata or {})
        if npz is not None:
            written["npz"] = npz.close(facts)
        if csv is not None:
            written["csv"] = csv.path
    if morph is not None:
        from mmface4d.audio.io import write_wav
        from mmface4d.export.gltf import write_glb

        written["glb"] = write_glb(
            folder / f"{name}.glb",
            template,
            faces,
            morph.basis(basis.names if basis is not None else None),
            fps,
            vertex_colors=colors,
            name=name,
        )
        if audio is not None:
            written["wav"] = write_wav(folder / f"{name}.wav", audio, sample_rate, encoding="pcm16")
        if "viewer" in formats:
            from mmface4d.export.viewer import write_viewer

            page = write_viewer(
                folder / f"{name}_viewer.html", written["glb"], written.get("wav"), title=name
            )
            if page is not None:  # None: three.js is not installed (warned)
                written["viewer"] = page
    return {k: written[k] for k in _ORDER if k in written}


#: Frames of a batch the writers take at once (their float64 work is a few such parts).
_PART = 32
#: The order of the paths :func:`write_animation_frames` returns.
_ORDER = ("npz", "csv", "glb", "wav", "viewer", "ply", "obj", "mp4")


def _write_video(
    frames: Iterable[np.ndarray],
    path: Path,
    num_frames: int,
    fps: float,
    faces: np.ndarray,
    template: np.ndarray | None,
    colors: np.ndarray | None,
    audio: np.ndarray | None,
    sample_rate: int,
    size: int,
    batch: int = 8,
) -> Path:
    """Render and encode batches of frames as they come (``render.video``'s look: front view,
    the camera framing the neutral face, or the first frame without one); the renderer works a
    few batches ahead of the encoder, in a thread (``render.video.rendered_ahead``)."""
    import numpy as np
    import torch

    from mmface4d.render.camera import frame_mesh
    from mmface4d.render.shade import render_preview
    from mmface4d.render.video import SKIN, encode_video, rendered_ahead

    def batches() -> Iterator[tuple]:
        camera = None
        for block in frames:
            if camera is None:
                framed = template if template is not None else block[0]
                camera = frame_mesh(np.asarray(framed, np.float32), width=size, height=size)
                shade = colors if colors is not None else np.tile(SKIN, (block.shape[1], 1))
            for start in range(0, len(block), batch):
                # a copy: the renderer reads it in its thread while the stream goes on
                part = np.array(block[start : start + batch], dtype=np.float32)
                yield camera, shade, part

    def render(job: tuple) -> np.ndarray:
        camera, shade, part = job
        return render_preview(
            torch.from_numpy(part),
            faces,
            colors=shade,
            camera=camera,
            width=size,
            height=size,
            supersample=1,
        )

    encode_video(rendered_ahead(batches(), render), path, fps, num_frames, audio, sample_rate)
    return path


class _MorphWeights:
    """The glTF's morph weights gathered frame by frame: the ARKit solve's weights and the
    reconstruction error (``export.gltf.morph_basis``'s), or the offsets for a PCA basis."""

    def __init__(self, targets: np.ndarray | None):
        import numpy as np

        self.targets = targets
        self.flat = (
            None if targets is None else targets.reshape(len(targets), -1).astype(np.float64)
        )
        self.weights: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.squared, self.worst, self.count = 0.0, 0.0, 0

    def add(self, offsets: np.ndarray, weights: np.ndarray | None) -> None:
        import numpy as np

        if self.targets is None:
            self.offsets.append(offsets)
            return
        self.weights.append(weights)
        residual = offsets.reshape(len(offsets), -1).astype(np.float64)
        residual -= weights.astype(np.float64) @ self.flat
        lengths = np.square(residual).reshape(len(residual), -1, 3).sum(axis=2)
        self.squared += float(lengths.sum())
        self.worst = max(self.worst, float(lengths.max(initial=0.0)))
        self.count += lengths.size

    def basis(self, names: list[str] | None) -> MorphBasis:
        import numpy as np

        from mmface4d.export.gltf import MorphBasis, morph_basis

        if self.targets is None:
            return morph_basis(np.concatenate(self.offsets))
        return MorphBasis(
            np.asarray(self.targets, np.float32),
            [str(n) for n in names or []],
            np.concatenate(self.weights),
            float(np.sqrt(self.squared / max(self.count, 1))),
            float(np.sqrt(self.worst)),
            "arkit",
        )


def _check_formats(
    faces: np.ndarray, has_template: bool, formats: tuple[str, ...], has_arkit: bool
) -> tuple[str, ...]:
    """The formats to write: an :class:`InputError` for those the animation cannot give (a
    default ``csv`` without an ARKit basis is dropped)."""
    if faces.size == 0 and any(f in formats for f in ("mp4", "glb", "viewer", "npz", "ply", "obj")):
        raise InputError("the animation has no triangles; give --face-model or a mesh --template")
    if not has_template and any(f in formats for f in ("glb", "viewer", "csv")):
        raise InputError("the animation has no neutral template to give glb or csv offsets")
    if "csv" in formats and not has_arkit:
        if formats != DEFAULT_FORMATS:
            raise InputError("--formats csv: the face model has no ARKit basis to solve against")
        formats = tuple(f for f in formats if f != "csv")
    return formats


def _jsonable(values: dict) -> dict:
    import numpy as np

    return json.loads(json.dumps(values, default=lambda v: np.asarray(v).tolist()))

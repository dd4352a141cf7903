"""``mmface4d video``: a mesh sequence file (and its speech file) to a verified MP4.

The renderer (:mod:`mmface4d.render.video`) turns arrays into video; this module reads the files a
user has (an NPZ sequence or an MMFace4D ``.nut`` triple, any audio format) and hands the arrays
over, so the renderer stays free of file formats.
"""

from __future__ import annotations

from pathlib import Path

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio
from mmface4d.data.sequence import load_sequence
from mmface4d.errors import InputError
from mmface4d.render.video import VideoInfo, render_video


def video(
    sequence: str | Path,
    output: str | Path,
    audio: str | Path | None = None,
    fps: float | None = None,
    size: tuple[int, int] = (512, 512),
    view: str = "front",
    faces: str | Path | None = None,
    progress: bool = True,
    batch: int = 8,
    supersample: int = 1,
) -> VideoInfo:
    """Render a mesh sequence to an MP4 with its speech (the ``mmface4d video`` verb).

    Args:
        sequence: an NPZ sequence (vertices, faces, fps) or an MMFace4D ``.nut`` prefix.
        output: the ``.mp4`` path.
        audio: speech file to mux in (any format PyAV reads); None for a silent video.
        fps: overrides the sequence's frame rate.
        size: (width, height) in pixels, both even.
        view: ``front`` or ``three-quarter``.
        faces: triangles for a ``.nut`` sequence (see :func:`mmface4d.data.sequence.load_faces`).
        progress: show a progress bar.
        batch: frames rendered per rasterizer call.
        supersample: antialiasing factor of the frames (1 is fastest; 2 smooths edges, ~3x
            slower).

    Returns:
        The verified :class:`~mmface4d.render.video.VideoInfo`.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InputError(f"--size {width}x{height}: expected positive even width and height")
    seq = load_sequence(sequence, faces=faces, fps=fps)
    speech = None
    if audio is not None:
        speech = load_audio(audio, DEFAULT_SAMPLE_RATE)
        seconds = len(speech) / DEFAULT_SAMPLE_RATE
        if abs(seconds - seq.duration_s) > max(0.25, 0.05 * seq.duration_s):
            raise InputError(
                f"{audio}: lasts {seconds:.2f} s but the sequence lasts {seq.duration_s:.2f} s "
                f"({seq.num_frames} frames at {seq.fps:g} fps); check --fps"
            )
    return render_video(
        seq.in_model_frame(),
        seq.faces,
        seq.fps,
        output,
        speech,
        colors=seq.colors,
        size=size,
        view=view,
        progress=progress,
        batch=batch,
        supersample=supersample,
    )

"""``mmface4d video``: render a mesh sequence to an MP4 with its speech."""

from __future__ import annotations

import argparse

from mmface4d.errors import InputError


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    try:
        return int(w), int(h)
    except ValueError:
        raise InputError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 512x512") from None


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("video", help="render a mesh sequence to MP4 (H.264 + AAC speech)")
    p.add_argument(
        "sequence", help="NPZ sequence (vertices, faces, fps) or an MMFace4D .nut prefix"
    )
    p.add_argument("-o", "--output", required=True, help="output .mp4 path")
    p.add_argument("--audio", help="speech to mux in (wav, flac, mp3, m4a ...)")
    p.add_argument("--fps", type=float, help="override the sequence's frame rate")
    p.add_argument("--size", default="512x512", help="WIDTHxHEIGHT, even (default 512x512)")
    p.add_argument("--view", choices=("front", "three-quarter"), default="front")
    p.add_argument(
        "--faces",
        help="triangles for .nut input: facemodel_info.mat, .npy/.obj/.ply, or a face model spec",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def run(a: argparse.Namespace) -> None:
        from mmface4d.export.video import video

        info = video(
            a.sequence,
            a.output,
            audio=a.audio,
            fps=a.fps,
            size=_size(a.size),
            view=a.view,
            faces=a.faces,
            progress=not a.no_progress,
        )
        audio = f", audio {info.audio_duration_s:.2f} s" if info.audio_duration_s else ", no audio"
        print(
            f"wrote {info.path}: {info.frames} frames at {info.fps:g} fps "
            f"({info.duration_s:.2f} s){audio}"
        )

    p.set_defaults(run=run)

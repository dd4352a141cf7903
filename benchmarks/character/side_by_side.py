"""The same speech on three characters side by side: one picture and one video (issue 17).

    .venv/bin/python benchmarks/character/side_by_side.py            # docs/characters.{png,mp4}

The characters are test heads of ``meshes.py``: ICT FaceKit's neutral head as shipped (26,719
vertices, with eyes, teeth and mouth socket), another ICT identity (random identity shapes), and
an identity of the project's own face model subdivided (every triangle into four). Each is
registered from its OBJ like ``mmface4d character register`` does (cached) and animated like
``mmface4d animate SPEECH --character HEAD`` does. The picture shows four moments of the clip
(at rest, a p/b/m closure, the widest opening, and a median opening mid-clip) per character;
the video plays the whole clip with its sound.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import meshes  # noqa: E402

SPEECH = meshes.SHARED_DATA / "speech" / "english_male_test.wav"
CASES = ("ict-neutral-original", "ict-id1-original", "synth-id0-subdivided")
LABELS = ("ICT FaceKit neutral", "ICT FaceKit, another identity", "own model identity, subdivided")


def _heads(work: Path) -> list[Path]:
    wanted = set(CASES)
    cases = [c for c in meshes.build_cases(identities=2) if c.name in wanted]
    by_name = {c.name: c for c in cases}
    paths = []
    for name in CASES:
        path = work / f"{name}.obj"
        if not path.is_file():
            case = by_name[name]
            meshes.write_obj(path, case.head_vertices, case.head_faces)
        paths.append(path)
    return paths


def _moments(result, model) -> list[tuple[str, int]]:
    """(label, frame) of four telling moments of the clip."""
    from mmface4d.animate.metrics import inner_lip_gap

    gap = inner_lip_gap(result.vertices, model.landmarks)
    fps = result.fps
    closure = result.metadata.get("lip_closure", {}) or {}
    bilabials = [t for t in closure.get("bilabials", []) if 1.0 < t < len(gap) / fps - 0.5]
    shut = (
        int(round(bilabials[0] * fps)) if bilabials else int(np.argmin(gap[int(fps) :]) + int(fps))
    )
    widest = int(np.argmax(gap))
    third = len(gap) // 3
    speaking = third + int(np.argsort(gap[third : 2 * third])[(2 * third - third) // 2])
    return [("rest", 0), ("p/b/m", shut), ("widest", widest), ("speaking", speaking)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=Path, default=SPEECH)
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "side_by_side")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "characters.png")
    parser.add_argument("--video", type=Path, default=ROOT / "docs" / "characters.mp4")
    parser.add_argument("--size", type=int, default=384, help="pixels of one character's tile")
    args = parser.parse_args(argv)

    from PIL import Image, ImageDraw

    from mmface4d.animate.api import animate, load_animator
    from mmface4d.character.character import register_character
    from mmface4d.render.camera import frame_mesh
    from mmface4d.render.shade import render_preview
    from mmface4d.render.video import encode_video

    args.work.mkdir(parents=True, exist_ok=True)
    model = load_animator("default", None, "cpu").face_model
    source = animate(str(args.speech))
    moments = _moments(source, model)
    tiles = []  # per character: (T, H, W, 3) uint8
    for path in _heads(args.work):
        print(f"{path.stem}: register, animate, render", flush=True)
        character = register_character(path, model)
        result = animate(str(args.speech), character=character)
        camera = frame_mesh(result.vertices, width=args.size, height=args.size, fill=0.9)
        frames = [
            render_preview(result.vertices[i : i + 16], character.faces, camera=camera)
            for i in range(0, len(result.vertices), 16)
        ]
        tiles.append(np.concatenate([f if f.ndim == 4 else f[None] for f in frames]))
    count = min(len(t) for t in tiles)
    strip = np.concatenate([t[:count] for t in tiles], axis=2)

    # the picture: a row per moment, a column per character, labelled
    size = args.size
    rows = [strip[frame] for _, frame in moments]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(LABELS):
        draw.text((c * size + 8, 6), label, fill=(235, 235, 235))
    for r, (label, frame) in enumerate(moments):
        draw.text(
            (8, r * size + size - 18), f"{label} ({frame / source.fps:.2f} s)", fill=(235,) * 3
        )
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.picture.with_name(args.picture.name + ".tmp.png")
    grid.save(tmp)
    tmp.replace(args.picture)

    encode_video(
        iter(strip), args.video, source.fps, count, source.audio, source.sample_rate, crf=26
    )
    print(f"wrote {args.picture} and {args.video} ({count} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

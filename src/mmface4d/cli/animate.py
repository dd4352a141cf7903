"""``mmface4d animate``: speech (a file or text) to an animated face in delivery formats."""

from __future__ import annotations

import argparse
import json

FORMAT_HELP = (
    "comma-separated outputs: mp4, glb, viewer (NAME_viewer.html: the glb and the speech in one "
    "page a browser plays offline; needs three.js from make setup), csv (ARKit curves), npz, "
    "ply, obj (default "
)


def _animate(args: argparse.Namespace) -> None:
    from mmface4d.animate.api import animate_to_files
    from mmface4d.animate.closure import ClosureConfig
    from mmface4d.animate.liveliness import LivelinessConfig
    from mmface4d.animate.outputs import DEFAULT_FORMATS, parse_formats
    from mmface4d.cli import freeze_imports

    freeze_imports()
    formats = parse_formats(args.formats or ",".join(DEFAULT_FORMATS))
    # streamed: every format written as the frames come, memory bounded whatever the length
    written = animate_to_files(
        args.input,
        args.output,
        formats,
        name=args.name,
        size=args.size,
        text=args.text,
        lang=args.lang,
        model=args.model,
        style=args.style,
        emotion=args.emotion,
        subject=args.subject,
        template=args.template,
        character=args.character,
        face_model=args.face_model,
        device=args.device,
        progress=not args.quiet,
        liveliness=LivelinessConfig(
            blinks=not args.no_blinks, saccades=not args.no_saccades, seed=args.seed
        ),
        closure=ClosureConfig(enabled=not args.no_lip_closure),
    )
    print(json.dumps({k: str(v) for k, v in written.items()}, indent=2))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    from mmface4d.animate.outputs import DEFAULT_FORMATS

    p = verbs.add_parser(
        "animate",
        help="animate a face from speech (audio file or --text) -> mp4, glb, ARKit csv, npz",
        description="Speech in, 3D face animation out. INPUT is an audio file (wav, flac, mp3, "
        "m4a, ...; any rate and channel count) or use --text. Outputs are named after the input "
        "(or --name) inside OUTDIR.",
    )
    p.add_argument("input", nargs="?", help="speech file (omit with --text)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--text", help="say this with the synthetic voice instead of an audio file")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="language of --text")
    p.add_argument(
        "--model",
        default="default",
        help="default (shipped), an animator .pt or a training run folder",
    )
    p.add_argument(
        "--style",
        help="built-in style id (e.g. S001, S001-happy) or a reference "
        "sequence (.npz or .nut prefix)",
    )
    p.add_argument("--emotion", help="use the built-in style with this emotion")
    p.add_argument("--subject", help="built-in subject whose face is animated (default: mean)")
    p.add_argument("--template", help="your neutral mesh in the model's topology (PLY/OBJ/NPZ)")
    p.add_argument(
        "--character",
        help="your own neutral head in any topology (OBJ/PLY/glTF/GLB, registered once and "
        "cached) or a .char file from `mmface4d character register`; outputs use its mesh",
    )
    p.add_argument("--face-model", help="face model spec (needed for training-run folders)")
    p.add_argument("--formats", help=FORMAT_HELP + ",".join(DEFAULT_FORMATS) + ")")
    p.add_argument("--name", help="output file stem (default: the input's)")
    p.add_argument("--size", type=int, default=512, help="video width and height (default 512)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-blinks", action="store_true", help="do not add blinks")
    p.add_argument("--no-saccades", action="store_true", help="do not add eye saccades")
    p.add_argument(
        "--no-lip-closure",
        action="store_true",
        help="leave the model's mouth as it is (default: lips closed at recognised p, b, m)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the blink and gaze timing")
    p.set_defaults(run=_animate)

"""``mmface4d character register``: fit the face model to your own head mesh."""

from __future__ import annotations

import argparse
import json


def _register(args: argparse.Namespace) -> None:
    import sys
    import time

    from mmface4d.animate.api import load_animator
    from mmface4d.character.character import register_character
    from mmface4d.errors import InputError

    animator = load_animator(args.model, args.face_model, "cpu")
    if animator.face_model is None:
        raise InputError(f"--model {args.model}: it has no face model to register")
    started = time.perf_counter()

    def say(step: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:5.1f} s] {step}", file=sys.stderr)

    character = register_character(
        args.mesh,
        animator.face_model,
        unit=args.unit,
        landmarks=args.landmarks,
        output=args.output,
        figure=args.figure,
        cache=not args.no_cache,
        progress=say,
    )
    summary = {
        "character": str(args.output),
        "vertices": character.num_vertices,
        "unit": character.source_unit,
        "errors_mm": {k: round(v, 3) for k, v in character.errors.items()},
        "moving_vertices": int((character.weights > 0).sum() + len(character.free)),
        "rigid_parts": len(character.parts),
    }
    if args.figure:
        summary["figure"] = str(args.figure)
    print(json.dumps(summary, indent=2))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("character", help="register your own head mesh to animate it")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = sub.add_parser(
        "register",
        help="fit the face model to a neutral head mesh (any topology) -> a .char file",
        description="Finds the face's landmarks (a front render seen by MediaPipe, or "
        "--landmarks), fits the face model and builds the dense correspondence that "
        "`mmface4d animate --character` uses. Registrations are cached, so animate on the same "
        "mesh starts at once.",
    )
    q.add_argument("mesh", help="neutral head mesh: OBJ, PLY, glTF/GLB or NPZ (any pose)")
    q.add_argument("-o", "--output", required=True, help="the .char file to write")
    q.add_argument("--unit", choices=("m", "cm", "mm"), help="the mesh's unit (default: detect)")
    q.add_argument(
        "--landmarks",
        help='68 iBUG landmarks instead of detecting them: JSON {"points": [[x, y, z], ...]} '
        'or {"vertices": [i, ...]}, or text rows',
    )
    q.add_argument("--figure", help="also write a PNG of the landmarks, the fit and its error")
    q.add_argument("--model", default="default", help="the animator whose face model to fit")
    q.add_argument("--face-model", help="face model spec (needed for training-run folders)")
    q.add_argument("--no-cache", action="store_true", help="register again, ignore the cache")
    q.add_argument("--quiet", action="store_true", help="no progress lines")
    q.set_defaults(run=_register)

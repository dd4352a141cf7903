"""``mmface4d synth corpus|say|capture``: the synthetic speech-and-face world."""

from __future__ import annotations

import argparse

from mmface4d.cli._batch import add_batch_options, run_batch_verb
from mmface4d.facemodel.sources import SPEC_HELP
from mmface4d.synth.languages import CORPUS_LANGS


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("synth", help="generate synthetic talking-face data")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    q = sub.add_parser("corpus", help="write a synthetic corpus in the MMFace4D layout")
    q.add_argument("-o", "--output", required=True, help="corpus folder")
    q.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    q.add_argument("--sentences", type=int, default=10, help="sentences per subject (default 10)")
    q.add_argument("--lang", choices=CORPUS_LANGS, default="both")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--face-model", default="synth", help=SPEC_HELP)
    add_batch_options(q)
    q.add_argument("--text-file", help="your sentences, one per line (optionally emotion<TAB>text)")
    q.add_argument(
        "--no-head-motion",
        dest="head_motion",
        action="store_false",
        help="keep the head still (pose-free sequences for training animation models)",
    )
    q.add_argument(
        "--pad-silence",
        action="store_true",
        help="0.2-0.9 s of silence (face at rest) before and after each sentence",
    )
    q.set_defaults(run=_corpus)

    q = sub.add_parser("say", help="write one recording of a text")
    q.add_argument("text", help="what to say")
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument("--subject", type=int, default=1, help="subject number (default 1)")
    q.add_argument("--emotion", default="neutral", help="neutral, happy, angry, sad, ...")
    q.add_argument("--lang", choices=("en", "zh"), default="en")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--face-model", default="synth", help=SPEC_HELP)
    q.set_defaults(run=_say)

    q = sub.add_parser(
        "capture",
        help="film synthetic recordings with the RGB-D studio into the MMFace4D raw layout",
    )
    q.add_argument(
        "source", help="a corpus folder, a recording prefix (DIR/S001/210003) or an .npz"
    )
    q.add_argument("-o", "--output", required=True, help="capture folder")
    q.add_argument(
        "--scale", type=float, default=1.0, help="resolution, a fraction of 1920x1080 (default 1)"
    )
    q.add_argument("--frames", type=int, help="film at most N frames of each recording")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--face-model", help=f"default: the corpus's, else synth. {SPEC_HELP}")
    q.add_argument(
        "--detail-mm",
        type=float,
        default=0.0,
        help="std of per-subject surface detail beyond the face model's space, mm (default 0)",
    )
    add_batch_options(q)
    q.set_defaults(run=_capture)


def _corpus(a: argparse.Namespace) -> int:
    from mmface4d.synth.corpus import corpus  # the library's imports: only when used

    return run_batch_verb(
        lambda: corpus(
            a.output,
            subjects=a.subjects,
            sentences=a.sentences,
            lang=a.lang,
            seed=a.seed,
            face_model=a.face_model,
            workers=a.workers,
            text_file=a.text_file,
            head_motion=a.head_motion,
            pad_silence=a.pad_silence,
            executor=a.executor,
        ),
        print,
    )


def _say(a: argparse.Namespace) -> None:
    from mmface4d.synth.corpus import say

    print(
        say(
            a.text,
            a.output,
            subject=a.subject,
            emotion=a.emotion,
            lang=a.lang,
            seed=a.seed,
            face_model=a.face_model,
        )
    )


def _capture(a: argparse.Namespace) -> int:
    from mmface4d.synth.capture import capture  # the studio's imports: only when used

    return run_batch_verb(
        lambda: capture(
            a.source,
            a.output,
            scale=a.scale,
            frames=a.frames,
            seed=a.seed,
            face_model=a.face_model,
            detail_mm=a.detail_mm,
            workers=a.workers,
            executor=a.executor,
        ),
        print,
    )

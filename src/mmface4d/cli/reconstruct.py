"""``mmface4d reconstruct``: fit and track the face model through multi-view RGB-D recordings."""

from __future__ import annotations

import argparse
from typing import Any

from mmface4d.cli._batch import add_batch_options, report_batch
from mmface4d.cli.config import ConfigSurface, add_config_verb

_DESCRIPTION = """\
Reconstruct the face of every recording in INPUT (one MMFace4D raw recording folder,
REC_<cam>.{mp4,nut,json}, or a folder of such folders) with the paper's method: on the first
frame, landmark fitting, 3DMM fitting through the differentiable renderer (colour, depth,
landmarks, prior; one SH lighting per camera) and vertex-level fitting (edge, Laplacian, offset
regularisers); every later frame is tracked from the previous one; the sequence is low-pass
filtered (5 Hz). Writes OUT/<subject>/REC_{0,1,2}.nut (the dataset's mesh format),
REC_fit.npz (coefficients), REC_fit.json (per-frame residuals, timings, errors against the truth
of studio captures) and OUT/manifest.json. Finished recordings are skipped on re-run; a failed
one is recorded and the batch goes on.

Settings (the paper's defaults; every key is listed below) come from --config, a file or a
preset (paper: every iteration re-rasterized, whole images; fast: early stopping, 60 tracking
iterations), then --set KEY=VALUE, e.g.
  --config fast --set scale=0.5 --set tracking_stage.iterations=100 --set weights.depth=4"""


def _resolve(args: argparse.Namespace) -> Any:
    from mmface4d.reconstruct.config import resolve_config

    return resolve_config(args.config, args.overrides)


def _keys_help() -> str:
    from mmface4d.reconstruct.config import ReconstructConfig
    from mmface4d.settings import describe_keys, keys_help

    return keys_help(describe_keys(ReconstructConfig()))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    surface = ConfigSurface(
        "reconstruct", _resolve, lambda config: config.to_dict(), _keys_help, example="scale=0.25"
    )
    p = add_config_verb(
        verbs,
        "reconstruct",
        surface,
        lambda a, config: run(a, config),  # defined below
        required=("input", "output"),
        help="fit and track the face model through raw multi-view RGB-D recordings",
        description=_DESCRIPTION,
    )
    p.add_argument(
        "input", metavar="INPUT", nargs="?", help="a raw recording folder or a folder of them"
    )
    p.add_argument("-o", "--output", help="output folder (required)")
    p.add_argument(
        "--face-model",
        default="synth",
        help="face model spec: synth (default), bfm:DIR, ict:DIR or a model .npz",
    )
    p.add_argument(
        "--calibration",
        default=None,
        help="camera calibration JSON (mmface4d calibrate) for every recording; "
        "default: estimate each recording's from its face",
    )
    p.add_argument(
        "--landmarks",
        choices=("auto", "file", "detect"),
        default="auto",
        help="file: REC_<cam>.pkl; detect: MediaPipe (extra 'mediapipe'); auto "
        "(default): the files when every camera has one",
    )
    p.add_argument("--frames", type=int, default=None, help="at most this many frames each")
    p.add_argument(
        "--figures",
        action="store_true",
        help="also write REC_stages.png, the per-stage error maps (paper Fig. 3)",
    )
    add_batch_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def run(a: argparse.Namespace, config: Any) -> int:
        from mmface4d.reconstruct.jobs import reconstruct

        report = reconstruct(
            a.input,
            a.output,
            config,
            face_model=a.face_model,
            landmarks=a.landmarks,
            calibration=a.calibration,
            frames=a.frames,
            figures=a.figures,
            executor=a.executor,
            workers=a.workers,
            progress=not a.no_progress,
        )
        return report_batch(report)

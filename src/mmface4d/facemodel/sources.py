"""Face-model sources selected by a spec string.

Specs:
    ``synth``              the procedural default face (options: ``synth:vertices=12000``;
                           cached on disk, see :mod:`mmface4d.facemodel.synth`)
    ``bfm:DIR``            Basel Face Model 2009 + Guo et al. expressions, Deep3DFaceRecon
                           convention (see :mod:`mmface4d.facemodel.bfm`)
    ``ict:DIR``            ICT FaceKit (see :mod:`mmface4d.facemodel.ict`)
    ``PATH.npz``           a model saved by :meth:`FaceModel.save` (``facemodel export``)

The module imports no third-party library at import time (the CLI's help shows
:data:`SPEC_HELP`); the face model classes load when a spec is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmface4d.errors import InputError
from mmface4d.settings import parse_options

if TYPE_CHECKING:
    from mmface4d.facemodel.model import FaceModel

SPEC_HELP = "synth[:key=value,...], bfm:DIR, ict:DIR, or a saved model .npz path"


def load_face_model(spec: str | Path | FaceModel) -> FaceModel:
    """Load or build the face model a spec names (see the module doc); models pass through."""
    from mmface4d.facemodel.model import FaceModel  # torch: not needed for SPEC_HELP

    if isinstance(spec, FaceModel):
        return spec
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if kind == "synth":
        from mmface4d.facemodel.synth import SynthFaceConfig, cached_synth_face

        options = parse_options(rest, f"face model spec {text!r}")
        return cached_synth_face(SynthFaceConfig.from_options(options))
    if kind == "bfm" and sep:
        from mmface4d.facemodel.bfm import load_bfm

        return load_bfm(rest)
    if kind == "ict" and sep:
        from mmface4d.facemodel.ict import load_ict

        return load_ict(rest)
    if text.endswith(".npz"):
        return FaceModel.load(text)
    raise InputError(f"face model spec {text!r} not understood; expected {SPEC_HELP}")

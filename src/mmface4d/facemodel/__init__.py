"""Face models: the linear morphable-model abstraction and its sources (synth, BFM09, ICT)."""

from mmface4d.facemodel.api import export, fetch, info
from mmface4d.facemodel.arkit import ARKIT_52, canonical_arkit_name
from mmface4d.facemodel.lighting import sh_basis, sh_shade
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.sources import load_face_model

__all__ = [
    "ARKIT_52",
    "FaceModel",
    "canonical_arkit_name",
    "export",
    "fetch",
    "info",
    "load_face_model",
    "sh_basis",
    "sh_shade",
]

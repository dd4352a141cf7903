"""Reconstruction: the paper's three-stage fit of a face model to multi-view RGB-D frames,
sequence tracking, temporal smoothing, and resumable batch jobs over many recordings.

- :mod:`~mmface4d.reconstruct.config`: :class:`ReconstructConfig` (the paper's defaults).
- :mod:`~mmface4d.reconstruct.observation`: a frame at the working resolution.
- :mod:`~mmface4d.reconstruct.losses`: one function per loss term.
- :mod:`~mmface4d.reconstruct.fitting`: :class:`FaceFitter` and its stages.
- :mod:`~mmface4d.reconstruct.tracking`: :func:`reconstruct_capture` over a recording.
- :mod:`~mmface4d.reconstruct.jobs`: :func:`reconstruct` over folders (``mmface4d
  reconstruct``), local or on Ray.
- :mod:`~mmface4d.reconstruct.evaluation`, :mod:`~mmface4d.reconstruct.figures`: errors against
  the truth, Fig. 3.
"""

from mmface4d.reconstruct.config import ReconstructConfig, resolve_config
from mmface4d.reconstruct.fitting import FaceFitter, FaceParameters, FitDiverged
from mmface4d.reconstruct.jobs import reconstruct, reconstruct_recording
from mmface4d.reconstruct.tracking import Reconstruction, reconstruct_capture

__all__ = [
    "FaceFitter",
    "FaceParameters",
    "FitDiverged",
    "ReconstructConfig",
    "Reconstruction",
    "reconstruct",
    "reconstruct_capture",
    "reconstruct_recording",
    "resolve_config",
]

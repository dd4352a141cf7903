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

The names below load on first use (:func:`mmface4d._optional.lazy_exports`): the settings
(:mod:`~mmface4d.reconstruct.config`) import without torch, for ``mmface4d reconstruct --help``.
"""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.reconstruct.config": ("ReconstructConfig", "resolve_config"),
        "mmface4d.reconstruct.fitting": ("FaceFitter", "FaceParameters", "FitDiverged"),
        "mmface4d.reconstruct.jobs": ("reconstruct", "reconstruct_recording"),
        "mmface4d.reconstruct.tracking": ("Reconstruction", "reconstruct_capture"),
    },
)

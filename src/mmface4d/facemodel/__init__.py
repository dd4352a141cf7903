"""Face models: the linear morphable-model abstraction and its sources (synth, BFM09, ICT).

The names below load on first use (:func:`mmface4d._optional.lazy_exports`): importing a light
module of the subpackage, such as :mod:`~mmface4d.facemodel.sources` for its spec help, does not
import torch.
"""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.facemodel.api": ("export", "fetch", "info"),
        "mmface4d.facemodel.arkit": ("ARKIT_52", "canonical_arkit_name"),
        "mmface4d.facemodel.lighting": ("sh_basis", "sh_shade"),
        "mmface4d.facemodel.model": ("FaceModel",),
        "mmface4d.facemodel.sources": ("load_face_model",),
    },
)

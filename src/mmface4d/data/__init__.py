"""4D face datasets: the MMFace4D ``.nut`` codec, the packed store and its manifest, importers
(MMFace4D and FaceFormer layouts), identity splits and the PyTorch dataset.

The CLI verbs ``mmface4d data pack|info|split`` call :func:`pack`, :func:`info`, :func:`split`.
The names below load on first use (:func:`mmface4d._optional.lazy_exports`), so that a light
module of the subpackage (the split protocols, the ``.nut`` defaults) imports without the store,
the codec or torch; ``FaceSequenceDataset`` needs torch.
"""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.data.manifest": ("EMOTION_CODES", "SequenceRecord"),
        "mmface4d.data.nut": (
            "NutInfo",
            "axis_paths",
            "decode_nut",
            "decode_nut_axis",
            "encode_nut",
            "nut_info",
        ),
        "mmface4d.data.packing": ("PackResult", "StoreInfo", "info", "pack"),
        "mmface4d.data.splits": ("Splits", "load_splits", "split", "split_subjects"),
        "mmface4d.data.store": ("Store", "VerifyReport"),
        "mmface4d.data.dataset": ("FaceSequenceDataset",),
    },
)

"""4D face datasets: the MMFace4D ``.nut`` codec, the packed store and its manifest, importers
(MMFace4D and FaceFormer layouts), identity splits and the PyTorch dataset.

The CLI verbs ``mmface4d data pack|info|split`` call :func:`pack`, :func:`info`, :func:`split`.
``FaceSequenceDataset`` is imported on first use (it needs torch).
"""

from typing import Any

from mmface4d.data.manifest import EMOTION_CODES, SequenceRecord
from mmface4d.data.nut import (
    NutInfo,
    axis_paths,
    decode_nut,
    decode_nut_axis,
    encode_nut,
    nut_info,
)
from mmface4d.data.packing import PackResult, StoreInfo, info, pack
from mmface4d.data.splits import Splits, load_splits, split, split_subjects
from mmface4d.data.store import Store, VerifyReport

__all__ = [
    "EMOTION_CODES",
    "FaceSequenceDataset",
    "NutInfo",
    "PackResult",
    "SequenceRecord",
    "Splits",
    "Store",
    "StoreInfo",
    "VerifyReport",
    "axis_paths",
    "decode_nut",
    "decode_nut_axis",
    "encode_nut",
    "info",
    "load_splits",
    "nut_info",
    "pack",
    "split",
    "split_subjects",
]


def __getattr__(name: str) -> Any:
    if name == "FaceSequenceDataset":
        from mmface4d.data.dataset import FaceSequenceDataset

        return FaceSequenceDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

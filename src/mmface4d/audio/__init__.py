"""Audio: loading and resampling speech (PyAV), WAV output, and the project's one audio/mesh
synchronisation function (:mod:`mmface4d.audio.sync`), and the speech encoders
(:mod:`mmface4d.audio.encoders`: log-mel, HuBERT, wav2vec 2.0).

The encoders need torch and are imported on first use, so that loading or writing audio (store
packing workers, the corpus writer) does not pay for it."""

from typing import Any

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio, write_wav
from mmface4d.audio.sync import (
    AlignedStreams,
    align_lengths,
    frame_to_sample,
    frames_to_samples,
    resample_to_frames,
)

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "AlignedStreams",
    "AudioEncoder",
    "align_lengths",
    "build_encoder",
    "frame_to_sample",
    "frames_to_samples",
    "load_audio",
    "parse_encoder_spec",
    "resample_to_frames",
    "write_wav",
]


_ENCODER_NAMES = ("AudioEncoder", "build_encoder", "parse_encoder_spec")


def __getattr__(name: str) -> Any:
    if name in _ENCODER_NAMES:
        from mmface4d.audio import encoders

        return getattr(encoders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Audio: loading and resampling speech (PyAV), WAV output, and the project's one audio/mesh
synchronisation function (:mod:`mmface4d.audio.sync`)."""

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
    "align_lengths",
    "frame_to_sample",
    "frames_to_samples",
    "load_audio",
    "resample_to_frames",
    "write_wav",
]

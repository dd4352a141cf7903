"""Audio: loading and resampling speech (PyAV), WAV output, and the project's one audio/mesh
synchronisation function (:mod:`mmface4d.audio.sync`), and the speech encoders
(:mod:`mmface4d.audio.encoders`: log-mel, HuBERT, wav2vec 2.0).

The names below load on first use (:func:`mmface4d._optional.lazy_exports`): the encoders need
torch, so loading or writing audio (store packing workers, the corpus writer) does not pay for
it, and importing a light module of the subpackage (the training configuration's
:mod:`~mmface4d.audio.augment_config`) imports no numpy."""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.audio.io": ("DEFAULT_SAMPLE_RATE", "load_audio", "write_wav"),
        "mmface4d.audio.sync": (
            "AlignedStreams",
            "align_lengths",
            "frame_to_sample",
            "frames_to_samples",
            "resample_to_frames",
        ),
        "mmface4d.audio.encoders": ("AudioEncoder", "build_encoder", "parse_encoder_spec"),
    },
)

"""The synthetic world: speech with phoneme timing, sentences, faces that speak them.

The names below load on first use (:func:`mmface4d._optional.lazy_exports`), so that a light
module of the subpackage (:mod:`~mmface4d.synth.languages`, for the CLI's help) imports alone.
"""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.synth.languages": ("LANGUAGES",),
        "mmface4d.synth.phonemes": ("PHONEME_CLASSES", "phoneme_class", "phoneme_classes"),
        "mmface4d.synth.sentences": ("EMOTIONS", "Sentence", "load_sentence_file", "sentences"),
        "mmface4d.synth.speech": ("EspeakEngine", "Phoneme", "SpeechEngine", "Utterance", "Word"),
        "mmface4d.synth.voices": ("VoiceSpec", "list_variants", "list_voices", "sample_voice"),
    },
)

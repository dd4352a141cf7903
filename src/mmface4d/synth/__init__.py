"""The synthetic world: speech with phoneme timing, sentences, faces that speak them."""

from mmface4d.synth.languages import LANGUAGES
from mmface4d.synth.phonemes import PHONEME_CLASSES, phoneme_class, phoneme_classes
from mmface4d.synth.sentences import EMOTIONS, Sentence, load_sentence_file, sentences
from mmface4d.synth.speech import EspeakEngine, Phoneme, SpeechEngine, Utterance, Word
from mmface4d.synth.voices import VoiceSpec, list_variants, list_voices, sample_voice

__all__ = [
    "EMOTIONS",
    "LANGUAGES",
    "PHONEME_CLASSES",
    "EspeakEngine",
    "Phoneme",
    "Sentence",
    "SpeechEngine",
    "Utterance",
    "VoiceSpec",
    "Word",
    "list_variants",
    "list_voices",
    "load_sentence_file",
    "phoneme_class",
    "phoneme_classes",
    "sample_voice",
    "sentences",
]

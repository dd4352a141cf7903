import pytest

from mmface4d.synth.phonemes import (
    PHONEME_CLASSES,
    espeak_to_ipa,
    is_stop,
    phoneme_class,
    phoneme_classes,
    phoneme_segments,
    stress_of,
)

EXPECTED = {
    "bilabial": "p b m ˈm pʰ ph",
    "labiodental": "f v",
    "dental": "θ ð",
    "alveolar": "t d n s z l ɹ r ɾ ts dz tʰ tsʰ tsh n̩",
    "postalveolar": "ʃ ʒ tʃ dʒ ʂ ʐ tʂ tʂʰ ts.h ts. s. tɕ tɕʰ tɕh ɕ",
    "velar": "k ɡ g ŋ x χ kʰ kh",
    "glottal": "h ʔ",
    "approximant_round": "w ɥ",
    "approximant": "j",
    "vowel_open": "a ɑ ˈɑː æ ˈaɪ aʊ ˈɑu ai",
    "vowel_mid": "e ɛ ə ˈɜː ʌ ɚ əl ɐ o- ˈo- ˈei",
    "vowel_close": "i ɪ ˈiː y ᵻ i. i̪ ˈiɛ iou ˈyæ",
    "vowel_round": "o ɔ ˈɔː u ˈuː ʊ oʊ ˈuo ˈonɡ ɔɪ",
    "silence": "_ ",
}


@pytest.mark.parametrize(
    ("symbol", "cls"), [(s, c) for c, symbols in EXPECTED.items() for s in symbols.split()]
)
def test_phoneme_class_of_espeak_symbols(symbol, cls):
    assert phoneme_class(symbol) == cls


def test_silence_symbols_and_unknown():
    assert phoneme_class("") == phoneme_class("_") == "silence"
    assert phoneme_class("☃") == "unknown"
    assert set(EXPECTED) == set(PHONEME_CLASSES)


def test_diphthongs_expose_every_vowel():
    assert phoneme_classes("ˈaɪ") == ("vowel_open", "vowel_close")
    assert phoneme_classes("oʊ") == ("vowel_round", "vowel_round")
    assert phoneme_classes("ˈuai") == ("vowel_round", "vowel_open", "vowel_close")
    assert phoneme_segments("ˈtɕh") == ["tɕ"]  # aspiration is not a segment
    assert phoneme_segments("tʃ") == ["tʃ"]  # an affricate is one segment


def test_espeak_names_become_ipa():
    assert espeak_to_ipa("ˈts.h") == "ˈtʂʰ"
    assert espeak_to_ipa("s.") == "ʂ"
    assert espeak_to_ipa("ˈo-") == "ˈɤ"
    assert espeak_to_ipa("th") == "tʰ"
    assert espeak_to_ipa("ˈɑː") == "ˈɑː"


def test_stops_and_stress():
    assert all(is_stop(s) for s in ["p", "b", "tʰ", "tɕʰ", "ts.", "k", "dʒ"])
    assert not any(is_stop(s) for s in ["m", "f", "s", "_", "ˈa", "h"])
    assert (stress_of("ˈa"), stress_of("ˌa"), stress_of("a")) == (1, 2, 0)

"""Broad articulatory classes of IPA phonemes: what the mouth does, as viseme code needs it.

Symbols come as espeak-ng emits them for English and Mandarin: with stress marks (``ˈɑː``),
length marks, tone letters, diacritics, aspiration written as a trailing ``h`` after a stop
(Mandarin ``th``, ``tɕh``) and multi-vowel symbols (``aɪ``, ``iɛ``, ``aɪə``). These are stripped
and the symbol is split into segments; a symbol's class is its first segment's class (a
diphthong takes its first vowel's), and :func:`phoneme_classes` gives all of them.
"""

from __future__ import annotations

import unicodedata

#: The classes, in a fixed order (silence first).
PHONEME_CLASSES: tuple[str, ...] = (
    "silence", "bilabial", "labiodental", "dental", "alveolar", "postalveolar", "velar",
    "glottal", "approximant_round", "approximant",
    "vowel_open", "vowel_mid", "vowel_close", "vowel_round",
)  # fmt: skip

#: Symbol the speech engine uses for a pause.
SILENCE = "_"

_SEGMENTS: dict[str, str] = {}
for _cls, _symbols in {
    "bilabial": "p b m ɸ β ʙ",
    "labiodental": "f v ɱ ʋ",
    "dental": "θ ð",
    "alveolar": "t d n s z l ɹ r ɾ ɬ ɮ ɫ ɺ ts dz ʦ ʣ",
    "postalveolar": "ʃ ʒ tʃ dʒ ʧ ʤ ʂ ʐ tʂ dʐ tɕ dʑ ɕ ʑ ç ʝ ɻ ʈ ɖ ɳ ɭ ɲ",
    "velar": "k g ɡ ŋ x ɣ χ ʁ q ɢ c ɟ ɰ",
    "glottal": "h ɦ ʔ",
    "approximant_round": "w ɥ ʍ",
    "approximant": "j ʎ",
    "vowel_open": "a ɑ æ ɶ ɒ",
    "vowel_mid": "e ɛ ə ɜ ʌ ɘ ɤ ɐ ɚ ɝ",
    "vowel_close": "i ɪ y ɨ ɯ ᵻ ʏ ʅ ɿ",
    "vowel_round": "o ɔ u ʊ ɵ ø œ ɞ ʉ ɷ",
}.items():
    for _symbol in _symbols.split():
        _SEGMENTS[_symbol] = _cls

_STOPS = frozenset(
    "p b t d k g ɡ c ɟ q ɢ ʈ ɖ ʔ ts dz ʦ ʣ tʃ dʒ ʧ ʤ tʂ dʐ tɕ dʑ".split()
)  # plosives and affricates: the lips or tongue close before the release
_MARKS = frozenset("ˈˌːˑ˘͡‿|‖0123456789˥˦˧˨˩ʰʲʷˠˤ˞ⁿˡ'")

# espeak's Mandarin phoneme names that are not IPA (ASCII mnemonics, "h" for aspiration).
_ESPEAK_TO_IPA = {
    "ts.h": "tʂʰ", "ts.": "tʂ", "s.": "ʂ", "z.": "ʐ",  # retroflex initials zh ch sh r
    "i.": "ʅ", "i̪": "ɿ",  # apical vowels of zhi/chi/shi/ri and zi/ci/si
    "o-": "ɤ",  # pinyin e (可 kě, 这 zhè)
    "onɡ": "ʊŋ", "ioŋ": "iʊŋ",
    "ph": "pʰ", "th": "tʰ", "kh": "kʰ", "tsh": "tsʰ", "tɕh": "tɕʰ",
}  # fmt: skip


def espeak_to_ipa(symbol: str) -> str:
    """IPA for an espeak phoneme name: ``"ˈts.h"`` -> ``"ˈtʂʰ"``, ``"o-"`` -> ``"ɤ"``.

    Stress marks are kept; names that already are IPA come back unchanged.
    """
    body = symbol.lstrip("ˈˌ")
    return symbol[: len(symbol) - len(body)] + _ESPEAK_TO_IPA.get(body, body)


def _strip(symbol: str) -> str:
    """Remove stress, length, tone, tie bars and combining diacritics; NFD-decompose first."""
    out = []
    for char in unicodedata.normalize("NFD", symbol):
        if char in _MARKS or unicodedata.combining(char):
            continue
        out.append(char)
    return "".join(out)


def phoneme_segments(symbol: str) -> list[str]:
    """Split an espeak IPA symbol into its segments, marks removed.

    ``"ˈaɪ"`` -> ``["a", "ɪ"]``, ``"tɕh"`` -> ``["tɕ"]`` (aspiration dropped), ``"_"`` -> ``[]``.
    Characters that are not IPA segments stay as single-character segments (class unknown).
    """
    text = _strip(espeak_to_ipa(symbol))
    segments: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if len(pair) == 2 and pair in _SEGMENTS:
            segments.append(pair)
            i += 2
            continue
        char = text[i]
        i += 1
        if char in " _":
            continue
        if char == "h" and segments and segments[-1] in _STOPS:
            continue  # aspiration, e.g. Mandarin "th"
        segments.append(char)
    return segments


def phoneme_classes(symbol: str) -> tuple[str, ...]:
    """Classes of all segments of ``symbol``: ``"ˈaɪ"`` -> ``("vowel_open", "vowel_close")``.

    Returns ``("silence",)`` for a pause and ``"unknown"`` for unrecognised segments.
    """
    segments = phoneme_segments(symbol)
    if not segments:
        return ("silence",)
    return tuple(_SEGMENTS.get(s, "unknown") for s in segments)


def phoneme_class(symbol: str) -> str:
    """Broad articulatory class of an espeak IPA phoneme (one of :data:`PHONEME_CLASSES`).

    A multi-segment symbol (diphthong, triphthong) takes its first segment's class; an
    unrecognised symbol gives ``"unknown"``.

    Examples: ``"m"`` -> ``"bilabial"``, ``"ˈɔː"`` -> ``"vowel_round"``, ``"tʂh"`` ->
    ``"postalveolar"``, ``"aʊ"`` -> ``"vowel_open"``, ``"_"`` or ``""`` -> ``"silence"``.
    """
    return phoneme_classes(symbol)[0]


def is_stop(symbol: str) -> bool:
    """True when the symbol starts with a plosive or affricate (a closure precedes its release)."""
    segments = phoneme_segments(symbol)
    return bool(segments) and segments[0] in _STOPS


def stress_of(symbol: str) -> int:
    """Stress mark of an espeak symbol: 1 primary (``ˈ``), 2 secondary (``ˌ``), 0 none."""
    return 1 if "ˈ" in symbol else 2 if "ˌ" in symbol else 0

"""The languages the synthetic world speaks, and the text checks shared by speech and sentences."""

from __future__ import annotations

import unicodedata

from mmface4d.errors import InputError

#: Supported language codes: English and Mandarin Chinese.
LANGUAGES: tuple[str, ...] = ("en", "zh")
#: What a corpus speaks (``mmface4d synth corpus --lang``): one language, or both.
CORPUS_LANGS: tuple[str, ...] = (*LANGUAGES, "both")


def check_language(lang: str) -> str:
    """Return ``lang`` if supported, else raise :class:`InputError` listing the supported ones."""
    if lang not in LANGUAGES:
        raise InputError(f"unsupported language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    return lang


def is_han(char: str) -> bool:
    """True for a Chinese (Han) character such as ``"我"``; False for Latin letters and marks."""
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= code <= 0x4DBF  # Extension A
        or 0xF900 <= code <= 0xFAFF  # Compatibility Ideographs
        or 0x20000 <= code <= 0x2FA1F  # Extensions B.. and compatibility supplement
    )


def check_text(text: str, lang: str) -> str:
    """Validate text for speech in ``lang``; return it stripped of surrounding whitespace.

    Raises :class:`InputError` for empty text, text without any letter or digit (only emoji,
    symbols or punctuation: nothing a speaker would say) and Chinese characters in English text.
    """
    check_language(lang)
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InputError("text is empty")
    if "\0" in stripped:
        raise InputError(f"text {stripped!r} contains a NUL character")
    if not any(unicodedata.category(c)[0] in "LN" for c in stripped):
        raise InputError(f"text {stripped!r} has no letters or digits to speak")
    if lang == "en" and any(is_han(c) for c in stripped):
        raise InputError(f"text {stripped!r} contains Chinese characters: use lang='zh'")
    return stripped

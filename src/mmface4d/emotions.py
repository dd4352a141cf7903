"""MMFace4D's seven emotion categories and their sentence-prefix codes (the one definition)."""

from __future__ import annotations

from mmface4d.errors import InputError

#: Emotion name -> two-digit code (the first two characters of an MMFace4D sentence id).
EMOTIONS: dict[str, str] = {
    "neutral": "00",
    "happy": "21",
    "angry": "22",
    "sad": "23",
    "surprise": "24",
    "fear": "25",
    "disgust": "26",
}
#: Two-digit code -> emotion name.
EMOTION_NAMES: dict[str, str] = {code: name for name, code in EMOTIONS.items()}


def resolve_emotion(emotion: str) -> tuple[str, str]:
    """``"happy"`` or ``"21"`` -> ``("happy", "21")``; anything else raises :class:`InputError`."""
    key = str(emotion).strip().lower()
    if key in EMOTIONS:
        return key, EMOTIONS[key]
    if key in EMOTION_NAMES:
        return EMOTION_NAMES[key], key
    choices = ", ".join(f"{name} ({code})" for name, code in EMOTIONS.items())
    raise InputError(f"unknown emotion {emotion!r}: expected one of {choices}")

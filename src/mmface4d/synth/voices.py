"""Speaker voices: the :class:`VoiceSpec` the speech engine takes and a sampler of diverse voices.

The available voices are read at run time from the espeak-ng data folder shipped by
``espeakng-loader``: the language voices (``lang/**``: accents such as ``en-us``, ``en-gb``,
``en-gb-scotland``, ``cmn``) and the voice variants (``voices/!v/*``: speakers such as ``m3``,
``f2``, ``klatt``). Variants that sound like effects rather than people (robots with long echo,
whispers, strong tremolo or roughness, extreme pitch, the unstable ``fast`` test voice) are left
out of sampling; every variant can still be named explicitly.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d.errors import InputError
from mmface4d.synth.languages import check_language

#: espeak's language prefix for each supported language.
ESPEAK_LANGUAGE = {"en": "en", "zh": "cmn"}
GENDERS = ("male", "female")


@dataclass(frozen=True)
class VoiceSpec:
    """How a synthetic speaker sounds.

    Attributes:
        name: espeak language voice (accent), e.g. ``"en-us"``, ``"en-gb-scotland"``, ``"cmn"``.
        variant: espeak voice variant (speaker), e.g. ``"m3"``, ``"f2"``, ``"klatt"``; None for
            the language's default voice.
        pitch: base pitch 0..99 (50 is the voice's own).
        pitch_range: pitch range 0..99 (0 monotone, 50 the voice's own).
        rate: speaking rate in words per minute, 80..450 (175 normal).
        gender: ``"male"``, ``"female"`` or None (unknown); metadata, not sent to espeak.
    """

    name: str = "en-us"
    variant: str | None = None
    pitch: int = 50
    pitch_range: int = 50
    rate: int = 175
    gender: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(
                f"VoiceSpec.name must be a voice name such as 'en-us', got {self.name!r}"
            )
        object.__setattr__(self, "name", self.name.lower())
        for field, low, high in (("pitch", 0, 99), ("pitch_range", 0, 99), ("rate", 80, 450)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"VoiceSpec.{field} must be an integer, got {value!r}")
            if not low <= value <= high:
                raise InputError(f"VoiceSpec.{field}={value}: expected {low}..{high}")
        if self.gender is not None and self.gender not in GENDERS:
            raise InputError(f"VoiceSpec.gender={self.gender!r}: expected male, female or None")

    @property
    def lang(self) -> str:
        """The project language code this voice speaks (``"en"`` or ``"zh"``)."""
        for lang, prefix in ESPEAK_LANGUAGE.items():
            if self.name == prefix or self.name.startswith(prefix + "-"):
                return lang
        raise InputError(f"voice {self.name!r} speaks no supported language")


@dataclass(frozen=True)
class VoiceInfo:
    """One language voice in the espeak data folder.

    Attributes:
        name: its language code (the :attr:`VoiceSpec.name` to use), e.g. ``"en-gb"``.
        espeak_id: the name espeak selects it by (the voice file's name), e.g. ``"en"``.
        title: espeak's human-readable name, e.g. ``"English (Great Britain)"``.
    """

    name: str
    espeak_id: str
    title: str


@dataclass(frozen=True)
class VariantInfo:
    """One voice variant (a speaker) in the espeak data folder.

    Attributes:
        name: the variant's id (its file name), e.g. ``"m3"``.
        gender: ``"male"``/``"female"`` as the file states it or as its base pitch suggests
            (>= 140 Hz female, <= 110 Hz male), else None.
        natural: whether it sounds like a person (used for sampling).
    """

    name: str
    gender: str | None
    natural: bool


def _keywords(path: Path) -> dict[str, list[str]]:
    """First occurrence of each keyword line of an espeak voice file, split into words."""
    out: dict[str, list[str]] = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        words = line.split("//", 1)[0].split()
        if words and words[0].lower() not in out:
            out[words[0].lower()] = words[1:]
    return out


def _numbers(words: list[str] | None) -> list[float]:
    return [float(w) for w in (words or []) if re.fullmatch(r"-?\d+(\.\d+)?", w)]


@functools.cache
def _data_path() -> Path:
    from mmface4d.synth._espeak import data_path

    return data_path()


@functools.cache
def list_voices(lang: str) -> tuple[VoiceInfo, ...]:
    """The language voices (accents) for ``lang``, read from the espeak data folder.

    Voices for a particular script (a 4-letter subtag such as ``en-shaw`` or ``cmn-latn-pinyin``)
    are left out: the engine reads ordinary English and Chinese text.
    """
    prefix = ESPEAK_LANGUAGE[check_language(lang)]
    found = []
    for path in sorted((_data_path() / "lang").rglob("*")):
        if not path.is_file():
            continue
        keys = _keywords(path)
        code = (keys.get("language") or [""])[0].lower()
        if code != prefix and not code.startswith(prefix + "-"):
            continue
        if any(len(tag) == 4 for tag in code.split("-")[1:]):
            continue
        found.append(VoiceInfo(code, path.name, " ".join(keys.get("name", [path.name]))))
    if not found:
        raise InputError(f"no espeak voices for {lang!r} in {_data_path()}")
    return tuple(found)


def _variant_info(path: Path) -> VariantInfo:
    keys = _keywords(path)
    gender_words = [w.lower() for w in keys.get("gender", [])]
    pitch = _numbers(keys.get("pitch")) or [82.0, 118.0]  # espeak's default pitch (Hz)
    gender = next((g for g in GENDERS if g in gender_words), None)
    if gender is None:
        gender = "female" if pitch[0] >= 140 else "male" if pitch[0] <= 110 else None
    echo = _numbers(keys.get("echo")) + [0.0, 0.0]
    natural = (
        echo[1] <= 60  # long or loud echo: robots and halls
        and (_numbers(keys.get("voicing")) or [100.0])[0] >= 30  # whispers
        and (_numbers(keys.get("flutter")) or [0.0])[0] < 20  # strong tremolo
        and (_numbers(keys.get("roughness")) or [0.0])[0] < 10
        and 55 <= pitch[0] <= 220  # demonic, child-like
        and not any(k.startswith("fast_test") for k in keys)  # espeak's unstable speed test
    )
    return VariantInfo(path.name, gender, natural)


@functools.cache
def list_variants() -> tuple[VariantInfo, ...]:
    """All voice variants (speakers) in the espeak data folder, natural-sounding or not."""
    folder = _data_path() / "voices" / "!v"
    return tuple(_variant_info(p) for p in sorted(folder.iterdir()) if p.is_file())


def espeak_voice_name(voice: VoiceSpec) -> str:
    """The string ``espeak_SetVoiceByName`` takes for ``voice``, e.g. ``"en+m3"`` for en-gb/m3.

    Raises:
        InputError: the voice name or variant is not in the espeak data folder.
    """
    voices = {v.name: v for lang in ESPEAK_LANGUAGE for v in list_voices(lang)}
    info = voices.get(voice.name.lower())
    if info is None:
        raise InputError(f"unknown voice {voice.name!r}: expected one of {', '.join(voices)}")
    if voice.variant is None:
        return info.espeak_id
    if voice.variant not in {v.name for v in list_variants()}:
        raise InputError(f"unknown voice variant {voice.variant!r} (see list_variants())")
    return f"{info.espeak_id}+{voice.variant}"


def sample_voice(rng: np.random.Generator, lang: str, gender: str | None = None) -> VoiceSpec:
    """Draw a random, natural-sounding voice for ``lang``.

    The accent is uniform over the language's voices; the gender (when not given) is male or
    female with equal chance; the speaker is uniform over that gender's natural-sounding
    variants; pitch, pitch range and rate are drawn around espeak's defaults: pitch
    ~ N(50, 12) in 20..80, range ~ N(50, 15) in 15..90, rate ~ N(140, 15) wpm in 110..175
    (espeak's nominal rate runs fast: 175 gives about 230 words per minute of English, so
    140 is an ordinary conversational pace).

    Args:
        rng: the random generator (reproducible from its seed).
        lang: ``"en"`` or ``"zh"``.
        gender: ``"male"``, ``"female"`` or None for either.

    Returns:
        A :class:`VoiceSpec` with the variant's gender.
    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    voices = list_voices(lang)
    if gender is not None and gender not in GENDERS:
        raise InputError(f"gender {gender!r}: expected male, female or None")
    voice = voices[int(rng.integers(len(voices)))]
    if gender is None:
        gender = GENDERS[int(rng.integers(len(GENDERS)))]
    variants = [v for v in list_variants() if v.natural and v.gender == gender]
    if not variants:
        raise InputError(f"no natural-sounding {gender} voice variants in {_data_path()}")
    variant = variants[int(rng.integers(len(variants)))]

    def draw(mean: float, std: float, low: int, high: int) -> int:
        return int(np.clip(round(rng.normal(mean, std)), low, high))

    return VoiceSpec(
        name=voice.name,
        variant=variant.name,
        pitch=draw(50, 12, 20, 80),
        pitch_range=draw(50, 15, 15, 90),
        rate=draw(140, 15, 110, 175),
        gender=variant.gender,
    )

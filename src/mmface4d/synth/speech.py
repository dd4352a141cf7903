"""Speech with phoneme timing: text -> 16 kHz mono audio + timed IPA phonemes and words.

The engine sits behind the :class:`SpeechEngine` protocol; :class:`EspeakEngine` drives
libespeak-ng (bundled by ``espeakng-loader``) through ctypes in synchronous mode with phoneme
events, in English and Mandarin. Its output is deterministic: the same text and
:class:`~mmface4d.synth.voices.VoiceSpec` give identical samples, in any process and call order.

Timing conventions of an :class:`Utterance`:

* The phonemes tile the audio: the first starts at 0, each ends where the next starts, the last
  ends at the audio's end. Pauses are phonemes with symbol ``"_"`` (class ``"silence"``).
* The short silent closure espeak puts before a word-initial stop (Mandarin ``p``, ``tʰ``, ``tɕ``)
  belongs to that stop (the lips or tongue are closed then), so it is not a pause.
* Like the MMFace4D recordings, the audio is trimmed to speech: leading and trailing silence
  quieter than ``trim_db`` below the loudest 5 ms are cut, keeping a margin of ``trim_margin``
  seconds (default 20 ms, so the onset of a first plosive is not clipped). All times refer to
  the trimmed audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mmface4d.errors import InputError
from mmface4d.synth import _espeak
from mmface4d.synth.languages import LANGUAGES, check_language, check_text, is_han
from mmface4d.synth.phonemes import SILENCE, espeak_to_ipa, is_stop, phoneme_class, stress_of
from mmface4d.synth.voices import VoiceSpec, espeak_voice_name, sample_voice

__all__ = [
    "EspeakEngine",
    "LANGUAGES",
    "Phoneme",
    "SpeechEngine",
    "Utterance",
    "VoiceSpec",
    "Word",
    "phoneme_class",
    "sample_voice",
]

DEFAULT_VOICES = {"en": VoiceSpec("en-us"), "zh": VoiceSpec("cmn")}
_LANGUAGE_SWITCH = re.compile(r"^\(.*\)$")  # espeak marks "(en)", "(cmn)" around foreign words
_CLOSURE_MAX = 0.08  # s: a pause this short before a stop is the stop's closure
_BORROW_MAX = 0.06  # s: most a zero-length phoneme takes from its predecessor


@dataclass(frozen=True)
class Phoneme:
    """One timed phoneme.

    Attributes:
        symbol: IPA with espeak's stress and length marks (``"ˈɑː"``, ``"tɕʰ"``, ``"ˈaɪ"``; espeak's
            ASCII names for Mandarin sounds converted, ``"ts.h"`` -> ``"tʂʰ"``); ``"_"`` for a
            pause. Tones are not marked (espeak renders them as pitch only).
        start: seconds from the start of the audio.
        end: seconds; the next phoneme's start, or the audio's end for the last one.
    """

    symbol: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.end - self.start

    @property
    def is_silence(self) -> bool:
        """True for a pause."""
        return self.symbol == SILENCE

    @property
    def phoneme_class(self) -> str:
        """Broad articulatory class (:func:`mmface4d.synth.phonemes.phoneme_class`)."""
        return phoneme_class(self.symbol)

    @property
    def stress(self) -> int:
        """1 primary stress, 2 secondary, 0 none."""
        return stress_of(self.symbol)


@dataclass(frozen=True)
class Word:
    """One timed word (a character for Chinese, which espeak speaks syllable by syllable).

    Attributes:
        text: the word as written in the input text.
        start: seconds.
        end: seconds: its last phoneme's end, at most the next word's start.
    """

    text: str
    start: float
    end: float


@dataclass
class Utterance:
    """Synthesised speech with its timing.

    Attributes:
        audio: (N,) float32 mono samples in [-1, 1].
        sample_rate: Hz (16000).
        phonemes: timed phonemes tiling [0, duration].
        words: timed words, in order, as espeak groups them (it may speak a short function
            word with its neighbour, "in the", or a Chinese word as one, "苹果").
        text: the text spoken (stripped).
        lang: ``"en"`` or ``"zh"``.
        voice: the voice used.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: list[Phoneme]
    words: list[Word]
    text: str
    lang: str
    voice: VoiceSpec
    meta: dict[str, object] = field(default_factory=dict)
    """Engine details (engine name and version, native rate, trimmed seconds)."""

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.audio) / self.sample_rate


class SpeechEngine(Protocol):
    """Anything that turns text into an :class:`Utterance`."""

    def synthesize(self, text: str, lang: str, voice: VoiceSpec | None = None) -> Utterance:
        """Speak ``text`` in ``lang`` (``"en"``/``"zh"``) with ``voice`` (None: a default)."""
        ...


def _phonemes_from_events(events: list[_espeak.RawEvent], total: float) -> list[Phoneme]:
    """Timed phonemes tiling [0, total] from espeak's phoneme events (native-rate seconds).

    Pauses (events with an empty name) become ``"_"``; language-switch markers are dropped;
    a phoneme espeak reports with zero length (a final dark l merged into its vowel) takes up to
    60 ms from its predecessor; a pause shorter than 80 ms before a stop joins the stop (its
    closure); consecutive pauses merge and zero-length ones go.
    """
    marks = [
        (SILENCE if not e.phoneme.strip() else espeak_to_ipa(e.phoneme), e.time)
        for e in events
        if e.kind == _espeak.EVENT_PHONEME and not _LANGUAGE_SWITCH.match(e.phoneme)
    ]
    if not marks or marks[0][1] > 0:
        marks.insert(0, (SILENCE, 0.0))
    times = [min(max(t, 0.0), total) for _, t in marks] + [total]
    spans = [[s, times[i], max(times[i + 1], times[i])] for i, (s, _) in enumerate(marks)]
    for prev, span in zip(spans, spans[1:], strict=False):
        if span[2] <= span[1] and span[0] != SILENCE and prev[2] > prev[1]:
            prev[2] -= min(0.5 * (prev[2] - prev[1]), _BORROW_MAX)
            span[1] = prev[2]
    out: list[Phoneme] = []
    for symbol, start, end in spans:
        ph = Phoneme(symbol, start, end)
        if ph.duration <= 0 and ph.is_silence:
            continue  # word-boundary markers
        if out and out[-1].is_silence and ph.is_silence:
            out[-1] = Phoneme(SILENCE, out[-1].start, ph.end)
            continue
        if (
            len(out) > 1
            and out[-1].is_silence
            and out[-1].duration < _CLOSURE_MAX
            and is_stop(symbol)
        ):
            ph = Phoneme(symbol, out.pop().start, ph.end)
        out.append(ph)
    return out


def _speech_bounds(audio: np.ndarray, rate: int, top_db: float, margin: float) -> tuple[int, int]:
    """Sample range [i0, i1) holding the speech: 5 ms windows within top_db of the loudest."""
    window = max(1, int(0.005 * rate))
    if len(audio) <= window:
        return 0, len(audio)
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    power = (energy[window:] - energy[:-window]) / window  # power of the window starting at i
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    pad = int(round(margin * rate))
    return max(0, int(loud[0]) - pad), min(len(audio), int(loud[-1]) + window + pad)


def _shift(phonemes: list[Phoneme], t0: float, total: float) -> list[Phoneme]:
    """Move to a trimmed timeline starting at t0 and lasting total seconds; keep the tiling."""
    out: list[Phoneme] = []
    for ph in phonemes:
        start = min(max(ph.start - t0, 0.0), total)
        end = min(max(ph.end - t0, 0.0), total)
        if end <= start:
            continue
        if out and out[-1].is_silence and ph.is_silence:
            out[-1] = Phoneme(SILENCE, out[-1].start, end)
        else:
            out.append(Phoneme(ph.symbol, start, end))
    if not out:
        return [Phoneme(SILENCE, 0.0, total)]
    out[0] = Phoneme(out[0].symbol, 0.0, out[0].end)
    out[-1] = Phoneme(out[-1].symbol, out[-1].start, total)
    return out


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the words: letter/digit runs (with inner apostrophes),
    each Chinese character on its own."""
    spans: list[tuple[int, int]] = []
    start = None
    for k, char in enumerate(text + " "):
        inner = char in "'’" and start is not None and text[k + 1 : k + 2].isalnum()
        if (char.isalnum() or inner) and not is_han(char):
            start = k if start is None else start
            continue
        if start is not None:
            spans.append((start, k))
            start = None
        if is_han(char):
            spans.append((k, k + 1))
    return spans


def _words(
    events: list[_espeak.RawEvent], text: str, phonemes: list[Phoneme], t0: float, total: float
) -> list[Word]:
    """Timed words from espeak's word events, matched to the words of the text.

    espeak's positions are approximate (several events inside a number, a length of 0 next to a
    quote, an occasional offset after accented letters), so each event names the text word that
    holds its position, or the next one; events falling in the same word merge; text words
    without an event of their own (espeak speaks 苹果 or "in the" as one) join the word before.
    """
    spans = _word_spans(text)
    starts: list[tuple[int, float]] = []  # (index of the first text word, start time)
    for e in events:
        if e.kind != _espeak.EVENT_WORD:
            continue
        index = e.text_position - 1
        k = next((k for k, span in enumerate(spans) if span[1] > index), None)
        if k is None or (starts and k <= starts[-1][0]):
            continue  # past the last word, or inside the word already started
        starts.append((k, min(max(e.time - t0, 0.0), total)))
    words = []
    for i, (k, start) in enumerate(starts):
        last = starts[i + 1][0] - 1 if i + 1 < len(starts) else len(spans) - 1
        limit = max(starts[i + 1][1], start) if i + 1 < len(starts) else total
        spoken = [p.end for p in phonemes if start <= p.start < limit and not p.is_silence]
        end = min(max(spoken, default=limit), limit)
        words.append(Word(text[spans[k][0] : spans[last][1]], start, end))
    return words


class EspeakEngine:
    """Speech from libespeak-ng: English and Mandarin, many voices, phoneme timing from the engine.

    Thread-safe (the library is process-global: calls are serialised by a lock) and usable in
    worker processes (each loads its own copy). About 100-300x faster than real time.

    Args:
        sample_rate: output rate in Hz; espeak's native 22050 Hz audio is resampled.
        trim_db: trim leading/trailing audio quieter than this many dB below the loudest 5 ms.
        trim_margin: seconds of silence kept before and after the speech when trimming.
    """

    name = "espeak-ng"

    def __init__(self, sample_rate: int = 16000, trim_db: float = 40.0, trim_margin: float = 0.02):
        if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 48000:
            raise InputError(f"sample_rate={sample_rate!r}: expected an integer 8000..48000")
        if not 10.0 <= trim_db <= 90.0:
            raise InputError(f"trim_db={trim_db}: expected 10..90")
        if not 0.0 <= trim_margin <= 1.0:
            raise InputError(f"trim_margin={trim_margin}: expected 0..1 seconds")
        self.sample_rate = sample_rate
        self.trim_db = float(trim_db)
        self.trim_margin = float(trim_margin)

    def synthesize(self, text: str, lang: str, voice: VoiceSpec | None = None) -> Utterance:
        """Speak ``text`` and time its phonemes.

        Args:
            text: what to say; English text for ``"en"``, Chinese characters for ``"zh"``.
            lang: ``"en"`` or ``"zh"``.
            voice: the voice; None for the language's default (``en-us`` / ``cmn``).

        Returns:
            The :class:`Utterance`: audio (N,) float32 at ``sample_rate``, phonemes, words.

        Raises:
            InputError: unsupported language, empty or unspeakable text, a voice of another
                language or unknown to espeak.
        """
        check_language(lang)
        text = check_text(text, lang)
        voice = DEFAULT_VOICES[lang] if voice is None else voice
        if not isinstance(voice, VoiceSpec):
            raise InputError(f"voice must be a VoiceSpec, got {type(voice).__name__}")
        if voice.lang != lang:
            raise InputError(f"voice {voice.name!r} speaks {voice.lang!r}, not {lang!r}")
        raw = _espeak.synthesize_raw(
            text, espeak_voice_name(voice), voice.rate, voice.pitch, voice.pitch_range
        )
        native_total = len(raw.samples) / raw.sample_rate
        phonemes = _phonemes_from_events(raw.events, native_total)
        if all(p.is_silence for p in phonemes) or not raw.samples.any():
            raise InputError(f"text {text!r} gives no speech in {lang!r} (nothing espeak can say)")
        audio = raw.samples.astype(np.float32) / 32768.0
        if raw.sample_rate != self.sample_rate:
            from scipy.signal import resample_poly  # imported here: scipy.signal loads slowly

            g = np.gcd(self.sample_rate, raw.sample_rate)
            audio = resample_poly(audio, self.sample_rate // g, raw.sample_rate // g)
        audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
        i0, i1 = _speech_bounds(audio, self.sample_rate, self.trim_db, self.trim_margin)
        audio = audio[i0:i1].copy()
        t0, total = i0 / self.sample_rate, len(audio) / self.sample_rate
        phonemes = _shift(phonemes, t0, total)
        return Utterance(
            audio=audio,
            sample_rate=self.sample_rate,
            phonemes=phonemes,
            words=_words(raw.events, text, phonemes, t0, total),
            text=text,
            lang=lang,
            voice=voice,
            meta={
                "engine": self.name,
                "native_sample_rate": raw.sample_rate,
                "trimmed_start": t0,
                "trimmed_end": max(0.0, native_total - i1 / self.sample_rate),
            },
        )

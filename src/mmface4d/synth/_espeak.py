"""ctypes binding to libespeak-ng (from the ``espeakng-loader`` wheel), synchronous mode.

One function, :func:`synthesize_raw`, turns text into 16-bit samples at espeak's native rate and
the list of events espeak reports (phonemes as IPA, words, clause ends) with their audio
positions. Everything here is private; :mod:`mmface4d.synth.speech` builds the public API on it.

Two facts about the library shape this module:

* It is process-global state (one current voice, one set of parameters), so every call holds
  :data:`_LOCK`. A forked child gets a fresh lock (``os.register_at_fork``); each worker process
  loads and initialises its own copy.
* Its waveform generator keeps state in static variables across utterances (pitch phase, flutter
  index, frame bookkeeping) that ``espeak_Terminate`` does not reset: the same text synthesised
  twice in one process gives different samples and even different phoneme timings. To make output
  a pure function of (text, voice), the library is unloaded (``dlclose``) and loaded afresh before
  every utterance, which resets all of its statics. That costs about 1 ms. The copy loaded is a
  private one (a per-process temporary file), so another user of libespeak-ng in the same process
  (a phonemizer, say) neither shares nor disturbs its state. Forked workers load the parent's
  copy; the process that made it removes it at exit.
* It seeds its pitch jitter from the clock at initialisation (``espeak_ng_SetRandSeed`` and libc's
  ``rand``): both are reseeded with :data:`RANDOM_SEED` before every utterance (this resets the
  process's libc ``rand`` sequence too).

Linux and other POSIX systems only (``dlclose``).
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# speak_lib.h (API revision 12): enums and flags used here.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_EE_OK = 0

EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7


class _EventId(ctypes.Union):
    """``espeak_EVENT.id``: a number (word/sentence), a name (mark/play) or a phoneme string."""

    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` (speak_lib.h). On 64-bit Linux: 40 bytes, user_data at 24, id at 32."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text (1-based)
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # milliseconds into the generated audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class RawEvent:
    """One espeak event, decoded.

    Attributes:
        kind: ``EVENT_PHONEME``, ``EVENT_WORD``, ``EVENT_SENTENCE`` or ``EVENT_END``.
        time: seconds into the native-rate audio.
        text_position: 1-based character index into the text (word events: the word's start).
        length: word length in characters (word events), else 0.
        phoneme: the phoneme's IPA name for phoneme events ("" for pauses), else "".
    """

    kind: int
    time: float
    text_position: int
    length: int
    phoneme: str


@dataclass(frozen=True)
class RawSpeech:
    """Samples and events of one utterance at espeak's native rate.

    Attributes:
        samples: (N,) int16 mono samples.
        sample_rate: espeak's output rate in Hz (22050 for the bundled data).
        events: phoneme, word, sentence and clause-end events in time order.
    """

    samples: np.ndarray
    sample_rate: int
    events: list[RawEvent]


class EspeakError(RuntimeError):
    """libespeak-ng failed (missing data, an internal error): not a mistake in user input."""


_LOCK = threading.Lock()
RANDOM_SEED = 1
_LIBC = ctypes.CDLL(None)
_STATE: dict[str, object] = {}  # "lib": the loaded CDLL (kept to unload it), "copy": its path


def _reset_after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # the child keeps using the parent's copy while it exists


os.register_at_fork(after_in_child=_reset_after_fork)


def data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped by ``espeakng-loader``."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def _remove_copy(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # not in forked children, which inherit atexit handlers
        shutil.rmtree(folder, ignore_errors=True)


def _private_library() -> str:
    """Path of this process's private copy of libespeak-ng (made on first use)."""
    path = _STATE.get("copy")
    if isinstance(path, str) and os.path.exists(path):
        return path
    import espeakng_loader

    folder = tempfile.mkdtemp(prefix="mmface4d-espeak-")
    atexit.register(_remove_copy, folder, os.getpid())
    path = os.path.join(folder, "libespeak-ng.so")
    shutil.copyfile(espeakng_loader.get_library_path(), path)
    _STATE["copy"] = path
    return path


def _load_fresh() -> ctypes.CDLL:
    """Unload the previous copy (if any) and load and initialise a pristine one."""
    old = _STATE.pop("lib", None)
    if old is not None:
        old.espeak_Terminate()
        _ctypes.dlclose(old._handle)
    lib = ctypes.CDLL(_private_library())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path()).encode(), options)
    if rate <= 0:
        raise EspeakError(f"espeak_Initialize failed (data folder {data_path()})")
    _STATE["lib"] = lib
    _STATE["sample_rate"] = rate
    return lib


def _decode_name(raw: bytes) -> str:
    """Decode a phoneme name: 8 bytes, NUL-terminated unless full (then maybe cut mid-character)."""
    raw = raw.split(b"\0", 1)[0]
    for cut in range(4):  # a UTF-8 character has at most 4 bytes
        try:
            return raw[: len(raw) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise EspeakError(f"espeak sent an undecodable phoneme name {raw!r}")


class _Collector:
    """Receives espeak's callbacks: copies the samples and decodes the events."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[RawEvent] = []
        self.error: BaseException | None = None
        self.callback = _SynthCallback(self._on_synth)

    def _on_synth(self, wav, n_samples, events) -> int:  # type: ignore[no-untyped-def]
        try:
            if wav and n_samples > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
            i = 0
            while events[i].type != 0:
                self._decode(events[i])
                i += 1
        except BaseException as exc:  # re-raised by synthesize_raw after espeak returns
            self.error = exc
            return 1  # abort synthesis
        return 0

    def _decode(self, event: _Event) -> None:
        kind = event.type
        if kind not in (EVENT_PHONEME, EVENT_WORD, EVENT_SENTENCE, EVENT_END):
            return
        phoneme = ""
        if kind == EVENT_PHONEME:
            phoneme = _decode_name(bytes(event.id.string))
        self.events.append(
            RawEvent(
                kind=kind,
                time=event.audio_position / 1000.0,
                text_position=event.text_position,
                length=event.length if kind == EVENT_WORD else 0,
                phoneme=phoneme,
            )
        )


def synthesize_raw(text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> RawSpeech:
    """Synthesise ``text`` with a pristine library state.

    Args:
        text: UTF-8 text (plain, no SSML).
        voice: espeak voice name as ``espeak_SetVoiceByName`` takes it, e.g. ``"en-us+m3"``.
        rate: words per minute (80..450).
        pitch: base pitch 0..99 (50 normal).
        pitch_range: pitch range 0..99 (50 normal).

    Returns:
        The samples at the native rate and the decoded events.
    """
    encoded = text.encode("utf-8")
    collector = _Collector()
    with _LOCK:
        lib = _load_fresh()
        lib.espeak_SetSynthCallback(collector.callback)
        _STATE["collector"] = collector  # the library holds its callback until the next load
        if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
            raise EspeakError(f"espeak cannot load voice {voice!r}")
        for param, value in (
            (_PARAM_RATE, rate),
            (_PARAM_PITCH, pitch),
            (_PARAM_RANGE, pitch_range),
        ):
            if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")
        # espeak seeds its pitch jitter from the clock (its own generator and libc's rand):
        # fix both, after the voice is loaded, so the waveform is a function of the inputs
        lib.espeak_ng_SetRandSeed(ctypes.c_long(RANDOM_SEED))
        _LIBC.srand(RANDOM_SEED)
        status = lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        sample_rate = int(_STATE["sample_rate"])  # type: ignore[call-overload]
    if collector.error is not None:
        raise collector.error
    if status != _EE_OK:
        raise EspeakError(f"espeak_Synth returned {status} for {text!r}")
    samples = np.concatenate(collector.chunks) if collector.chunks else np.zeros(0, np.int16)
    return RawSpeech(samples=samples, sample_rate=sample_rate, events=collector.events)

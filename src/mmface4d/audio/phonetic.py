"""Phonetic posteriorgram features from a phoneme recogniser trained on real speech.

The ``phonetic`` encoder (``build_encoder("phonetic")``) runs the CTC phoneme recogniser that
ships inside the ``hama`` package (Apache-2.0; a 4.7 MB waveform model, 191 output classes: IPA
phonemes of many languages, a word boundary and the CTC blank; 20 ms per output frame; CPU only)
and turns its frame-level log-probabilities into features a face model can learn from:

- channels ``0 .. P-1``: the distribution over the non-blank classes, renormalised without the
  blank (CTC output is "peaky": most frames are blank, and the phone shows as a spike; without
  the blank the phone's identity is readable on every frame, also between spikes);
- channel ``P``: the blank probability (how sure the recogniser is that no new phone starts);
- channel ``P + 1``: the frame's level, ``dB re the utterance's loudest frame / 40`` clipped to
  [-1.5, 0] (mouths open wider when speech is louder; the recogniser is level-invariant).

Because the recogniser was trained on many real voices, these features carry what is said and
little of who says it: a face model trained on them with one synthetic voice family hears real
voices too (log-mel features do not carry over; see ``docs/LIPSYNC.md``).

Audio longer than ``chunk_s``, or than ``threads`` x 1.5 s, is recognised in chunks overlapping
by ``overlap_s`` (each frame is taken from the chunk where it lies farthest from an edge), on
``threads`` threads: the native engine releases the GIL, so two cores run two chunks at once,
and its cost grows faster than the audio's length, so parts are cheaper than the whole. On
three real clips of 6-12 s: 0.10-0.13 s per second of speech whole, 0.05-0.07 in two parts
with 0.5 s of overlap (93-97% of the frames keep their most likely class). The models are
trained on 1.6 s windows, recognised whole: less context than any part here.

Shapes: B batch, N samples at 16 kHz, T_feat = ceil(N / 320) feature frames of 20 ms.
"""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmface4d._optional import require
from mmface4d.audio.encoders import AudioEncoder
from mmface4d.audio.io import DEFAULT_SAMPLE_RATE
from mmface4d.errors import InputError

#: Audio samples per recogniser output frame (160-sample STFT hop, subsampled by 2).
HOP = 320
#: Shortest audio the recogniser is given (shorter input is zero-padded to it).
MIN_SAMPLES = 4 * HOP
#: Shortest part of a clip recognised on its own thread, seconds (shorter clips stay whole).
MIN_PART_S = 1.5
#: Level channel: dB below the utterance's loudest frame, divided by this, clipped at -1.5.
LEVEL_SCALE_DB = 40.0
#: Output classes of the recogniser of the pinned ``hama`` (IPA phonemes, word boundary, blank):
#: the encoder's width is known before the recogniser loads (checked when it does).
NUM_CLASSES = 191


@functools.cache
def _recogniser() -> Any:
    """The packaged hama phoneme recogniser (loaded once per process, on first use)."""
    hama = require("hama", "phonetic")
    model = hama.ASRModel()
    if len(model.decoder_tokens) != NUM_CLASSES:
        raise InputError(
            f"the hama phoneme recogniser has {len(model.decoder_tokens)} classes, this version "
            f"of mmface4d expects {NUM_CLASSES}: install the hama version it pins"
        )
    return model


def phoneme_tokens() -> list[str]:
    """The recogniser's output classes, in channel order (the blank last)."""
    return list(_recogniser().decoder_tokens)


def blank_index() -> int:
    """Index of the CTC blank among :func:`phoneme_tokens`."""
    return int(_recogniser().blank_id)


def recognise_log_probs(audio: np.ndarray) -> np.ndarray:
    """Frame-level log-probabilities of the recogniser for one clip.

    Args:
        audio: (N,) float32 mono samples at 16 kHz, in [-1, 1].

    Returns:
        (ceil(N / 320), 191) natural-log probabilities; frame ``j`` covers samples
        ``[320 j, 320 (j + 1))``.
    """
    model = _recogniser()
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    count = max(1, -(-samples.size // HOP))
    if samples.size < MIN_SAMPLES:
        samples = np.pad(samples, (0, MIN_SAMPLES - samples.size))
    feeds = {
        model._waveform_input_name: samples[None],
        model._waveform_lengths_input_name: np.array([samples.size], dtype=np.int64),
    }
    log_probs, _ = model.session.run(
        [model._log_probs_output_name, model._out_lengths_output_name], feeds
    )
    out = np.asarray(log_probs[0], dtype=np.float32)
    if out.shape[0] < count:  # the engine rounds down on a partial last hop
        out = np.concatenate([out, np.repeat(out[-1:], count - out.shape[0], axis=0)])
    return out[:count]


def _chunks(count: int, chunk: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, keep_from, keep_to) feature-frame ranges covering ``count`` frames."""
    if count <= chunk:
        return [(0, count, 0, count)]
    step = chunk - overlap
    starts = list(range(0, count - chunk, step)) + [count - chunk]
    spans = []
    for i, start in enumerate(starts):
        keep_from = 0 if i == 0 else (start + starts[i - 1] + chunk) // 2
        keep_to = count if i == len(starts) - 1 else (starts[i + 1] + start + chunk) // 2
        spans.append((start, start + chunk, keep_from, keep_to))
    return spans


#: The last clip recognised: (key, log-probabilities). Animating a clip recognises it twice
#: (the encoder, then the lip-closure layer's alignment); the second time is free.
_LAST: list[tuple[tuple, np.ndarray]] = []


def clear_cache() -> None:
    """Forget the last clip recognised (timing the recogniser: the next call recomputes)."""
    _LAST.clear()


def chunked_log_probs(
    audio: np.ndarray, chunk_s: float = 20.0, overlap_s: float = 0.5, threads: int = 2
) -> np.ndarray:
    """:func:`recognise_log_probs` over long audio, in overlapping chunks on threads.

    Audio longer than ``threads`` x :data:`MIN_PART_S` is cut into at least ``threads`` chunks
    (so every core has one; chunks of at most ``chunk_s``); shorter audio is recognised whole.
    The result for the last clip is kept (read-only) and given again for the same samples.
    """
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    key = (
        samples.size,
        hashlib.blake2b(samples.tobytes(), digest_size=16).digest(),
        chunk_s,
        overlap_s,
        threads,
    )
    last = _LAST[:1]  # one read: another thread (a server's other stream) may replace it
    if last and last[0][0] == key:
        return last[0][1]
    out = _chunked_log_probs(samples, chunk_s, overlap_s, threads)
    out.flags.writeable = False
    _LAST[:] = [(key, out)]
    return out


def _chunked_log_probs(
    samples: np.ndarray, chunk_s: float, overlap_s: float, threads: int
) -> np.ndarray:
    count = max(1, -(-samples.size // HOP))
    frames_per_s = DEFAULT_SAMPLE_RATE / HOP
    overlap = int(overlap_s * frames_per_s)
    chunk = int(chunk_s * frames_per_s)
    parts = min(max(1, threads), int(count / (MIN_PART_S * frames_per_s)))
    if parts > 1:
        chunk = min(chunk, -(-count // parts) + overlap)
    spans = _chunks(count, chunk, overlap)
    if len(spans) == 1:
        return recognise_log_probs(samples)

    def run(span: tuple[int, int, int, int]) -> np.ndarray:
        start, stop, keep_from, keep_to = span
        out = recognise_log_probs(samples[start * HOP : stop * HOP])
        return out[keep_from - start : keep_to - start]

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return np.concatenate(list(pool.map(run, spans)))


def hop_levels_db(audio: np.ndarray, count: int) -> np.ndarray:
    """(count,) float64 dB (re full scale) of each 20 ms frame's RMS; the audio is zero-padded
    (or cut) to ``count`` frames, and silence floors at -120 dB."""
    samples = np.asarray(audio, dtype=np.float64)
    padded = np.pad(samples, (0, max(0, count * HOP - samples.size)))[: count * HOP]
    rms = np.sqrt(np.mean(padded.reshape(count, HOP) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def level_channel(levels_db: np.ndarray, reference_db: float) -> np.ndarray:
    """Level channel from :func:`hop_levels_db`: dB re ``reference_db`` / 40, in [-1.5, 0]."""
    return np.clip((levels_db - reference_db) / LEVEL_SCALE_DB, -1.5, 0.0).astype(np.float32)


def frame_levels(audio: np.ndarray, count: int) -> np.ndarray:
    """Level channel: (count,) dB of each 20 ms frame re the loudest, / 40, in [-1.5, 0]."""
    level = hop_levels_db(audio, count)
    return level_channel(level, float(level.max()))


def posteriorgram(log_probs: np.ndarray, blank: int) -> np.ndarray:
    """Features from log-probabilities: renormalised non-blank distribution + blank probability.

    Args:
        log_probs: (T, K) natural-log probabilities.
        blank: index of the blank class.

    Returns:
        (T, K) float32: columns other than ``blank`` (in order) sum to one per row; the last
        column is the blank probability.
    """
    others = np.delete(log_probs, blank, axis=1).astype(np.float64)
    others = np.exp(others - others.max(axis=1, keepdims=True))
    others /= others.sum(axis=1, keepdims=True)
    blank_p = np.exp(log_probs[:, blank : blank + 1].astype(np.float64))
    return np.concatenate([others, blank_p], axis=1).astype(np.float32)


class PhoneticEncoder(AudioEncoder):
    """Phonetic posteriorgram + level features (see the module doc), 50 Hz, frozen.

    Args:
        level: append the level channel.
        chunk_s, overlap_s: chunking of long audio, seconds.
        threads: chunks recognised at once.
    """

    def __init__(
        self, level: bool = True, chunk_s: float = 20.0, overlap_s: float = 0.5, threads: int = 2
    ):
        if not (chunk_s > 2 * overlap_s > 0):
            raise InputError(
                f"phonetic: need chunk_s > 2 * overlap_s > 0, got {chunk_s}, {overlap_s}"
            )
        # the recogniser loads when audio is first encoded: a model loads without it
        super().__init__(hop_length=HOP, dim=NUM_CLASSES + int(level))
        self.level, self.chunk_s, self.overlap_s = level, chunk_s, overlap_s
        self.threads = threads
        self.register_buffer("_device", torch.zeros(0), persistent=False)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(N,) samples -> (ceil(N / 320), C) float32 features."""
        log_probs = chunked_log_probs(audio, self.chunk_s, self.overlap_s, self.threads)
        features = posteriorgram(log_probs, blank_index())
        if self.level:
            features = np.concatenate([features, frame_levels(audio, len(features))[:, None]], 1)
        return features

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        clips = audio.detach().to("cpu", torch.float32).numpy()
        if len(clips) > 1 and self.threads > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                features = list(pool.map(self.features, clips))
        else:
            features = [self.features(clip) for clip in clips]
        return torch.from_numpy(np.stack(features)).to(audio.device, audio.dtype)


#: Recogniser phones with a full lip closure (bilabial stops and nasals, plain, aspirated,
#: tense, implosive, trilled); the recogniser writes them as these IPA tokens.
BILABIAL_PHONES = frozenset({"p", "b", "m", "pʰ", "p͈", "ɓ", "ʙ"})
#: Probability of a bilabial (summed over :data:`BILABIAL_PHONES`, blank included in the
#: normalisation) above which :func:`bilabial_peaks` reports one: on the synthetic corpus's
#: training voices it finds 90% of the true bilabials, and 3% of 100 ms windows away from any
#: bilabial hold a false one (0.3: 81% and 1.3%; docs/LIPSYNC.md).
BILABIAL_THRESHOLD = 0.1
#: Least time between two bilabial peaks, seconds.
BILABIAL_SPACING_S = 0.06
#: Farthest a recognised phone's span reaches from its spike, seconds.
MAX_REACH_S = 0.15


@dataclass(frozen=True)
class Phone:
    """One recognised phone and its span, seconds."""

    label: str
    start: float
    end: float


def align_phones(audio: np.ndarray, threads: int = 2) -> list[Phone]:
    """Phones of 16 kHz speech with approximate spans, from the recogniser's greedy CTC path.

    A CTC recogniser marks each phone with a spike of one or two frames (often at its acoustic
    landmark: the release of a stop, the middle of a vowel). A phone's span here runs from
    half-way since the previous spike to half-way to the next one (the first from the clip's
    start, the last to the clip's end), so the closure before a
    stop's release falls inside it; no span reaches further than :data:`MAX_REACH_S` from its
    spike (pauses stay outside phones). Word boundaries are dropped.

    Args:
        audio: (N,) float samples at 16 kHz.
        threads: recognition threads for long audio.

    Returns:
        The phones in time order.
    """
    log_probs = chunked_log_probs(audio, threads=threads)
    tokens, blank = phoneme_tokens(), blank_index()
    best = log_probs.argmax(axis=1)
    spikes: list[tuple[float, str]] = []
    previous = -1
    for frame, token in enumerate(best.tolist()):
        if token != previous and token != blank and tokens[token] != "<wb>":
            spikes.append(((frame + 0.5) * HOP / DEFAULT_SAMPLE_RATE, tokens[token]))
        previous = token
    phones = []
    for k, (centre, label) in enumerate(spikes):
        start = (spikes[k - 1][0] + centre) / 2 if k else 0.0
        end = (centre + spikes[k + 1][0]) / 2 if k + 1 < len(spikes) else np.inf
        start, end = max(start, centre - MAX_REACH_S), min(end, centre + MAX_REACH_S)
        phones.append(Phone(label, max(0.0, min(start, centre - 0.01)), max(end, centre + 0.01)))
    return phones


def bilabial_peaks(
    audio: np.ndarray, threshold: float = BILABIAL_THRESHOLD, threads: int = 2
) -> np.ndarray:
    """Times where the recogniser hears a p, b or m, also where it is not its first choice.

    The per-frame probability of the bilabials (summed over :data:`BILABIAL_PHONES`) peaks at
    each one; a peak is a frame above ``threshold`` that is the largest within
    :data:`BILABIAL_SPACING_S` either side. More sensitive than the bilabials of
    :func:`align_phones` (the greedy path keeps only the most likely class of a frame).

    Args:
        audio: (N,) float samples at 16 kHz.
        threshold: least summed probability of a peak, in (0, 1).
        threads: recognition threads for long audio.

    Returns:
        (K,) peak times, seconds (frame centres), ascending.
    """
    if not 0 < threshold < 1:
        raise InputError(f"threshold: expected 0 < threshold < 1, found {threshold}")
    frames = mass_peaks(bilabial_mass(chunked_log_probs(audio, threads=threads)), threshold)
    return (frames + 0.5) * HOP / DEFAULT_SAMPLE_RATE


#: Recogniser frames either side of a bilabial peak that it must top (:data:`BILABIAL_SPACING_S`).
PEAK_REACH = int(round(BILABIAL_SPACING_S * DEFAULT_SAMPLE_RATE / HOP))


def bilabial_mass(log_probs: np.ndarray) -> np.ndarray:
    """(T,) the recogniser's summed probability of the :data:`BILABIAL_PHONES` per frame."""
    tokens = phoneme_tokens()
    columns = [k for k, token in enumerate(tokens) if token in BILABIAL_PHONES]
    return np.exp(np.asarray(log_probs)[:, columns]).sum(axis=1)


def mass_peaks(mass: np.ndarray, threshold: float) -> np.ndarray:
    """Frames of :func:`bilabial_peaks`: above ``threshold`` and the largest within
    :data:`PEAK_REACH` frames either side (the first of a flat top); beyond either end of
    ``mass`` counts as no bilabial. A frame's verdict depends only on the frames within
    ``2 * PEAK_REACH`` of it (what lets a stream find them in a window)."""
    reach = PEAK_REACH
    padded = np.pad(mass, reach, constant_values=-1.0)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    frames = np.flatnonzero((mass >= threshold) & (mass >= local_max))
    if len(frames) > 1:  # a flat top gives equal neighbours: keep the first of each run
        frames = frames[np.r_[True, np.diff(frames) > reach]]
    return frames

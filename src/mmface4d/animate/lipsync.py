"""Does the mouth move with the speech? Speech/pause mouth-motion figures for any animation.

A talking face should open and close its mouth with the syllables and rest in the pauses. On
real speech there is no ground-truth mesh, so :func:`speech_pause_motion` measures this from
the prediction and the audio alone:

- **voice activity** per mesh frame: the RMS of the frame's speech (20 ms hops, the frame's
  span) above ``threshold_db`` below the loudest hop; gaps shorter than ``min_pause_s`` inside
  speech count as speech (stop closures, not pauses), and frames within ``guard_s`` of a
  speech/pause boundary are left out of both sets (the mouth may legitimately still be closing);
- **mouth opening** per frame: the mean distance between the three inner-lip landmark pairs of
  the iBUG 68 scheme (61-67, 62-66, 63-65, 0-based), metres;
- **mouth motion**: the absolute frame-to-frame change of the opening, metres per second.

The headline is ``motion_ratio``: mean mouth motion during speech / during pauses (large when
the mouth moves with the syllables and rests in pauses; about 1 when it ignores the speech).

Shapes: T frames, V vertices, N audio samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmface4d.animate.metrics import inner_lip_gap
from mmface4d.atomic import save_figure
from mmface4d.audio.sync import frame_to_sample, frames_to_samples
from mmface4d.errors import InputError

#: Inner-lip opening per frame, (T, V, 3) metres -> (T,) metres: the lip-sync metrics' inner-lip
#: gap (:func:`mmface4d.animate.metrics.inner_lip_gap`), under the name the figures use.
mouth_opening = inner_lip_gap


def voice_activity(
    audio: np.ndarray,
    sample_rate: int,
    fps: float,
    num_frames: int,
    threshold_db: float = 35.0,
    min_pause_s: float = 0.2,
) -> np.ndarray:
    """Speech (True) or pause (False) per mesh frame.

    Args:
        audio: (N,) mono speech.
        sample_rate: Hz.
        fps: mesh frame rate.
        num_frames: T.
        threshold_db: a frame is speech when its RMS is within this many dB of the loudest.
        min_pause_s: shorter silent gaps between speech frames count as speech.

    Returns:
        (T,) bool.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.size == 0:
        raise InputError(f"audio: expected non-empty (N,) samples, got shape {audio.shape}")
    level = frame_levels_db(audio, sample_rate, fps, np.arange(num_frames))
    return speech_frames(level, float(level.max()), fps, threshold_db, min_pause_s)


def frame_levels_db(
    audio: np.ndarray, sample_rate: int, fps: float, frames: np.ndarray, offset: int = 0
) -> np.ndarray:
    """(len(frames),) dB (re full scale) of each mesh frame's RMS; -200 dB past the audio.

    Args:
        audio: (N,) mono samples, the first of them sample ``offset`` of the speech.
        sample_rate, fps: the rates.
        frames: mesh frame indices (of the whole speech); each frame's span starts at
            ``frame_to_sample(t)`` and lasts ``frames_to_samples(1)`` samples.
        offset: index of ``audio[0]`` in the speech (a stream's window).
    """
    count = frames_to_samples(1, fps, sample_rate)
    rms = np.empty(len(frames))
    for k, t in enumerate(np.asarray(frames).tolist()):
        start = frame_to_sample(t, fps, sample_rate) - offset
        chunk = np.asarray(audio[start : start + count], dtype=np.float64)
        rms[k] = np.sqrt(np.mean(chunk**2)) if chunk.size else 0.0
    return 20 * np.log10(np.maximum(rms, 1e-10))


def speech_frames(
    level_db: np.ndarray,
    reference_db: float,
    fps: float,
    threshold_db: float = 35.0,
    min_pause_s: float = 0.2,
) -> np.ndarray:
    """(T,) bool speech per frame from :func:`frame_levels_db`: within ``threshold_db`` of
    ``reference_db`` (the loudest frame, for :func:`voice_activity`), with silent gaps shorter
    than ``min_pause_s`` strictly between speech frames counted as speech."""
    active = np.asarray(level_db) > reference_db - threshold_db
    if not active.any():
        return active
    gap = max(1, int(round(min_pause_s * fps)))
    first, last = np.flatnonzero(active)[[0, -1]]
    t = first
    while t <= last:  # fill short gaps strictly inside speech
        if active[t]:
            t += 1
            continue
        end = t
        while not active[end]:
            end += 1
        if end - t < gap:
            active[t:end] = True
        t = end
    return active
    gap = max(1, int(round(min_pause_s * fps)))
    first, last = np.flatnonzero(active)[[0, -1]]
    t = first
    while t <= last:  # fill short gaps strictly inside speech
        if active[t]:
            t += 1
            continue
        end = t
        while not active[end]:
            end += 1
        if end - t < gap:
            active[t:end] = True
        t = end
    return active


@dataclass(frozen=True)
class SpeechPauseMotion:
    """Mouth behaviour in speech and in pauses (see the module doc).

    Attributes:
        speech_frames, pause_frames: frames counted in each set (boundary guards excluded).
        speech_motion, pause_motion: mean |d opening / dt| in each set, metres per second.
        motion_ratio: speech_motion / pause_motion (inf when the mouth is perfectly still in
            pauses).
        speech_opening, pause_opening: mean mouth opening in each set, metres.
        opening_range: 95th minus 5th percentile of the opening over the clip, metres.
    """

    speech_frames: int
    pause_frames: int
    speech_motion: float
    pause_motion: float
    motion_ratio: float
    speech_opening: float
    pause_opening: float
    opening_range: float

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready values (an infinite ratio becomes None)."""
        values = asdict(self)
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in values.items()
        }


def speech_pause_motion(
    vertices: np.ndarray,
    landmarks: np.ndarray,
    audio: np.ndarray,
    sample_rate: int,
    fps: float,
    guard_s: float = 0.1,
    threshold_db: float = 35.0,
    min_pause_s: float = 0.2,
) -> SpeechPauseMotion:
    """Mouth motion during speech versus pauses of one animated clip.

    Args:
        vertices: (T, V, 3) the animation, metres.
        landmarks: (68,) iBUG landmark vertex indices of its face model.
        audio: (N,) the speech it was animated from.
        sample_rate: Hz of ``audio``.
        fps: frame rate of ``vertices``.
        guard_s: frames this close to a speech/pause boundary are left out of both sets.
        threshold_db, min_pause_s: see :func:`voice_activity`.

    Raises:
        InputError: the clip has no pause or no speech of at least one frame after the guards.
    """
    opening = mouth_opening(vertices, landmarks)
    T = len(opening)
    if T < 3:
        raise InputError(f"vertices: need at least 3 frames, got {T}")
    active = voice_activity(audio, sample_rate, fps, T, threshold_db, min_pause_s)
    motion = np.abs(np.gradient(opening)) * fps
    guard = int(round(guard_s * fps))
    boundary = np.zeros(T, dtype=bool)
    for t in np.flatnonzero(np.diff(active.astype(np.int8)) != 0):
        boundary[max(0, t - guard + 1) : t + guard + 1] = True
    speech, pause = active & ~boundary, ~active & ~boundary
    if not speech.any() or not pause.any():
        raise InputError(
            f"audio: {int(speech.sum())} speech and {int(pause.sum())} pause frames after the "
            f"{guard_s} s boundary guards; need some of each"
        )
    speech_motion, pause_motion = float(motion[speech].mean()), float(motion[pause].mean())
    return SpeechPauseMotion(
        speech_frames=int(speech.sum()),
        pause_frames=int(pause.sum()),
        speech_motion=speech_motion,
        pause_motion=pause_motion,
        motion_ratio=speech_motion / pause_motion if pause_motion > 0 else float("inf"),
        speech_opening=float(opening[speech].mean()),
        pause_opening=float(opening[pause].mean()),
        opening_range=float(np.percentile(opening, 95) - np.percentile(opening, 5)),
    )


def plot_speech_pause(
    path: str | Path,
    vertices: np.ndarray,
    landmarks: np.ndarray,
    audio: np.ndarray,
    sample_rate: int,
    fps: float,
    title: str = "",
) -> Path:
    """PNG: the waveform with pauses shaded, and the mouth opening (mm) over time.

    Args: as :func:`speech_pause_motion`; ``path`` the PNG to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opening = mouth_opening(vertices, landmarks) * 1000
    T = len(opening)
    active = voice_activity(audio, sample_rate, fps, T)
    times = (np.arange(T) + 0.5) / fps
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4), sharex=True)
    audio = np.asarray(audio)
    top.plot(np.arange(len(audio)) / sample_rate, audio, lw=0.3, color="0.3")
    top.set_ylabel("speech")
    bottom.plot(times, opening, color="tab:red")
    bottom.set_ylabel("mouth opening (mm)")
    bottom.set_xlabel("time (s)")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (~active).astype(np.int8), [0]])))
    for axis in (top, bottom):
        for first, stop in zip(edges[::2], edges[1::2], strict=True):  # runs of pause frames
            axis.axvspan(first / fps, stop / fps, color="tab:blue", alpha=0.12, lw=0)
    top.set_title(title or "mouth opening; pauses shaded")
    fig.tight_layout()
    return save_figure(fig, path)


#: How far each recognised phone opens the mouth, 0 (lips shut) to 1 (wide open): vowels by
#: height (open 1.0, open-mid 0.75, mid 0.55, close 0.35; diphthongs by their first part),
#: bilabials 0, labiodentals 0.1, other consonants 0.25. A coarse articulatory scale for checking
#: that an animation's mouth follows the phones, not a model of any speaker.
OPENNESS = {
    **dict.fromkeys(("a", "ɑ", "æ", "ɒ", "ɐ", "aɪ", "aʊ", "ä", "ã", "å", "ja", "wa"), 1.0),
    **dict.fromkeys(("ɛ", "ɔ", "ʌ", "ɜ", "œ", "ɔɪ", "ɝ", "eə", "jʌ", "wʌ", "we"), 0.75),
    **dict.fromkeys(("ə", "e", "o", "eɪ", "oʊ", "ɚ", "ø", "ɤ", "ɵ", "ɘ", "je", "jo", "ẽ", "õ"),
                    0.55),
    **dict.fromkeys(("i", "u", "ɪ", "ʊ", "y", "ɨ", "ɯ", "ʉ", "ʏ", "ɯi", "ɪə", "ju", "wi", "ĩ",
                     "ũ"), 0.35),
    **dict.fromkeys(("p", "b", "m", "pʰ", "p͈", "ɓ", "ʙ"), 0.0),
    **dict.fromkeys(("f", "v", "ɱ", "ʋ"), 0.1),
}  # fmt: skip
#: Openness of a phone not in :data:`OPENNESS` (other consonants).
CONSONANT_OPENNESS = 0.25


def openness_curve(
    phones: list[tuple[str, float, float]], fps: float, num_frames: int, smooth_s: float = 0.04
) -> np.ndarray:
    """(T,) phone-based mouth openness per frame: each phone's :data:`OPENNESS` over its span,
    0 outside phones (pauses), smoothed with a Gaussian of ``smooth_s`` (coarticulation).

    Args:
        phones: (label, start s, end s) in time order.
        fps: frame rate.
        num_frames: T.
    """
    from scipy.ndimage import gaussian_filter1d

    curve = np.zeros(num_frames)
    centres = (np.arange(num_frames) + 0.5) / fps
    for label, start, end in phones:
        inside = (centres >= start) & (centres < end)
        curve[inside] = OPENNESS.get(label, CONSONANT_OPENNESS)
    return gaussian_filter1d(curve, smooth_s * fps) if smooth_s > 0 else curve

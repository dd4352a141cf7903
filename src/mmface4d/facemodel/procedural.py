"""Procedural facial motion no speech regression learns: blinks, eye saccades, head motion.

Blinks and gaze shifts cannot be predicted from speech, so a model trained to regress faces
from speech averages them away (a never-blinking, staring face). These seeded generators make
them as ARKit-52 weight curves (T, 52) (frame t at t / fps) and, for the head, Euler angles;
the synthetic corpus performs its subjects with them and ``mmface4d animate`` adds them on top
of a model's output (:mod:`mmface4d.animate.liveliness`).

Facts they follow (see ``docs/LIPSYNC.md``):

- **Blinks**: a Poisson process with a 0.4 s refractory gap (the mean interval is
  ``60 / rate``); each blink closes in 60 ms, holds
  0-50 ms and reopens in 90-160 ms (150-270 ms in all, inside the 100-400 ms of spontaneous
  blinks), lids fully closed at the peak. Rates: about 17 per minute at rest and 26 while
  talking (Bentivoglio et al., Movement Disorders 1997, 150 subjects).
- **Saccades**: fixations of gamma-distributed length (mean ``fixation_s``), gaze targets
  within a few degrees of straight ahead (a speaker's gaze wanders over the listener's face);
  each shift takes ``21 ms + 2.2 ms per degree`` (the saccadic main sequence) with a smooth
  (minimum-jerk) profile. Degrees become ``eyeLook*`` weights at :data:`EYE_LOOK_FULL_DEG`
  degrees per unit weight.
- **Head motion**: slow drift plus small nods on rises of speech energy (``head_motion``).
"""

from __future__ import annotations

import numpy as np

from mmface4d.facemodel.arkit import ARKIT_52

_IDX = {name: i for i, name in enumerate(ARKIT_52)}
#: Eye rotation, degrees, that an ``eyeLook*`` weight of 1 stands for (ARKit states none; the
#: synthetic face model rotates its eyeballs 25 degrees sideways and 20 up or down).
EYE_LOOK_FULL_DEG = 25.0
#: Shortest time between two blink onsets, seconds.
REFRACTORY_S = 0.4
#: Blinks per minute while talking (Bentivoglio et al. 1997: mean 26 during conversation).
TALKING_BLINK_RATE = 26.0


def blink_weights(
    num_frames: int, fps: float, rate_per_minute: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """Random blinks: a Poisson process with a refractory gap, each ~0.15-0.27 s long.

    Args:
        num_frames: T.
        fps: frame rate.
        rate_per_minute: mean blinks per minute.
        rng: the random generator (seeded by the caller).

    Returns:
        (T, 52) weights (eyeBlink channels) and the blink onset times in seconds.
    """
    duration = num_frames / fps
    t = np.arange(num_frames) / fps
    onsets: list[float] = []
    clock = rng.uniform(0.2, 60.0 / max(rate_per_minute, 1e-3))
    while clock < duration:
        onsets.append(clock)
        clock += REFRACTORY_S + rng.exponential(max(60.0 / rate_per_minute - REFRACTORY_S, 0.05))
    closed = np.zeros(num_frames)
    for onset in onsets:
        close, hold, reopen = 0.06, rng.uniform(0.0, 0.05), rng.uniform(0.09, 0.16)
        u = t - onset
        shape = np.where(
            u < close,
            u / close,
            np.where(u < close + hold, 1.0, 1.0 - (u - close - hold) / reopen),
        )
        closed = np.maximum(closed, np.clip(np.where(u >= 0, shape, 0.0), 0.0, 1.0))
    weights = np.zeros((num_frames, len(ARKIT_52)))
    weights[:, _IDX["eyeBlinkLeft"]] = closed
    weights[:, _IDX["eyeBlinkRight"]] = closed
    return weights, onsets


def gaze_angles(
    num_frames: int,
    fps: float,
    rng: np.random.Generator,
    fixation_s: float = 0.7,
    yaw_deg: float = 6.0,
    pitch_deg: float = 3.0,
) -> np.ndarray:
    """Saccadic gaze: (T, 2) yaw (positive: the subject's left) and pitch (positive: up), degrees.

    Args:
        num_frames: T.
        fps: frame rate.
        rng: the random generator.
        fixation_s: mean fixation length, seconds (gamma-distributed, shape 2, at least 0.15 s).
        yaw_deg, pitch_deg: gaze targets are drawn uniformly within +- these, around ahead.
    """
    t = np.arange(num_frames) / fps
    gaze = np.zeros((num_frames, 2))
    current = np.zeros(2)
    clock = max(0.15, rng.gamma(2.0, fixation_s / 2))
    end = num_frames / fps
    while clock < end:
        target = rng.uniform(-1, 1, size=2) * (yaw_deg, pitch_deg)
        amplitude = float(np.hypot(*(target - current)))
        length = 0.021 + 0.0022 * amplitude
        u = np.clip((t - clock) / length, 0.0, 1.0)
        ramp = u**3 * (10 - 15 * u + 6 * u**2)  # minimum-jerk profile from 0 to 1
        after = t >= clock
        gaze[after] = current + ramp[after, None] * (target - current)
        current = target
        clock += length + max(0.15, rng.gamma(2.0, fixation_s / 2))
    return gaze


def gaze_weights(gaze_deg: np.ndarray) -> np.ndarray:
    """(T, 2) gaze yaw/pitch in degrees -> (T, 52) ``eyeLook*`` weights of both eyes.

    Looking to the subject's left is ``eyeLookOutLeft`` for the left eye and ``eyeLookInRight``
    for the right one (ARKit's per-eye in/out).
    """
    yaw, pitch = (np.asarray(gaze_deg, dtype=np.float64) / EYE_LOOK_FULL_DEG).T
    weights = np.zeros((len(yaw), len(ARKIT_52)))
    left, right = np.clip(yaw, 0, 1), np.clip(-yaw, 0, 1)
    weights[:, _IDX["eyeLookOutLeft"]] = left
    weights[:, _IDX["eyeLookInRight"]] = left
    weights[:, _IDX["eyeLookInLeft"]] = right
    weights[:, _IDX["eyeLookOutRight"]] = right
    for eye in ("Left", "Right"):
        weights[:, _IDX[f"eyeLookUp{eye}"]] = np.clip(pitch, 0, 1)
        weights[:, _IDX[f"eyeLookDown{eye}"]] = np.clip(-pitch, 0, 1)
    return weights


def head_motion(
    prosody_features: np.ndarray, fps: float, amplitude_deg: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Small head motion: smoothed noise plus nods on energy peaks.

    Args:
        prosody_features: (T, 2) per-frame [energy, pitch] in [0, 1]
            (:func:`mmface4d.audio.prosody.prosody`).
        fps: frame rate.
        amplitude_deg: largest rotation about each axis, degrees.
        rng: the random generator.

    Returns:
        rotation (T, 3) Euler angles in radians (pitch about x, yaw about y, roll about z) and
        translation (T, 3) in metres, both in the face model's frame.
    """
    from scipy.ndimage import gaussian_filter1d  # here: animate's blinks do not need scipy

    num_frames = len(prosody_features)
    sigma = 0.6 * fps  # slow drift
    noise = gaussian_filter1d(rng.normal(size=(num_frames + 1, 3)), sigma, axis=0)[:num_frames]
    noise /= max(np.abs(noise).max(), 1e-9)
    energy = prosody_features[:, 0]
    nods = gaussian_filter1d(np.clip(np.diff(energy, prepend=energy[0]), 0, None), 2.0)
    nods /= max(nods.max(), 1e-9)
    amp = np.deg2rad(amplitude_deg)
    rotation = np.stack(
        [0.5 * amp * noise[:, 0] + 0.4 * amp * nods, amp * noise[:, 1], 0.4 * amp * noise[:, 2]],
        axis=1,
    )
    translation = gaussian_filter1d(rng.normal(size=(num_frames, 3)), sigma, axis=0)
    translation *= 0.002 / max(np.abs(translation).max(), 1e-9)
    return rotation, translation

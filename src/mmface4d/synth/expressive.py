"""Speech-independent and paralinguistic motion: emotions, blinks, brows and head motion.

All functions return per-frame ARKit-52 weights (T, 52) or head poses; frame t is at t / fps.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mmface4d.emotions import resolve_emotion
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52

_IDX = {name: i for i, name in enumerate(ARKIT_52)}


def _both(name: str, w: float) -> dict[str, float]:
    return {f"{name}Left": w, f"{name}Right": w}


#: Expression overlay of each emotion at intensity 1 (ARKit weights).
EMOTION_OVERLAYS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {**_both("mouthSmile", 0.6), **_both("cheekSquint", 0.45), **_both("eyeSquint", 0.2)},
    "angry": {**_both("browDown", 0.75), **_both("noseSneer", 0.3), **_both("mouthPress", 0.3),
              **_both("eyeSquint", 0.3)},
    "sad": {"browInnerUp": 0.65, **_both("mouthFrown", 0.5), **_both("eyeBlink", 0.15),
            "mouthShrugLower": 0.25},
    "surprise": {"browInnerUp": 0.7, **_both("browOuterUp", 0.7), **_both("eyeWide", 0.7),
                 "jawOpen": 0.08},
    "fear": {"browInnerUp": 0.8, **_both("eyeWide", 0.5), **_both("mouthStretch", 0.4)},
    "disgust": {**_both("noseSneer", 0.7), **_both("mouthUpperUp", 0.45), **_both("browDown", 0.3),
                **_both("cheekSquint", 0.2)},
}  # fmt: skip

#: How an emotion scales articulation (angry speech is stronger, sad speech weaker).
EMOTION_ARTICULATION = {
    "neutral": 1.0, "happy": 1.03, "angry": 1.1, "sad": 0.9,
    "surprise": 1.05, "fear": 0.95, "disgust": 0.97,
}  # fmt: skip


def check_emotion(emotion: str) -> str:
    """The emotion's canonical name (a name or an MMFace4D code is accepted)."""
    return resolve_emotion(emotion)[0]


def emotion_weights(emotion: str, intensity: float, num_frames: int, fps: float) -> np.ndarray:
    """(T, 52) emotion overlay, easing in over the first 0.3 s and breathing slightly."""
    check_emotion(emotion)
    if not 0.0 <= intensity <= 1.0:
        raise InputError(f"emotion intensity must be in [0, 1], got {intensity}")
    vec = np.zeros(len(ARKIT_52))
    for name, w in EMOTION_OVERLAYS[emotion].items():
        vec[_IDX[name]] = w
    t = np.arange(num_frames) / fps
    envelope = intensity * np.clip(t / 0.3, 0.0, 1.0) * (1.0 + 0.06 * np.sin(2 * np.pi * 0.4 * t))
    return envelope[:, None] * vec[None, :]


def blink_weights(
    num_frames: int, fps: float, rate_per_minute: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """Random blinks: a Poisson process with a refractory gap, each ~0.1-0.3 s long.

    Returns:
        (T, 52) weights (eyeBlink channels) and the blink onset times in seconds.
    """
    duration = num_frames / fps
    t = np.arange(num_frames) / fps
    onsets: list[float] = []
    clock = rng.uniform(0.2, 60.0 / max(rate_per_minute, 1e-3))
    while clock < duration:
        onsets.append(clock)
        clock += 0.4 + rng.exponential(60.0 / rate_per_minute)
    closed = np.zeros(num_frames)
    for onset in onsets:
        close, hold, reopen = 0.06, rng.uniform(0.0, 0.05), rng.uniform(0.09, 0.16)
        u = t - onset
        shape = np.where(
            u < close, u / close,
            np.where(u < close + hold, 1.0, 1.0 - (u - close - hold) / reopen),
        )  # fmt: skip
        closed = np.maximum(closed, np.clip(np.where(u >= 0, shape, 0.0), 0.0, 1.0))
    weights = np.zeros((num_frames, len(ARKIT_52)))
    weights[:, _IDX["eyeBlinkLeft"]] = closed
    weights[:, _IDX["eyeBlinkRight"]] = closed
    return weights, onsets


def prosody(audio: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """(T, 2) per-frame [energy, pitch] features in [0, 1] from the waveform.

    Energy: smoothed RMS normalised by its 95th percentile. Pitch: autocorrelation peak in
    70-400 Hz, normalised within the utterance (0 where unvoiced).
    """
    hop = sample_rate / fps
    win = int(round(2 * hop))
    feats = np.zeros((num_frames, 2))
    for i in range(num_frames):
        seg = audio[int(i * hop) : int(i * hop) + win]
        if len(seg) < 16:
            continue
        feats[i, 0] = np.sqrt(np.mean(seg**2))
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, mode="full")[len(seg) - 1 :]
        lo, hi = int(sample_rate / 400), min(int(sample_rate / 70), len(ac) - 1)
        if hi > lo and ac[0] > 0:
            lag = lo + int(np.argmax(ac[lo:hi]))
            if ac[lag] / ac[0] > 0.4:
                feats[i, 1] = sample_rate / lag
    feats[:, 0] = gaussian_filter1d(feats[:, 0], 1.5)
    feats[:, 0] /= max(np.percentile(feats[:, 0], 95), 1e-9)
    voiced = feats[:, 1] > 0
    if voiced.sum() > 2:
        p = feats[voiced, 1]
        feats[voiced, 1] = (p - p.min()) / max(np.ptp(p), 1e-9)
    return np.clip(feats, 0.0, 1.0)


def brow_weights(prosody_features: np.ndarray, activity: float) -> np.ndarray:
    """(T, 52) brow raises that loosely follow energy and pitch accents."""
    energy, pitch = prosody_features[:, 0], prosody_features[:, 1]
    accent = gaussian_filter1d(np.clip(pitch - 0.55, 0, None) * energy, 3.0)
    weights = np.zeros((len(energy), len(ARKIT_52)))
    weights[:, _IDX["browInnerUp"]] = activity * 0.9 * accent
    weights[:, _IDX["browOuterUpLeft"]] = activity * 0.6 * accent
    weights[:, _IDX["browOuterUpRight"]] = activity * 0.6 * accent
    return weights


def head_motion(
    prosody_features: np.ndarray, fps: float, amplitude_deg: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Small head motion: smoothed noise plus nods on energy peaks.

    Returns:
        rotation (T, 3) Euler angles in radians (pitch about x, yaw about y, roll about z) and
        translation (T, 3) in metres, both in the face model's frame.
    """
    num_frames = len(prosody_features)
    sigma = 0.6 * fps  # slow drift
    noise = gaussian_filter1d(rng.normal(size=(num_frames + 1, 3)), sigma, axis=0)[:num_frames]
    noise /= max(np.abs(noise).max(), 1e-9)
    energy = prosody_features[:, 0]
    nods = gaussian_filter1d(np.clip(np.diff(energy, prepend=energy[0]), 0, None), 2.0)
    nods /= max(nods.max(), 1e-9)
    amp = np.deg2rad(amplitude_deg)
    rotation = np.stack([0.5 * amp * noise[:, 0] + 0.4 * amp * nods, amp * noise[:, 1],
                         0.4 * amp * noise[:, 2]], axis=1)  # fmt: skip
    translation = gaussian_filter1d(rng.normal(size=(num_frames, 3)), sigma, axis=0)
    translation *= 0.002 / max(np.abs(translation).max(), 1e-9)
    return rotation, translation

"""Paralinguistic motion of the synthetic speakers: emotions and prosody-driven brows.

All functions return per-frame ARKit-52 weights (T, 52); frame t is at t / fps. Blinks and head
motion come from :mod:`mmface4d.facemodel.procedural` (shared with ``mmface4d animate``), the
prosody features from :mod:`mmface4d.audio.prosody`; both are re-exported here.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mmface4d.audio.prosody import prosody
from mmface4d.emotions import resolve_emotion
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.procedural import blink_weights, head_motion

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


def brow_weights(prosody_features: np.ndarray, activity: float) -> np.ndarray:
    """(T, 52) brow raises that loosely follow energy and pitch accents."""
    energy, pitch = prosody_features[:, 0], prosody_features[:, 1]
    accent = gaussian_filter1d(np.clip(pitch - 0.55, 0, None) * energy, 3.0)
    weights = np.zeros((len(energy), len(ARKIT_52)))
    weights[:, _IDX["browInnerUp"]] = activity * 0.9 * accent
    weights[:, _IDX["browOuterUpLeft"]] = activity * 0.6 * accent
    weights[:, _IDX["browOuterUpRight"]] = activity * 0.6 * accent
    return weights


__all__ = [
    "blink_weights",
    "brow_weights",
    "check_emotion",
    "emotion_weights",
    "head_motion",
    "prosody",
]

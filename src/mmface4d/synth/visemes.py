"""From timed phonemes to ARKit-52 mouth weights: visemes and coarticulation.

Each phoneme's articulatory class (:func:`mmface4d.synth.speech.phoneme_class`) has a viseme: a
target vector of ARKit weights and a dominance. The trajectory is a dominance-weighted blend of
the targets (Cohen and Massaro's coarticulation model): every phoneme's dominance is a
negative exponential of the time from its centre, with a wider reach before the centre for lip
rounding (anticipatory rounding) and a narrow, strong reach for bilabials. Bilabial closures are
then enforced (``mouthClose`` = ``jawOpen`` while the lips must be shut), so the lips always close
for p, b and m whatever their neighbours do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52

_IDX = {name: i for i, name in enumerate(ARKIT_52)}

#: Channels that carry lip rounding (their dominance reaches further ahead: anticipation).
ROUNDING = ("mouthFunnel", "mouthPucker")
#: Channels scaled by a speaking style's jaw-versus-lip ratio.
JAW_CHANNELS = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight")
LIP_CHANNELS = (
    "mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthStretchRight", "mouthRollLower",
    "mouthRollUpper", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthSmileLeft",
    "mouthSmileRight", "mouthPressLeft", "mouthPressRight",
)  # fmt: skip


@dataclass(frozen=True)
class Viseme:
    """A phoneme class's mouth target and how strongly it resists its neighbours.

    Attributes:
        target: ARKit name -> weight at full articulation.
        dominance: peak dominance (relative strength against neighbours).
        reach: seconds over which the dominance decays to 1/e after the centre.
    """

    target: dict[str, float]
    dominance: float
    reach: float


def _both(name: str, w: float) -> dict[str, float]:
    return {f"{name}Left": w, f"{name}Right": w}


VISEMES: dict[str, Viseme] = {
    "silence": Viseme({}, 0.6, 0.09),
    "bilabial": Viseme({"jawOpen": 0.06, **_both("mouthPress", 0.25)}, 3.0, 0.045),
    "labiodental": Viseme(
        {"jawOpen": 0.08, "mouthRollLower": 0.7, **_both("mouthUpperUp", 0.2)}, 2.0, 0.05
    ),  # noqa: E501
    "dental": Viseme({"jawOpen": 0.13, "tongueOut": 0.3}, 1.5, 0.05),
    "alveolar": Viseme({"jawOpen": 0.11, **_both("mouthStretch", 0.15)}, 0.9, 0.05),
    "postalveolar": Viseme({"jawOpen": 0.1, "mouthFunnel": 0.55, "mouthPucker": 0.2}, 1.4, 0.06),
    "velar": Viseme({"jawOpen": 0.16}, 0.6, 0.05),
    "glottal": Viseme({"jawOpen": 0.16}, 0.3, 0.05),
    "approximant_round": Viseme(
        {"jawOpen": 0.05, "mouthPucker": 0.8, "mouthFunnel": 0.3}, 1.6, 0.07
    ),  # noqa: E501
    "approximant": Viseme({"jawOpen": 0.08, **_both("mouthStretch", 0.2)}, 0.8, 0.05),
    "vowel_open": Viseme({"jawOpen": 0.42, **_both("mouthLowerDown", 0.2)}, 1.0, 0.07),
    "vowel_mid": Viseme({"jawOpen": 0.27, **_both("mouthStretch", 0.12)}, 1.0, 0.07),
    "vowel_close": Viseme(
        {"jawOpen": 0.12, **_both("mouthStretch", 0.35), **_both("mouthSmile", 0.12)}, 1.0, 0.07
    ),  # noqa: E501
    "vowel_round": Viseme({"jawOpen": 0.24, "mouthFunnel": 0.6, "mouthPucker": 0.35}, 1.2, 0.07),
}


@dataclass(frozen=True)
class TimedClass:
    """One phoneme reduced to what the face needs: its class and its interval (seconds)."""

    cls: str
    start: float
    end: float


def viseme_vector(cls: str) -> np.ndarray:
    """(52,) ARKit target of a phoneme class."""
    if cls not in VISEMES:
        raise InputError(f"unknown phoneme class {cls!r}; expected one of {', '.join(VISEMES)}")
    vec = np.zeros(len(ARKIT_52), dtype=np.float64)
    for name, w in VISEMES[cls].target.items():
        vec[_IDX[name]] = w
    return vec


def coarticulate(
    phonemes: Sequence[TimedClass],
    num_frames: int,
    fps: float,
    anticipation: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend viseme targets over time.

    Args:
        phonemes: timed phoneme classes, in order.
        num_frames: T, the number of output frames (frame t covers time t / fps).
        fps: frame rate.
        anticipation: how much further rounding reaches before its centre than after.

    Returns:
        weights: (T, 52) ARKit mouth weights.
        closure: (T,) in [0, 1], how fully the lips must be shut (bilabial occlusion).
    """
    if fps <= 0 or num_frames < 1:
        raise InputError(f"coarticulate: need fps > 0 and num_frames >= 1, got {fps}, {num_frames}")
    t = np.arange(num_frames) / fps
    if not phonemes:
        return np.zeros((num_frames, len(ARKIT_52))), np.zeros(num_frames)
    targets = np.stack([viseme_vector(p.cls) for p in phonemes])  # (K, 52)
    centres = np.array([(p.start + p.end) / 2 for p in phonemes])
    alpha = np.array([VISEMES[p.cls].dominance for p in phonemes])
    reach = np.array([VISEMES[p.cls].reach for p in phonemes])
    # reach widens for long phonemes so a held vowel keeps its shape
    reach = np.maximum(reach, 0.35 * np.array([p.end - p.start for p in phonemes]))
    dt = t[None, :] - centres[:, None]  # (K, T)
    dominance = alpha[:, None] * np.exp(-np.abs(dt) / reach[:, None])
    rounding_reach = np.where(dt < 0, reach[:, None] * anticipation, reach[:, None])
    round_dom = alpha[:, None] * np.exp(-np.abs(dt) / rounding_reach)
    weights = (dominance.T @ targets) / np.maximum(dominance.sum(0), 1e-9)[:, None]
    rounding_idx = [_IDX[n] for n in ROUNDING]
    weights[:, rounding_idx] = (round_dom.T @ targets[:, rounding_idx]) / np.maximum(
        round_dom.sum(0), 1e-9
    )[:, None]
    closure = np.zeros(num_frames)
    for p in phonemes:
        if p.cls == "bilabial":
            # lips shut over the occlusion (the phoneme's interval), ramping at its edges
            half = max((p.end - p.start) / 2, 1.0 / fps)
            centre = (p.start + p.end) / 2
            closure = np.maximum(closure, np.clip(1.5 - np.abs(t - centre) / half, 0.0, 1.0))
    return weights, closure


def enforce_closure(weights: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Shut the lips where ``closure`` says so: mouthClose follows jawOpen there.

    Args:
        weights: (T, 52) ARKit weights (modified copy returned).
        closure: (T,) closure amount in [0, 1].
    """
    out = weights.copy()
    jaw, close = _IDX["jawOpen"], _IDX["mouthClose"]
    opening = (
        _IDX["mouthFunnel"],
        _IDX["mouthLowerDownLeft"],
        _IDX["mouthLowerDownRight"],
        _IDX["mouthUpperUpLeft"],
        _IDX["mouthUpperUpRight"],
    )
    out[:, close] = np.maximum(out[:, close], closure * out[:, jaw])
    out[:, opening] *= 1.0 - closure[:, None]
    return out

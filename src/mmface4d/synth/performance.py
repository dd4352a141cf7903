"""One synthetic performance: a subject speaking an utterance with an emotion.

Composes the speech-driven mouth (visemes and coarticulation, scaled by the subject's speaking
style), the emotion overlay, blinks, prosody-driven brows and head motion into per-frame ARKit
weights and a head pose; then into face-model vertices, in the model frame or in the MMFace4D
camera frame (OpenCV axes, metres, the face ~0.72 m in front of the centre camera; see
:mod:`mmface4d.geometry.frames`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mmface4d.facemodel.arkit import ARKIT_52, arkit_to_model_weights
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth import expressive
from mmface4d.synth.style import Subject
from mmface4d.synth.visemes import (
    JAW_CHANNELS,
    LIP_CHANNELS,
    TimedClass,
    coarticulate,
    enforce_closure,
)

_IDX = {name: i for i, name in enumerate(ARKIT_52)}
#: Pivot of head rotations in the model frame (about the upper neck), metres.
NECK_PIVOT = np.array([0.0, -0.07, -0.03])


@dataclass
class Performance:
    """Ground-truth motion of one synthetic recording.

    Attributes:
        fps: frame rate.
        arkit_weights: (T, 52) ARKit weights in [0, 1].
        head_rotation: (T, 3) Euler angles (x, y, z), radians, model frame.
        head_translation: (T, 3) metres, model frame.
        lip_closure: (T,) required lip closure from bilabials, in [0, 1].
        phonemes: the timed phoneme classes that drove the mouth.
        blink_onsets: seconds.
        emotion, intensity: the emotion overlay.
    """

    fps: float
    arkit_weights: np.ndarray
    head_rotation: np.ndarray
    head_translation: np.ndarray
    lip_closure: np.ndarray
    phonemes: list[TimedClass] = field(default_factory=list)
    blink_onsets: list[float] = field(default_factory=list)
    emotion: str = "neutral"
    intensity: float = 0.0

    @property
    def num_frames(self) -> int:
        return int(self.arkit_weights.shape[0])


def _apply_style(weights: np.ndarray, subject: Subject, emotion: str) -> np.ndarray:
    style = subject.style
    out = weights * style.articulation * expressive.EMOTION_ARTICULATION[emotion]
    out[:, [_IDX[n] for n in JAW_CHANNELS]] *= style.jaw_lip_ratio
    out[:, [_IDX[n] for n in LIP_CHANNELS]] /= style.jaw_lip_ratio
    out[:, [_IDX["mouthFunnel"], _IDX["mouthPucker"]]] *= style.rounding
    out[:, [_IDX["mouthStretchLeft"], _IDX["mouthStretchRight"]]] *= style.spread
    left = [i for i, n in enumerate(ARKIT_52) if n.endswith("Left")]
    right = [i for i, n in enumerate(ARKIT_52) if n.endswith("Right")]
    out[:, left] *= 1.0 + style.asymmetry
    out[:, right] *= 1.0 - style.asymmetry
    return out


def perform(
    phonemes: Sequence[TimedClass],
    audio: np.ndarray,
    sample_rate: int,
    subject: Subject,
    emotion: str = "neutral",
    intensity: float = 0.7,
    fps: float = 30.0,
    seed: int = 0,
) -> Performance:
    """Animate one utterance.

    Args:
        phonemes: timed phoneme classes of the utterance (seconds, audio time).
        audio: (N,) the speech, used for prosody (brows, nods) and the length.
        sample_rate: of ``audio``.
        subject: who speaks (style constant across the subject's sequences).
        emotion: a name or code of :data:`mmface4d.emotions.EMOTIONS`.
        intensity: emotion intensity in [0, 1] (ignored for neutral).
        fps: output frame rate.
        seed: seed of the random parts (blinks, head drift).

    Returns:
        The :class:`Performance`, with T = round(duration * fps) frames.
    """
    expressive.check_emotion(emotion)
    rng = np.random.default_rng(seed)
    num_frames = max(1, int(round(len(audio) / sample_rate * fps)))
    lag = subject.style.lip_lag
    shifted = [TimedClass(p.cls, p.start + lag, p.end + lag) for p in phonemes]
    mouth, closure = coarticulate(shifted, num_frames, fps)
    weights = _apply_style(mouth, subject, emotion)
    weights += expressive.emotion_weights(
        emotion, intensity if emotion != "neutral" else 0.0, num_frames, fps
    )
    weights[:, _IDX["mouthSmileLeft"]] += subject.style.smile_bias
    weights[:, _IDX["mouthSmileRight"]] += subject.style.smile_bias
    feats = expressive.prosody(audio, sample_rate, num_frames, fps)
    weights += expressive.brow_weights(feats, subject.style.brow_activity)
    blinks, onsets = expressive.blink_weights(num_frames, fps, subject.style.blink_rate, rng)
    weights = np.maximum(weights, blinks)
    weights = enforce_closure(np.clip(weights, 0.0, 1.0), closure)
    rotation, translation = expressive.head_motion(feats, fps, subject.style.head_motion, rng)
    return Performance(
        fps=fps,
        arkit_weights=weights.astype(np.float32),
        head_rotation=rotation.astype(np.float32),
        head_translation=translation.astype(np.float32),
        lip_closure=closure.astype(np.float32),
        phonemes=list(shifted),
        blink_onsets=onsets,
        emotion=emotion,
        intensity=float(intensity if emotion != "neutral" else 0.0),
    )


def performance_vertices(
    model: FaceModel, subject: Subject, performance: Performance, camera_frame: bool = True
) -> np.ndarray:
    """Vertices of a performance.

    Args:
        model: the face model (its ARKit-named expressions are driven).
        subject: supplies the identity coefficients.
        performance: the motion.
        camera_frame: True for the MMFace4D convention (OpenCV camera axes x right, y down,
            z forward; the face ~0.72 m in front of the centre camera); False for the model
            frame with the head pose applied.

    Returns:
        (T, V, 3) float32 metres.
    """
    expr = arkit_to_model_weights(model.expression_names, performance.arkit_weights)
    with torch.no_grad():
        ident = torch.as_tensor(subject.identity[: model.identity_dims]).expand(len(expr), -1)
        verts = model.vertices(ident, torch.as_tensor(expr)).numpy()
    rot = Rotation.from_euler("xyz", performance.head_rotation.astype(np.float64)).as_matrix()
    pivot = NECK_PIVOT.astype(np.float32)
    posed = (verts - pivot) @ rot.transpose(0, 2, 1).astype(np.float32) + pivot
    posed += performance.head_translation[:, None, :]
    if camera_frame:
        posed = to_camera_frame(posed)
    return posed.astype(np.float32)

"""Synthetic subjects: identity, age, gender and a speaking style that stays constant across all
of the subject's sequences (the paper's "composite nature": a global, speaker-specific
modulation of speech-driven motion)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mmface4d.facemodel.model import FaceModel


@dataclass(frozen=True)
class SpeakingStyle:
    """How one subject moves while speaking; every field is constant for the subject.

    Attributes:
        articulation: scale of all speech mouth weights (0.55 mumbling .. 1.6 exaggerated).
        jaw_lip_ratio: > 1 favours the jaw, < 1 the lips (jaw weights x r, lip weights / r).
        smile_bias: constant mouthSmile weight while awake (0 .. 0.3).
        asymmetry: left-minus-right imbalance of sided weights (-0.25 .. 0.25).
        tempo: speech rate factor (0.85 slow .. 1.2 fast), applied to the voice's rate.
        brow_activity: gain of pitch/energy-driven brow raises (0 .. 1).
        blink_rate: blinks per minute (10 .. 25).
        head_motion: head rotation amplitude in degrees (0.8 .. 4).
        lip_lag: seconds the mouth lags the sound (-0.02 .. 0.03; positive = later).
        rounding: gain of lip rounding and protrusion (funnel, pucker; 0.5 .. 1.7).
        spread: gain of lip spreading (stretch, the smile of close vowels; 0.5 .. 1.7).
    """

    articulation: float = 1.0
    jaw_lip_ratio: float = 1.0
    smile_bias: float = 0.0
    asymmetry: float = 0.0
    tempo: float = 1.0
    brow_activity: float = 0.5
    blink_rate: float = 17.0
    head_motion: float = 2.0
    lip_lag: float = 0.0
    rounding: float = 1.0
    spread: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SpeakingStyle:
        """A random plausible style."""
        return cls(
            articulation=float(np.clip(rng.lognormal(0.0, 0.3), 0.55, 1.6)),
            jaw_lip_ratio=float(np.clip(rng.lognormal(0.0, 0.3), 0.55, 1.8)),
            smile_bias=float(np.clip(rng.gamma(1.2, 0.06), 0.0, 0.3)),
            asymmetry=float(np.clip(rng.normal(0.0, 0.1), -0.25, 0.25)),
            tempo=float(rng.uniform(0.85, 1.2)),
            brow_activity=float(rng.uniform(0.0, 1.0)),
            blink_rate=float(rng.uniform(10.0, 25.0)),
            head_motion=float(rng.uniform(0.8, 4.0)),
            lip_lag=float(rng.uniform(-0.02, 0.03)),
            rounding=float(np.clip(rng.lognormal(0.0, 0.35), 0.5, 1.7)),
            spread=float(np.clip(rng.lognormal(0.0, 0.35), 0.5, 1.7)),
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Subject:
    """A synthetic actor: who they are and how they speak.

    Attributes:
        subject_id: e.g. ``"S007"``.
        age: years (15..68, as in MMFace4D).
        gender: ``"female"`` or ``"male"``.
        identity: (K_id,) identity coefficients of the face model (standard deviations).
        albedo: (K_alb,) albedo coefficients.
        style: the speaking style.
        voice_seed: seed from which this subject's voice is drawn (same voice every sentence).
    """

    subject_id: str
    age: int
    gender: str
    identity: np.ndarray
    albedo: np.ndarray
    style: SpeakingStyle
    voice_seed: int

    def to_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject_id,
            "age": self.age,
            "gender": self.gender,
            "identity": [float(v) for v in self.identity],
            "albedo": [float(v) for v in self.albedo],
            "style": self.style.to_dict(),
            "voice_seed": self.voice_seed,
        }


def sample_subjects(model: FaceModel, count: int, seed: int) -> list[Subject]:
    """``count`` reproducible subjects; subject k is the same for any ``count`` > k."""
    subjects = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        subjects.append(
            Subject(
                subject_id=f"S{k + 1:03d}",
                age=int(rng.integers(15, 69)),
                gender=str(rng.choice(["female", "male"])),
                identity=rng.normal(0.0, 0.8, model.identity_dims).astype(np.float32),
                albedo=rng.normal(0.0, 0.8, model.albedo_dims).astype(np.float32),
                style=SpeakingStyle.sample(rng),
                voice_seed=int(rng.integers(0, 2**31 - 1)),
            )
        )
    return subjects

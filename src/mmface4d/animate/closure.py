"""Lips that close on p, b and m: a closure layer timed by the phoneme recogniser.

A regression from speech to vertices learns the average mouth around a bilabial; where the
speech gives the closure's timing only roughly, the average is a mouth that nearly closes
(``docs/LIPSYNC.md`` measures it). The viewer sees the difference at once: at p, b and m real lips
meet. :func:`close_lips` adds what the regression averages away, as a switchable layer on top of
the model (``mmface4d animate --no-lip-closure`` turns it off), the way :mod:`.liveliness` adds
blinks:

1. **When**: the peaks of the recogniser's probability of a bilabial
   (:func:`mmface4d.audio.phonetic.bilabial_peaks`: p, b, m in any language the recogniser
   knows, also where another phone is its first choice). Each gets a closure weight that holds
   1 from :attr:`ClosureConfig.lead_s` before the peak to :attr:`ClosureConfig.lag_s` after it
   (a CTC recogniser's peak falls near the release, at the end of the closure), with
   raised-cosine ramps of :attr:`ClosureConfig.ramp_s` either side (coarticulation: the lips
   travel to and from the closure); overlapping events take the larger weight. The defaults were
   chosen on the synthetic validation speakers (``docs/LIPSYNC.md``, "Lip-closure layer"):
   longer holds close no more bilabials but shut lips where the truth's are open.
2. **How**: the animation's own lip modes. Over the clip, every lower-face vertex's offset from
   the neutral face is regressed (ridge least squares) on the vectors between the facing
   inner-lip landmarks (three pairs, nine numbers per frame): how this model moves the face
   when the lips part, and in which direction (the jaw drops and swings back, the lower lip
   rolls). Each frame moves along that regression so the lip vectors go from their value to
   ``(1 - weight) x value + weight x contact`` (contact: the neutral face's vectors with their
   part along the clip's mean opening direction set to :attr:`ClosureConfig.contact_mm`: lips
   touching, not crossing, also on a neutral face whose lips are parted; lips that cross in the
   model's output are pulled back too). Motion that does
   not part the lips (a smile, rounding) stays.
3. **Pauses**: in the speech's pauses (:func:`mmface4d.animate.lipsync.voice_activity`: 35 dB
   below the loudest, gaps under 0.2 s inside speech do not count) the lips go to contact too,
   rising over :attr:`ClosureConfig.pause_ramp_s` from the speech's edge: a mouth at rest, not
   one that drifts while nobody speaks.

The upper face (eyes, brows) is never moved. Face-model-free animations (no landmarks) and
clips whose mouth hardly moves (nothing to learn the mode from) are returned unchanged, with
the reason in the returned facts. Shapes: T frames, V vertices; metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmface4d.animate.lipsync import voice_activity
from mmface4d.audio.io import DEFAULT_SAMPLE_RATE
from mmface4d.audio.phonetic import BILABIAL_THRESHOLD, bilabial_peaks
from mmface4d.errors import InputError
from mmface4d.facemodel.regions import inner_lip_pairs

#: Least spread (standard deviation) of the inner-lip gap over a clip to learn its lip modes
#: from, metres.
MIN_GAP_SPREAD = 5e-4
#: Ridge of the lip-mode regression, relative to the mean variance of its inputs.
RIDGE = 1e-3


@dataclass(frozen=True)
class ClosureConfig:
    """When and how far :func:`close_lips` closes the lips (``mmface4d animate``)."""

    enabled: bool = True
    """Close the lips at recognised bilabials."""
    threshold: float = BILABIAL_THRESHOLD
    """Least recogniser probability of a bilabial that closes the lips."""
    lead_s: float = 0.04
    """The closure is complete this long before the bilabial's peak, seconds."""
    lag_s: float = 0.01
    """... and holds until this long after it, seconds."""
    ramp_s: float = 0.08
    """Raised-cosine ramp to and from the closure, seconds."""
    contact_mm: float = 0.3
    """Inner-lip gap at full closure along the opening direction, millimetres (a neutral face
    whose lips touch: its gap plus this; parted lips are brought to this gap)."""
    pauses: bool = True
    """Also close the lips in pauses of the speech (the mouth rests; module doc, 3)."""
    pause_ramp_s: float = 0.3
    """How long after the speech stops the lips are shut (raised cosine), seconds."""

    def validate(self) -> None:
        """An :class:`InputError` for a negative duration or contact gap, a bad threshold."""
        if not 0 < self.threshold < 1:
            raise InputError(f"closure threshold: expected 0 < t < 1, found {self.threshold}")
        for name in ("lead_s", "lag_s", "ramp_s", "contact_mm", "pause_ramp_s"):
            if not getattr(self, name) >= 0:
                raise InputError(f"closure {name}: expected >= 0, found {getattr(self, name)}")


def _fade(distance: np.ndarray, ramp: float) -> np.ndarray:
    """Raised cosine: 1 at distance 0, falling to 0 at ``ramp`` and beyond (a step for ramp 0)."""
    if ramp <= 0:
        return (distance <= 0).astype(float)
    return 0.5 * (1 + np.cos(np.pi * np.clip(distance / ramp, 0.0, 1.0)))


def closure_weights(
    centres: Sequence[float],
    fps: float,
    num_frames: int,
    config: ClosureConfig | None = None,
    first_frame: int = 0,
) -> np.ndarray:
    """(T,) closure weight in [0, 1] per frame from the bilabials' times (module doc, 1), for
    frames ``first_frame .. first_frame + T - 1`` (a stream's step)."""
    config = config or ClosureConfig()
    times = (first_frame + np.arange(num_frames) + 0.5) / fps
    weights = np.zeros(num_frames)
    for centre in centres:
        hold_from, hold_to = centre - config.lead_s, centre + config.lag_s
        # distance outside the hold, in ramps (0 inside it)
        outside = np.maximum(hold_from - times, times - hold_to).clip(min=0.0)
        weights = np.maximum(weights, _fade(outside, config.ramp_s))
    return weights


def pause_weights(speech: np.ndarray, fps: float, ramp_s: float) -> np.ndarray:
    """(T,) weight of rest per frame: 0 in speech, rising over ``ramp_s`` into each pause.

    Args:
        speech: (T,) bool voice activity per frame
            (:func:`mmface4d.animate.lipsync.voice_activity`).
        fps: frame rate.
        ramp_s: raised-cosine rise from the speech's edge, seconds.
    """
    speech = np.asarray(speech, dtype=bool)
    if speech.all():
        return np.zeros(len(speech))
    if not speech.any():
        return np.ones(len(speech))
    frames = np.arange(len(speech))
    edges = frames[speech]
    # frames to the nearest speech frame
    after = np.searchsorted(edges, frames).clip(max=len(edges) - 1)
    before = (after - 1).clip(min=0)
    distance = np.minimum(np.abs(frames - edges[after]), np.abs(frames - edges[before]))
    return 1.0 - _fade(distance / fps, ramp_s)


def closure_timing(
    audio: np.ndarray, fps: float, num_frames: int, config: ClosureConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """When to close the lips in 16 kHz speech: (T,) weights and the bilabials' times.

    The larger of :func:`closure_weights` at the recogniser's bilabial peaks and, with
    ``config.pauses``, :func:`pause_weights` of the speech's voice activity.
    """
    config = config or ClosureConfig()
    config.validate()
    centres = bilabial_peaks(audio, config.threshold)
    weights = closure_weights(centres, fps, num_frames, config)
    if config.pauses:
        speech = voice_activity(audio, DEFAULT_SAMPLE_RATE, fps, num_frames)
        weights = np.maximum(weights, pause_weights(speech, fps, config.pause_ramp_s))
    return weights, centres


def lip_modes(offsets: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(9, V, 3) offset per metre of each lip-vector component: the ridge regression of
    ``offsets`` on the (centred) lip vectors over the clip.

    Args:
        offsets: (T, V, 3) the animation minus its neutral face (the vertices to move).
        lips: (T, 3, 3) upper minus lower inner-lip landmark, per pair.
    """
    T, V, _ = offsets.shape
    x, gram = lip_gram(lips)
    # x is centred, so x.T @ offsets = x.T @ (offsets - their mean)
    moments = x.T.astype(np.float32) @ offsets.reshape(T, -1)
    return np.linalg.solve(gram, moments.astype(np.float64)).reshape(9, V, 3)


def lip_gram(lips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centred lip vectors (T, 9) and the ridged (9, 9) Gram matrix of :func:`lip_modes`.

    Args:
        lips: (T, 3, 3) upper minus lower inner-lip landmark, per pair.
    """
    T = len(lips)
    x = lips.reshape(T, 9) - lips.reshape(T, 9).mean(axis=0)
    gram = x.T @ x
    gram += RIDGE * np.trace(gram) / 9 * np.eye(9)
    return x, gram


def _lip_vectors(vertices: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    return vertices[..., upper, :] - vertices[..., lower, :]


def lips_move(lips: np.ndarray) -> bool:
    """Whether a stretch's inner-lip gap (``lips``: (T, 3, 3)) varies enough
    (:data:`MIN_GAP_SPREAD`) to learn lip modes from: at least 3 frames."""
    return len(lips) >= 3 and np.linalg.norm(lips, axis=2).mean(axis=1).std() >= MIN_GAP_SPREAD


@dataclass
class LipFit:
    """The lip modes of a stretch of animation and the lips' contact: what :func:`close_lips`
    learns from a clip (and a stream from its window) and applies to frames.

    Attributes:
        neutral: (V, 3) the neutral face.
        upper, lower: (3,) the inner-lip landmark pairs' vertex indices.
        moved: (M,) the vertices the closure may move (all but the upper face).
        modes: (9, M * 3) float32 offset per metre of each lip-vector component, or None
            before :meth:`fit`.
        contact: (3, 3) the lip vectors at contact.
    """

    neutral: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    moved: np.ndarray
    modes: np.ndarray | None = None
    contact: np.ndarray | None = None

    @classmethod
    def prepare(
        cls, neutral: np.ndarray, landmarks: np.ndarray, upper_face: np.ndarray | None
    ) -> LipFit:
        """The vertices and landmarks of a face (no modes yet)."""
        neutral = np.asarray(neutral, dtype=np.float32)
        upper, lower = inner_lip_pairs(landmarks)
        movable = np.ones(len(neutral), dtype=bool)
        if upper_face is not None:
            movable[np.asarray(upper_face, dtype=np.int64)] = False
        movable[upper] = movable[lower] = True
        return cls(neutral, upper, lower, np.flatnonzero(movable))

    def fit(self, lips: np.ndarray, moments: np.ndarray, config: ClosureConfig) -> None:
        """Learn the modes from a stretch's lip vectors and the moments of its offsets.

        Args:
            lips: (T, 3, 3) float64 lip vectors of the stretch (:func:`lips_move` holds).
            moments: (9, M * 3) ``lip_gram(lips)[0].T @ offsets`` of the moved vertices'
                offsets from the neutral face (T, M * 3).
            config: the contact gap.
        """
        _, gram = lip_gram(lips)
        modes = np.linalg.solve(gram, np.asarray(moments, dtype=np.float64))
        self.modes = modes.astype(np.float32)
        rest = _lip_vectors(self.neutral, self.upper, self.lower).astype(np.float64)
        opening = (lips - rest[None]).mean(axis=0)
        opening /= np.linalg.norm(opening, axis=1, keepdims=True).clip(min=1e-12)
        # lips touching: each pair's gap along the opening direction brought to contact_mm (a
        # neutral face with parted lips, such as a user's character, closes too)
        along = np.maximum((rest * opening).sum(axis=1, keepdims=True), 0.0)
        self.contact = rest + (config.contact_mm * 1e-3 - along) * opening  # (3, 3)

    def apply(self, vertices: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(T, V, 3) float32 ``vertices`` with the lips closed by ``weights`` (T,) in [0, 1]."""
        assert self.modes is not None and self.contact is not None, "fit() first"
        vertices = np.asarray(vertices, dtype=np.float32)
        # the lip landmarks' places among the moved vertices
        up, low = np.searchsorted(self.moved, self.upper), np.searchsorted(self.moved, self.lower)
        active = np.flatnonzero(weights > 0)
        if not len(active):
            return vertices
        lips = _lip_vectors(vertices[active], self.upper, self.lower).astype(np.float64)
        w = np.asarray(weights, dtype=np.float64)[active][:, None, None]
        wanted = (1 - w) * lips + w * self.contact[None]
        block = vertices[np.ix_(active, self.moved)]  # (A, M, 3) copy of the part moved
        for _ in range(2):  # the ridge leaves a little; a second step removes it
            step = (_lip_vectors(block, up, low) - wanted).reshape(len(active), 9)
            block -= (step.astype(np.float32) @ self.modes).reshape(block.shape)
        out = vertices.copy()
        out[np.ix_(active, self.moved)] = block
        return out


def close_lips(
    vertices: np.ndarray,
    template: np.ndarray,
    landmarks: np.ndarray | None,
    upper_face: np.ndarray | None,
    weights: np.ndarray,
    config: ClosureConfig | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Close the lips where ``weights`` say (see the module doc).

    Args:
        vertices: (T, V, 3) the animation, metres.
        template: (V, 3) its neutral face.
        landmarks: (68,) iBUG landmark vertex indices, or None (nothing is done).
        upper_face: vertex indices never moved (eyes, brows), or None.
        weights: (T,) how far each frame's lips go to contact, in [0, 1]
            (:func:`closure_timing`).
        config: the contact gap and the switch (default :class:`ClosureConfig`).

    Returns:
        The (T, V, 3) float32 animation and facts for the metadata: ``closed_frames`` (frames
        with weight above 0.5) and ``skipped`` (why nothing was done, or None).
    """
    config = config or ClosureConfig()
    config.validate()
    vertices = np.asarray(vertices, dtype=np.float32)
    info: dict[str, object] = {"closed_frames": 0, "skipped": None}
    if not config.enabled:
        info["skipped"] = "switched off"
        return vertices, info
    if landmarks is None:
        info["skipped"] = "no landmarks to find the lips"
        return vertices, info
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
    if weights.shape != (len(vertices),):
        raise InputError(f"weights: expected ({len(vertices)},), got {weights.shape}")
    if not weights.any():
        info["skipped"] = "no bilabial or pause"
        return vertices, info
    upper, lower = inner_lip_pairs(landmarks)
    lips = _lip_vectors(vertices, upper, lower).astype(np.float64)  # (T, 3 pairs, 3)
    if not lips_move(lips):
        info["skipped"] = "the mouth hardly moves"
        return vertices, info
    neutral = np.asarray(template, dtype=np.float32)
    lipfit = LipFit.prepare(neutral, landmarks, upper_face)
    offsets = vertices[:, lipfit.moved] - neutral[lipfit.moved]
    x, _ = lip_gram(lips)
    lipfit.fit(lips, x.T.astype(np.float32) @ offsets.reshape(len(offsets), -1), config)
    out = lipfit.apply(vertices, weights)
    info["closed_frames"] = int((weights > 0.5).sum())
    return out, info


def lip_closure(
    vertices: np.ndarray,
    template: np.ndarray,
    audio: np.ndarray,
    fps: float,
    landmarks: np.ndarray | None,
    upper_face: np.ndarray | None,
    config: ClosureConfig | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """The layer as ``mmface4d animate`` and ``evaluate --lip-closure`` run it: the timing of
    16 kHz ``audio`` (:func:`closure_timing`), then :func:`close_lips`; the facts also list the
    bilabials' times (``bilabials``, seconds)."""
    config = config or ClosureConfig()
    if not config.enabled:
        return close_lips(vertices, template, landmarks, upper_face, np.zeros(0), config)
    weights, centres = closure_timing(audio, fps, len(vertices), config)
    out, info = close_lips(vertices, template, landmarks, upper_face, weights, config)
    info["bilabials"] = [round(float(c), 3) for c in centres]
    return out, info

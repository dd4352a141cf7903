"""Eyes that live: blinks and saccades added on top of a speech-driven animation.

A regression from speech averages away what speech does not predict: the shipped model's
``eyeBlink`` weight never passes 0.09 over a demo while real speakers blink fully about 26 times
a minute. :func:`add_liveliness` adds seeded blinks and gaze saccades
(:mod:`mmface4d.facemodel.procedural`) through the face model's ARKit shapes, in vertex space, so
that every output (video, glTF morph weights, ARKit CSV, meshes) carries them:

- for each ``eyeBlink`` shape, on the vertices it moves (the lids), the model's own offsets fade
  out as the generated blink rises and the blink shape fades in: at the peak the lids are
  exactly the shape's, fully shut, whatever the model did around the eyes (a squint or a wide
  look would otherwise read as a partial blink in the ARKit solve), and a blink the model
  already makes is not doubled;
- the ``eyeLook*`` shapes get the generated gaze added.

Face models without ARKit shapes (BFM's PCA expressions) are returned unchanged, with a note in
the returned info.

The timing is drawn event by event (:class:`Liveliness`: blinks and gaze shifts from two seeded
generators, each event's draws in turn), so a frame's eyes depend only on the seed and the
frame's time, never on how long the animation is or in which pieces it is made: a stream
(:mod:`mmface4d.animate.streaming`) and a whole file give the same blinks, and the state kept is
the events that can still reach a frame. The distributions are those of
:func:`~mmface4d.facemodel.procedural.blink_weights` and
:func:`~mmface4d.facemodel.procedural.gaze_angles`. Shapes: T frames, V vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d.errors import InputError
from mmface4d.export.arkit import arkit_basis
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.procedural import REFRACTORY_S, TALKING_BLINK_RATE, gaze_weights

BLINKS = ("eyeBlinkLeft", "eyeBlinkRight")
LOOKS = tuple(name for name in ARKIT_52 if name.startswith("eyeLook"))


@dataclass(frozen=True)
class LivelinessConfig:
    """What :func:`add_liveliness` adds (``mmface4d animate --no-blinks`` etc.)."""

    blinks: bool = True
    """Add full blinks at a natural rate."""
    blink_rate: float = TALKING_BLINK_RATE
    """Mean blinks per minute (26: the published mean while talking)."""
    saccades: bool = True
    """Add small gaze shifts (saccades between fixations)."""
    seed: int = 0
    """Seed of the blink and gaze timing (the same input and seed give the same face)."""

    def validate(self) -> None:
        """An :class:`InputError` for a rate outside 0-120 per minute."""
        if not 0 < self.blink_rate <= 120:
            raise InputError(
                f"blink_rate: expected 0 < rate <= 120 per minute, found {self.blink_rate}"
            )

    @property
    def enabled(self) -> bool:
        return self.blinks or self.saccades


def _lids(shape: np.ndarray) -> np.ndarray:
    """(V,) how much each vertex belongs to the lid a blink shape closes, in [0, 1]: 1 where it
    moves over a quarter of its largest motion, fading to 0 with the motion (no seam)."""
    norms = np.linalg.norm(shape, axis=1)
    return np.clip(norms / (0.25 * norms.max()), 0.0, 1.0).astype(np.float32)


class _Blinks:
    """Blink events drawn one by one (onset gap, hold, reopening), as ``blink_weights`` draws
    them: a Poisson process with a refractory gap; each closes in 60 ms, holds 0-50 ms and
    reopens in 90-160 ms."""

    CLOSE_S = 0.06

    def __init__(self, rate: float, rng: np.random.Generator):
        self.rate, self.rng = rate, rng
        self.events: list[tuple[float, float, float]] = []  # (onset, hold, reopen)
        self.clock = rng.uniform(0.2, 60.0 / max(rate, 1e-3))

    def until(self, end: float) -> list[float]:
        """Draw the blinks that start before ``end`` seconds; their onsets."""
        new = []
        while self.clock < end:
            onset = self.clock
            hold, reopen = self.rng.uniform(0.0, 0.05), self.rng.uniform(0.09, 0.16)
            self.events.append((onset, hold, reopen))
            new.append(onset)
            gap = max(60.0 / self.rate - REFRACTORY_S, 0.05)
            self.clock += REFRACTORY_S + self.rng.exponential(gap)
        return new

    def closed(self, t: np.ndarray) -> np.ndarray:
        """(n,) lid closure in [0, 1] at times ``t`` (the blinks drawn so far), then forget
        the blinks over before ``t[0]``."""
        closed = np.zeros(len(t))
        close = self.CLOSE_S
        for onset, hold, reopen in self.events:
            u = t - onset
            shape = np.where(
                u < close,
                u / close,
                np.where(u < close + hold, 1.0, 1.0 - (u - close - hold) / reopen),
            )
            closed = np.maximum(closed, np.clip(np.where(u >= 0, shape, 0.0), 0.0, 1.0))
        if len(t):
            self.events = [e for e in self.events if e[0] + close + e[1] + e[2] >= t[0]]
        return closed


class _Gaze:
    """Saccades drawn one by one (fixation length, target), as ``gaze_angles`` draws them:
    gamma-distributed fixations, uniform targets, minimum-jerk shifts of the main sequence."""

    def __init__(self, rng: np.random.Generator, fixation_s: float = 0.7):
        self.rng, self.fixation_s = rng, fixation_s
        self.shifts: list[tuple[float, float, np.ndarray, np.ndarray]] = []  # start, length, a, b
        self.current = np.zeros(2)
        self.clock = max(0.15, rng.gamma(2.0, fixation_s / 2))

    def angles(self, t: np.ndarray, yaw_deg: float = 6.0, pitch_deg: float = 3.0) -> np.ndarray:
        """(n, 2) gaze yaw and pitch in degrees at times ``t`` (ascending, not before the
        previous call's)."""
        end = float(t[-1]) if len(t) else 0.0
        while self.clock <= end:
            target = self.rng.uniform(-1, 1, size=2) * (yaw_deg, pitch_deg)
            length = 0.021 + 0.0022 * float(np.hypot(*(target - self.current)))
            self.shifts.append((self.clock, length, self.current, target))
            self.current = target
            self.clock += length + max(0.15, self.rng.gamma(2.0, self.fixation_s / 2))
        gaze = np.zeros((len(t), 2))
        for start, length, before, after in self.shifts:
            u = np.clip((t - start) / length, 0.0, 1.0)
            ramp = u**3 * (10 - 15 * u + 6 * u**2)  # minimum-jerk profile from 0 to 1
            later = t >= start
            gaze[later] = before + ramp[later, None] * (after - before)
        if len(t):  # keep the last shift begun by t[-1]: it holds the gaze until the next
            begun = [k for k, s in enumerate(self.shifts) if s[0] <= t[-1]]
            self.shifts = self.shifts[begun[-1] :] if begun else self.shifts
        return gaze


class Liveliness:
    """Blinks and saccades for an animation made in pieces (a stream) or whole: the frames
    given to :meth:`apply` get the same eyes whatever pieces they come in (module doc).

    Args:
        face_model: the face model (its ARKit shapes are used), or None.
        template: (V, 3) the neutral face.
        fps: frame rate.
        config: what to add (default :class:`LivelinessConfig`).
        record: keep the blink onsets for :attr:`info` (a whole file's metadata; a stream
            leaves it off, so its state stays bounded).
    """

    def __init__(
        self,
        face_model: FaceModel | None,
        template: np.ndarray,
        fps: float,
        config: LivelinessConfig | None = None,
        record: bool = True,
    ):
        self.config = config = config or LivelinessConfig()
        config.validate()
        self.fps, self.record = float(fps), record
        self.template = np.asarray(template, dtype=np.float32)
        self.onsets: list[float] = []
        self.skipped: str | None = None
        self._shapes: dict[str, np.ndarray] = {}
        basis = arkit_basis(face_model) if face_model is not None and config.enabled else None
        if not config.enabled:
            self.skipped = "switched off"
        elif basis is None or not set(BLINKS) <= set(basis.names):
            self.skipped = "the face model has no ARKit eye shapes"
        else:
            self._shapes = dict(zip(basis.names, basis.targets, strict=True))
        self._lids = {name: _lids(self._shapes[name]) for name in BLINKS if name in self._shapes}
        self._looks = [n for n in LOOKS if n in self._shapes]
        self._targets = (
            np.stack([self._shapes[n] for n in self._looks]).astype(np.float32)
            if self._looks
            else None
        )
        seeds = np.random.SeedSequence(config.seed).spawn(2)
        self._blinks = _Blinks(config.blink_rate, np.random.default_rng(seeds[0]))
        self._gaze = _Gaze(np.random.default_rng(seeds[1]))
        self._next = 0

    @property
    def info(self) -> dict[str, object]:
        """Facts for the metadata: ``blinks`` (onsets, seconds, when recorded), ``blink_rate``
        and ``skipped`` (why nothing is added, or None)."""
        return {
            "blinks": [round(t, 3) for t in self.onsets],
            "blink_rate": self.config.blink_rate,
            "skipped": self.skipped,
        }

    def apply(self, vertices: np.ndarray, first_frame: int) -> np.ndarray:
        """Blinks and saccades on frames ``first_frame ..`` of the animation.

        Args:
            vertices: (n, V, 3) the frames, face model frame.
            first_frame: the index of ``vertices[0]``; calls go forward in time, each starting
                where the previous one ended.

        Returns:
            (n, V, 3) float32 frames.
        """
        vertices = np.asarray(vertices, dtype=np.float32)
        if first_frame != self._next:
            raise InputError(f"first_frame: expected {self._next}, found {first_frame}")
        self._next += len(vertices)
        if self.skipped is not None or len(vertices) == 0:
            return vertices
        t = (first_frame + np.arange(len(vertices))) / self.fps
        config = self.config
        if config.blinks:
            onsets = self._blinks.until(float(t[-1]) + 1e-9)
            if self.record:
                self.onsets += onsets
            closed = self._blinks.closed(t)
            frames = np.flatnonzero(closed)
            if len(frames):
                vertices = vertices.copy()
                for name in BLINKS:
                    lids = self._lids[name]
                    moved = lids > 0
                    weight = closed[frames, None, None] * lids[moved, None]
                    goal = self.template[moved] + self._shapes[name][moved]
                    block = vertices[np.ix_(frames, moved)]
                    vertices[np.ix_(frames, moved)] = block + weight.astype(np.float32) * (
                        goal - block
                    )
        if config.saccades and self._targets is not None:
            looks = gaze_weights(self._gaze.angles(t))
            weights = looks[:, [ARKIT_52.index(n) for n in self._looks]].astype(np.float32)
            used = weights.any(axis=0)
            if used.any():
                vertices = vertices + np.einsum(
                    "tk,kvc->tvc", weights[:, used], self._targets[used]
                )
        return vertices


def add_liveliness(
    vertices: np.ndarray,
    template: np.ndarray,
    face_model: FaceModel | None,
    fps: float,
    config: LivelinessConfig | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Blinks and saccades on top of an animation (see the module doc): :class:`Liveliness` of
    the whole animation.

    Args:
        vertices: (T, V, 3) the animation, face model frame.
        template: (V, 3) its neutral face.
        face_model: the face model (its ARKit shapes are used), or None.
        fps: frame rate.
        config: what to add (default :class:`LivelinessConfig`).

    Returns:
        The (T, V, 3) float32 animation with them, and facts for the metadata: ``blinks``
        (onset times, seconds), ``blink_rate`` and ``skipped`` (why nothing was added, or None).
    """
    vertices = np.asarray(vertices, dtype=np.float32)
    lively = Liveliness(face_model, template, fps, config)
    if len(vertices) == 0 and lively.skipped is None:
        lively.skipped = "switched off"
    return lively.apply(vertices, 0), lively.info

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
the returned info. Shapes: T frames, V vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d.errors import InputError
from mmface4d.export.arkit import arkit_basis
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.procedural import (
    TALKING_BLINK_RATE,
    blink_weights,
    gaze_angles,
    gaze_weights,
)

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


def add_liveliness(
    vertices: np.ndarray,
    template: np.ndarray,
    face_model: FaceModel | None,
    fps: float,
    config: LivelinessConfig | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Blinks and saccades on top of an animation (see the module doc).

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
    config = config or LivelinessConfig()
    config.validate()
    vertices = np.asarray(vertices, dtype=np.float32)
    info: dict[str, object] = {"blinks": [], "blink_rate": config.blink_rate, "skipped": None}
    if not config.enabled or len(vertices) == 0:
        info["skipped"] = "switched off"
        return vertices, info
    basis = arkit_basis(face_model) if face_model is not None else None
    if basis is None or not set(BLINKS) <= set(basis.names):
        info["skipped"] = "the face model has no ARKit eye shapes"
        return vertices, info
    shapes = dict(zip(basis.names, basis.targets, strict=True))
    rng = np.random.default_rng(config.seed)
    T = len(vertices)
    template = np.asarray(template, dtype=np.float32)
    delta = np.zeros((T, len(ARKIT_52)))
    if config.blinks:
        generated, onsets = blink_weights(T, fps, config.blink_rate, rng)
        info["blinks"] = [round(t, 3) for t in onsets]
        vertices = vertices.copy()
        for name in BLINKS:
            lids = _lids(shapes[name])
            frames, moved = np.flatnonzero(generated[:, ARKIT_52.index(name)]), lids > 0
            weight = generated[frames, ARKIT_52.index(name), None, None] * lids[moved, None]
            goal = template[moved] + shapes[name][moved]
            block = vertices[np.ix_(frames, moved)]
            vertices[np.ix_(frames, moved)] = block + weight.astype(np.float32) * (goal - block)
    if config.saccades:
        looks = gaze_weights(gaze_angles(T, fps, rng))
        for name in LOOKS:
            if name in shapes:
                delta[:, ARKIT_52.index(name)] = looks[:, ARKIT_52.index(name)]
    used = [n for n in LOOKS if n in shapes and delta[:, ARKIT_52.index(n)].any()]
    if used:
        weights = delta[:, [ARKIT_52.index(n) for n in used]].astype(np.float32)
        targets = np.stack([shapes[n] for n in used]).astype(np.float32)
        vertices = vertices + np.einsum("tk,kvc->tvc", weights, targets)
    return vertices, info

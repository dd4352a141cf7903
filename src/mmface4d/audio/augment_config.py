"""Speech augmentation settings (:class:`AugmentConfig`, the ``augment`` section of a training
configuration) and the checks they share with :mod:`mmface4d.audio.augment`.

Kept apart from the augmentations themselves so that a training configuration (and
``mmface4d train --help``, which lists its keys) loads without numpy or scipy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from mmface4d.errors import InputError

if TYPE_CHECKING:
    import numpy as np

MAX_SEMITONES = 12.0
"""Largest pitch shift :func:`~mmface4d.audio.augment.shift_pitch` accepts, in either direction."""

RT60_RANGE = (0.05, 2.0)
"""Open interval of reverberation times :func:`~mmface4d.audio.augment.add_reverb` accepts, in
seconds."""


def check_number(value: object, name: str) -> float:
    """``value`` as a finite float (a real number, not a bool), or an :class:`InputError`
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}: expected a number, found {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{name}: expected a finite number, found {value!r}")
    return number


def check_rng(rng: object) -> np.random.Generator:
    """``rng`` if it is a :class:`numpy.random.Generator`, else an :class:`InputError`."""
    import numpy as np  # whoever holds a Generator has numpy loaded already

    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"rng: expected a numpy.random.Generator (numpy.random.default_rng(seed)), "
            f"found {type(rng)}"
        )
    return rng


@dataclass
class AugmentConfig:
    """Which augmentations :func:`~mmface4d.audio.augment.augment` applies, how often, and with
    what parameter ranges.

    Each ``(low, high)`` range is drawn uniformly; each probability is per clip.
    """

    enabled: bool = True
    """Augment at all (false: :func:`augment` returns its input unchanged)."""
    speed: tuple[float, float] = (0.9, 1.1)
    """Speed factor range, within (0.5, 2]; drawn by :meth:`draw_speed`, applied by the caller."""
    speed_probability: float = 0.5
    """Probability that :meth:`draw_speed` returns a factor other than 1."""
    pitch_semitones: tuple[float, float] = (-3.0, 3.0)
    """Pitch shift range in semitones, within [-12, 12]."""
    pitch_probability: float = 0.3
    """Probability of a pitch shift."""
    snr_db: tuple[float, float] = (5.0, 40.0)
    """Speech-to-noise ratio range in dB (noise colour drawn among white, pink, brown)."""
    noise_probability: float = 0.5
    """Probability of added noise."""
    rt60: tuple[float, float] = (0.1, 0.7)
    """Reverberation time range in seconds, within (0.05, 2.0)."""
    reverb_probability: float = 0.3
    """Probability of reverberation."""
    gain_db: tuple[float, float] = (-25.0, 5.0)
    """Level change range in dB (positive gains can clip)."""
    level_probability: float = 0.8
    """Probability of a level change."""

    def validate(self) -> AugmentConfig:
        """Check every field; raises InputError naming the first bad one. Returns ``self``."""
        for item in fields(self):
            if item.name.endswith("_probability"):
                value = check_number(getattr(self, item.name), item.name)
                if not 0.0 <= value <= 1.0:
                    raise InputError(
                        f"{item.name}: expected a probability in [0, 1], found {value}"
                    )
        if not isinstance(self.enabled, bool):
            raise InputError(f"enabled: expected true or false, found {self.enabled!r}")
        low, high = self.bounds("speed")
        if not (0.5 < low and high <= 2.0):
            raise InputError(f"speed: expected factors in (0.5, 2], found {self.speed!r}")
        low, high = self.bounds("pitch_semitones")
        if not (-MAX_SEMITONES <= low and high <= MAX_SEMITONES):
            raise InputError(
                f"pitch_semitones: expected semitones in [-12, 12], found {self.pitch_semitones!r}"
            )
        self.bounds("snr_db")
        low, high = self.bounds("rt60")
        if not (RT60_RANGE[0] < low and high < RT60_RANGE[1]):
            raise InputError(f"rt60: expected seconds in (0.05, 2.0), found {self.rt60!r}")
        self.bounds("gain_db")
        return self

    def bounds(self, name: str) -> tuple[float, float]:
        """The ``(low, high)`` range field ``name``, checked (an :class:`InputError` naming it)."""
        value = getattr(self, name)
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
            raise InputError(f"{name}: expected a (low, high) pair such as 1,2, found {value!r}")
        low, high = (check_number(v, name) for v in value)
        if low > high:
            raise InputError(f"{name}: expected low <= high, found {value!r}")
        return low, high

    def draw_speed(self, rng: np.random.Generator) -> float:
        """Speed factor for one clip: uniform in ``speed`` with ``speed_probability``, else 1.0.

        The caller applies it with :func:`~mmface4d.audio.augment.change_speed` AND resamples the
        mesh frames in time.
        """
        rng = check_rng(rng)
        if not self.enabled or rng.random() >= self.speed_probability:
            return 1.0
        low, high = self.bounds("speed")
        return float(rng.uniform(low, high))

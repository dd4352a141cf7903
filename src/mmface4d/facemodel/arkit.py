"""The 52 ARKit blendshape names, the exchange vocabulary of real-time face animation."""

from __future__ import annotations

import re

ARKIT_52: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip


def canonical_arkit_name(name: str) -> str | None:
    """Map a source's ARKit-style name to the canonical ARKit one, or None if it is not one.

    ``eyeBlink_L`` -> ``eyeBlinkLeft``; ``browInnerUp_L`` -> ``browInnerUp`` (ARKit has one
    inner-brow shape; the two halves of a split source both map to it).
    """
    base = re.sub(r"_L$", "Left", re.sub(r"_R$", "Right", name))
    if base in ARKIT_52:
        return base
    unsided = re.sub(r"(Left|Right)$", "", base)
    return unsided if unsided in ARKIT_52 else None

"""The 52 ARKit blendshape names, the exchange vocabulary of real-time face animation."""

from __future__ import annotations

import re

import numpy as np

from mmface4d.errors import InputError

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


def arkit_to_model_weights(expression_names: list[str], arkit_weights: np.ndarray) -> np.ndarray:
    """Map ARKit-52 weights onto a model's expression components by canonical name.

    Args:
        expression_names: the model's K expression names (ARKit-style, any source's spelling).
        arkit_weights: (..., 52) weights in :data:`ARKIT_52` order.

    Returns:
        (..., K) weights; components without an ARKit name get 0, and every component whose
        canonical name matches (e.g. ICT's ``browInnerUp_L`` and ``browInnerUp_R``) gets the
        ARKit weight.
    """
    arkit_weights = np.asarray(arkit_weights, dtype=np.float32)
    if arkit_weights.shape[-1] != len(ARKIT_52):
        raise InputError(f"ARKit weights must be (..., {len(ARKIT_52)}), got {arkit_weights.shape}")
    out = np.zeros(arkit_weights.shape[:-1] + (len(expression_names),), dtype=np.float32)
    mapped = 0
    for k, name in enumerate(expression_names):
        canonical = canonical_arkit_name(name)
        if canonical is not None:
            out[..., k] = arkit_weights[..., ARKIT_52.index(canonical)]
            mapped += 1
    if mapped == 0:
        raise InputError("the face model has no ARKit-named expressions to drive")
    return out

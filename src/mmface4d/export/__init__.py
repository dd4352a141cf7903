"""Deliver animation to engines and tools: glTF morph targets, ARKit CSV, NPZ, PLY/OBJ sequences.

Every writer takes arrays (not a model run) and a path, writes atomically and returns the path.
"""

from mmface4d.export.arkit import (
    ArkitBasis,
    ArkitCsv,
    ArkitSolve,
    arkit_basis,
    read_arkit_csv,
    solve_arkit_weights,
    write_arkit_csv,
)
from mmface4d.export.gltf import (
    GlbAnimation,
    GltfValidatorUnavailable,
    MorphBasis,
    morph_basis,
    read_glb_animation,
    validate_glb,
    write_glb,
)
from mmface4d.export.meshes import (
    AnimationFile,
    read_animation_npz,
    write_animation_npz,
    write_mesh_sequence,
)

__all__ = [
    "AnimationFile",
    "ArkitBasis",
    "ArkitCsv",
    "ArkitSolve",
    "GlbAnimation",
    "GltfValidatorUnavailable",
    "MorphBasis",
    "arkit_basis",
    "morph_basis",
    "read_animation_npz",
    "read_arkit_csv",
    "read_glb_animation",
    "solve_arkit_weights",
    "validate_glb",
    "write_animation_npz",
    "write_arkit_csv",
    "write_glb",
    "write_mesh_sequence",
]

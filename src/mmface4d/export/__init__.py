"""Deliver animation to engines and tools: glTF morph targets, ARKit CSV, NPZ, PLY/OBJ sequences,
and a self-contained HTML viewer of a glTF animation.

Every writer takes arrays (not a model run) and a path, writes atomically and returns the path.
The names below load on first use (:func:`mmface4d._optional.lazy_exports`): a caller that needs
one format (``animate``'s blinks need the ARKit basis) does not import the others' libraries.
"""

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.export.arkit": (
            "ArkitBasis",
            "ArkitCsv",
            "ArkitCsvWriter",
            "ArkitSolve",
            "ArkitSolver",
            "arkit_basis",
            "read_arkit_csv",
            "solve_arkit_weights",
            "write_arkit_csv",
        ),
        "mmface4d.export.gltf": (
            "GlbAnimation",
            "GltfValidatorUnavailable",
            "MorphBasis",
            "morph_basis",
            "read_glb_animation",
            "validate_glb",
            "write_glb",
        ),
        "mmface4d.export.meshes": (
            "AnimationFile",
            "AnimationNpzWriter",
            "MeshSequenceWriter",
            "read_animation_npz",
            "write_animation_npz",
            "write_mesh_sequence",
        ),
        "mmface4d.export.viewer": (
            "ViewerSkippedWarning",
            "three_dir",
            "web_modules_dir",
            "write_viewer",
        ),
    },
)

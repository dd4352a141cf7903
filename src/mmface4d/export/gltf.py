"""Binary glTF 2.0 (.glb) export of a face animation as morph targets plus a weights animation.

Engines guarantee only a handful of simultaneously active morph targets and cap the total at
64-256, so an animation ships as a compact basis of K targets and per-frame weights, never one
target per frame: either the face model's ARKit blendshapes (weights fitted in [0, 1]) or a PCA
of the clip's own vertex offsets (:func:`morph_basis`).

Axes: the project's model frame is x = the subject's left, y = up, z = out of the face (towards
a viewer in front), in metres; glTF's is +Y up, +Z the asset's front (towards the viewer), +X
the asset's left, in metres: the same right-handed frame, so vertices are written unchanged.

Letters: T frames, V vertices, F faces, K morph targets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pygltflib
import torch

from mmface4d import __version__
from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError
from mmface4d.export.arkit import solve_arkit_weights
from mmface4d.geometry.checks import check_faces, check_vertices
from mmface4d.geometry.mesh import vertex_normals

#: Fraction of the clip's offset energy the PCA basis keeps (when ``max_targets`` allows).
PCA_ENERGY = 0.999
#: Folder the Khronos validator is installed under (``npm install --prefix <it> gltf-validator``);
#: override with the environment variable ``MMFACE4D_GLTF_VALIDATOR``.
DEFAULT_VALIDATOR_PREFIX = Path.home() / ".cache" / "mmface4d-gltf-validator"

_EXACT_PCA_MAX_FRAMES = 2048  # above this the PCA uses a randomised range finder
_CHUNK_FRAMES = 256

_FLOAT = pygltflib.FLOAT
_UNSIGNED_INT = pygltflib.UNSIGNED_INT
_COMPONENT_DTYPES = {
    pygltflib.BYTE: np.int8,
    pygltflib.UNSIGNED_BYTE: np.uint8,
    pygltflib.SHORT: np.int16,
    pygltflib.UNSIGNED_SHORT: np.uint16,
    pygltflib.UNSIGNED_INT: np.uint32,
    pygltflib.FLOAT: np.float32,
}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass
class MorphBasis:
    """A compact morph-target basis and the per-frame weights that rebuild an animation.

    ``vertices[t] ~ template + sum_k weights[t, k] * targets[k]``.

    Attributes:
        targets: (K, V, 3) float32 vertex offsets, metres.
        names: K target names.
        weights: (T, K) float32 weights (in [0, 1] for ``"arkit"``, unbounded for ``"pca"``).
        rms_error: root-mean-square over frames and vertices of the reconstruction error
            length, metres.
        max_error: largest per-vertex reconstruction error length over the clip, metres.
        kind: ``"arkit"`` (a named blendshape basis) or ``"pca"`` (the clip's own PCA).
    """

    targets: np.ndarray
    names: list[str]
    weights: np.ndarray
    rms_error: float
    max_error: float
    kind: str

    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[0])


class GlbAnimation(NamedTuple):
    """The morph-target animation read back from a .glb (a tuple, in this order).

    Attributes:
        template: (V, 3) float32 base mesh positions.
        faces: (F, 3) int64 triangles.
        targets: (K, V, 3) float32 morph-target POSITION displacements.
        weights: (T, K) float32 animated weights.
        times: (T,) float32 key times, seconds.
    """

    template: np.ndarray
    faces: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    times: np.ndarray


class GltfValidatorUnavailable(RuntimeError):
    """Node.js or the ``gltf-validator`` npm package is not installed."""


def _pca_basis(flat: np.ndarray, max_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated uncentred SVD of (T, N) offsets: (K, N) targets and (T, K) weights."""
    T = flat.shape[0]
    total = float(np.square(flat, dtype=np.float64).sum())
    if total == 0.0:  # a still face: one zero target keeps the file well formed
        return np.zeros((1, flat.shape[1]), np.float32), np.zeros((T, 1), np.float32)
    if T <= _EXACT_PCA_MAX_FRAMES:
        gram = (flat @ flat.T).astype(np.float64)  # (T, T)
        energies, left = np.linalg.eigh(gram)
        energies, left = energies[::-1], left[:, ::-1]
    else:  # randomised range finder (Halko et al. 2011) with power iterations
        rank = min(max_targets + 16, T)
        rng = np.random.default_rng(0)
        basis = flat @ rng.standard_normal((flat.shape[1], rank)).astype(flat.dtype)
        for _ in range(3):
            basis, _r = np.linalg.qr(basis)
            basis = flat @ (flat.T @ basis)
        basis, _r = np.linalg.qr(basis.astype(np.float64))
        small_left, singular, _vt = np.linalg.svd(basis.T @ flat, full_matrices=False)
        left, energies = basis @ small_left, singular.astype(np.float64) ** 2
    energies = np.clip(energies, 0.0, None)
    captured = np.cumsum(energies) / total
    count = int(np.searchsorted(captured, PCA_ENERGY - 1e-12) + 1)
    count = max(1, min(count, max_targets, int((energies > 1e-12 * energies[0]).sum())))
    left = left[:, :count]
    scale = np.sqrt(T)
    weights = (left * scale).astype(np.float32)  # unit RMS per component
    targets = ((left.T.astype(flat.dtype) @ flat) / scale).astype(np.float32)  # s_k v_k / sqrt(T)
    signs = np.sign(targets[np.arange(count), np.abs(targets).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return targets * signs[:, None], weights * signs[None, :]


def _reconstruction_errors(
    flat: np.ndarray, weights: np.ndarray, targets: np.ndarray
) -> tuple[float, float]:
    """RMS and max per-vertex error length of ``weights @ targets`` against (T, 3V) ``flat``."""
    squared_sum, worst = 0.0, 0.0
    flat_targets = targets.reshape(targets.shape[0], -1).astype(np.float64)
    for start in range(0, flat.shape[0], _CHUNK_FRAMES):
        block = slice(start, start + _CHUNK_FRAMES)
        residual = flat[block].astype(np.float64) - weights[block].astype(np.float64) @ flat_targets
        lengths = np.square(residual).reshape(residual.shape[0], -1, 3).sum(axis=2)
        squared_sum += float(lengths.sum())
        worst = max(worst, float(lengths.max()))
    vertices = flat.shape[1] // 3
    return float(np.sqrt(squared_sum / (flat.shape[0] * vertices))), float(np.sqrt(worst))


def morph_basis(
    offsets: np.ndarray,
    named_basis: np.ndarray | None = None,
    names: list[str] | None = None,
    max_targets: int = 64,
) -> MorphBasis:
    """Express an animation's vertex offsets as K morph targets and (T, K) weights.

    With ``named_basis`` (e.g. :func:`~mmface4d.export.arkit.arkit_basis`'s targets), the weights
    are fitted in [0, 1] by :func:`~mmface4d.export.arkit.solve_arkit_weights`. Without, the
    targets are the leading components of an uncentred PCA (SVD) of the (T, 3V) offsets, so that
    weight 0 is the template: the fewest components whose squared singular values reach
    :data:`PCA_ENERGY` (99.9 %) of the offsets' total squared norm, at most ``max_targets``.
    Target k is ``s_k v_k / sqrt(T)`` and its weights ``sqrt(T) u_k`` (unit RMS over the clip),
    i.e. the least-squares coefficients of the offsets on the orthogonal targets.

    Args:
        offsets: (T, V, 3) vertex offsets from the template, metres.
        named_basis: (K, V, 3) named blendshape targets, or None for PCA.
        names: K target names (required with ``named_basis``).
        max_targets: most targets (engines often cap morph targets at 64).

    Returns:
        :class:`MorphBasis` with the reconstruction's RMS and max error.
    """
    offsets = check_vertices(np.asarray(offsets, dtype=np.float32), "offsets")
    if max_targets < 1:
        raise InputError(f"max_targets must be >= 1, got {max_targets}")
    T, V, _ = offsets.shape
    flat = offsets.reshape(T, V * 3)
    if named_basis is not None:
        targets = np.asarray(named_basis, dtype=np.float32)
        if names is None or len(names) != len(targets):
            raise InputError(
                f"names must give one name per named_basis target ({len(targets)}), got "
                f"{None if names is None else len(names)}"
            )
        if len(targets) > max_targets:
            raise InputError(
                f"named_basis has {len(targets)} targets, more than max_targets={max_targets}"
            )
        weights = solve_arkit_weights(offsets, targets).weights
        kind, names = "arkit", [str(n) for n in names]
    else:
        targets_flat, weights = _pca_basis(flat, max_targets)
        targets = targets_flat.reshape(-1, V, 3)
        kind, names = "pca", [f"pca_{k:02d}" for k in range(len(targets))]
    rms_error, max_error = _reconstruction_errors(flat, weights, targets)
    return MorphBasis(targets, names, weights, rms_error, max_error, kind)


class _BinaryBuilder:
    """Collects accessors and their bytes into one 4-byte-aligned glTF buffer."""

    def __init__(self, gltf: pygltflib.GLTF2):
        self.gltf = gltf
        self.chunks: list[bytes] = []
        self.length = 0

    def add(
        self,
        array: np.ndarray,
        accessor_type: str,
        target: int | None = None,
        with_bounds: bool = False,
    ) -> int:
        """Append ``array`` (float32 or uint32) as a buffer view and accessor; its index."""
        component = _FLOAT if array.dtype == np.float32 else _UNSIGNED_INT
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        self.gltf.bufferViews.append(
            pygltflib.BufferView(
                buffer=0, byteOffset=self.length, byteLength=len(data), target=target
            )
        )
        self.chunks.append(data + b"\0" * (-len(data) % 4))
        self.length += len(self.chunks[-1])
        width = _TYPE_SIZES[accessor_type]
        rows = array.reshape(-1, width)
        accessor = pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1,
            componentType=component,
            count=len(rows),
            type=accessor_type,
        )
        if with_bounds:
            accessor.min = [float(v) for v in rows.min(axis=0)]
            accessor.max = [float(v) for v in rows.max(axis=0)]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def _check_mesh(template: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    template = np.asarray(template, dtype=np.float32)
    if template.ndim != 2 or template.shape[1] != 3 or len(template) < 3:
        raise InputError(f"template must be (V, 3) with V >= 3, got {template.shape}")
    if not np.isfinite(template).all():
        raise InputError("template contains NaN or infinite values")
    return template, check_faces(faces, len(template))


def _unit_normals(template: np.ndarray, faces: np.ndarray) -> np.ndarray:
    normals = vertex_normals(torch.from_numpy(template), torch.from_numpy(faces)).numpy()
    normals = normals.astype(np.float64)
    length = np.linalg.norm(normals, axis=1)
    normals[length < 0.5] = (0.0, 0.0, 1.0)  # isolated vertices: glTF needs unit normals
    return (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)


def write_glb(
    path: str | Path,
    template: np.ndarray,
    faces: np.ndarray,
    basis: MorphBasis,
    fps: float,
    vertex_colors: np.ndarray | None = None,
    name: str = "face",
) -> Path:
    """Write a morph-target animation as one binary glTF 2.0 file.

    The file holds one mesh with one triangle primitive (POSITION with min/max, unit NORMAL of
    the template, optional COLOR_0, UNSIGNED_INT indices), K morph targets (POSITION
    displacements, VEC3 FLOAT with min/max) named in ``mesh.extras.targetNames``, default
    weights 0, one node and scene, and one animation whose single channel drives the node's
    ``weights``: key ``t`` at ``t / fps`` seconds, output ``T * K`` floats, LINEAR.

    Args:
        path: output ``.glb`` path, written atomically.
        template: (V, 3) neutral vertices, metres, the model frame (which is glTF's).
        faces: (F, 3) triangles, counter-clockwise seen from outside.
        basis: the morph targets and weights (:func:`morph_basis`).
        fps: frame rate of the weights, > 0.
        vertex_colors: (V, 3) float RGB in [0, 1] (or uint8), or None.
        name: name of the mesh, node and animation.

    Returns:
        ``path``.
    """
    template, faces = _check_mesh(template, faces)
    V = len(template)
    targets = np.asarray(basis.targets, dtype=np.float32)
    weights = np.asarray(basis.weights, dtype=np.float32)
    if targets.ndim != 3 or targets.shape[1:] != (V, 3) or len(targets) == 0:
        raise InputError(f"basis.targets must be (K, {V}, 3) with K >= 1, got {targets.shape}")
    K = len(targets)
    if weights.ndim != 2 or weights.shape[1] != K or len(weights) == 0:
        raise InputError(f"basis.weights must be (T, {K}) with T >= 1, got {weights.shape}")
    if len(basis.names) != K:
        raise InputError(f"basis.names must have {K} names, got {len(basis.names)}")
    if not (np.isfinite(targets).all() and np.isfinite(weights).all()):
        raise InputError("basis targets or weights contain NaN or infinite values")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps}")
    times = (np.arange(len(weights), dtype=np.float64) / fps).astype(np.float32)
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise InputError(f"{len(times)} frames at {fps} fps give non-increasing float32 times")

    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator=f"mmface4d {__version__}"))
    gltf.buffers.append(pygltflib.Buffer())
    binary = _BinaryBuilder(gltf)
    attributes = pygltflib.Attributes(
        POSITION=binary.add(template, "VEC3", pygltflib.ARRAY_BUFFER, with_bounds=True),
        NORMAL=binary.add(_unit_normals(template, faces), "VEC3", pygltflib.ARRAY_BUFFER),
    )
    if vertex_colors is not None:
        colors = np.asarray(vertex_colors)
        if colors.shape != (V, 3):
            raise InputError(f"vertex_colors must be ({V}, 3), got {colors.shape}")
        colors = colors / 255.0 if colors.dtype == np.uint8 else colors.astype(np.float64)
        if not np.isfinite(colors).all() or colors.min() < 0 or colors.max() > 1:
            raise InputError("vertex_colors must be finite RGB values in [0, 1]")
        attributes.COLOR_0 = binary.add(colors.astype(np.float32), "VEC3", pygltflib.ARRAY_BUFFER)
    indices = binary.add(
        faces.astype(np.uint32).reshape(-1), "SCALAR", pygltflib.ELEMENT_ARRAY_BUFFER
    )
    morph_targets = [
        pygltflib.Attributes(
            POSITION=binary.add(target, "VEC3", pygltflib.ARRAY_BUFFER, with_bounds=True)
        )
        for target in targets
    ]
    key_times = binary.add(times, "SCALAR", with_bounds=True)
    key_weights = binary.add(weights.reshape(-1), "SCALAR")

    primitive = pygltflib.Primitive(
        attributes=attributes, indices=indices, mode=pygltflib.TRIANGLES, targets=morph_targets
    )
    gltf.meshes.append(
        pygltflib.Mesh(
            name=name,
            primitives=[primitive],
            weights=[0.0] * K,
            extras={"targetNames": [str(n) for n in basis.names]},
        )
    )
    gltf.nodes.append(pygltflib.Node(name=name, mesh=0))
    gltf.scenes.append(pygltflib.Scene(nodes=[0]))
    gltf.scene = 0
    sampler = pygltflib.AnimationSampler(
        input=key_times, output=key_weights, interpolation="LINEAR"
    )
    channel = pygltflib.AnimationChannel(
        sampler=0, target=pygltflib.AnimationChannelTarget(node=0, path="weights")
    )
    gltf.animations.append(pygltflib.Animation(name=name, samplers=[sampler], channels=[channel]))
    gltf.extras = {"fps": float(fps), "morph_basis": basis.kind}
    blob = binary.blob()
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(blob)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            for part in gltf.save_to_bytes():
                f.write(part)
    return Path(path)


def _read_accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """(count, width) array of accessor ``index`` (no sparse accessors)."""
    accessor = gltf.accessors[index]
    if accessor.bufferView is None or accessor.sparse is not None:
        raise InputError(f"accessor {index}: sparse or view-less accessors are not supported")
    view = gltf.bufferViews[accessor.bufferView]
    dtype = np.dtype(_COMPONENT_DTYPES[accessor.componentType]).newbyteorder("<")
    width = _TYPE_SIZES[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    stride = view.byteStride or dtype.itemsize * width
    raw = np.frombuffer(blob, dtype=np.uint8, count=view.byteLength, offset=view.byteOffset or 0)
    rows = np.lib.stride_tricks.as_strided(
        raw[start - (view.byteOffset or 0) :],
        shape=(accessor.count, dtype.itemsize * width),
        strides=(stride, 1),
    )
    return np.ascontiguousarray(rows).view(dtype).reshape(accessor.count, width)


def read_glb_animation(path: str | Path) -> GlbAnimation:
    """Read the first mesh's morph targets and the first ``weights`` animation of a .glb.

    Args:
        path: a binary glTF file such as :func:`write_glb` writes.

    Returns:
        :class:`GlbAnimation` ``(template (V, 3), faces (F, 3), targets (K, V, 3),
        weights (T, K), times (T,))``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such .glb file")
    try:
        gltf = pygltflib.GLTF2.load_binary(path)
    except Exception as exc:  # pygltflib raises assorted types on a bad header
        raise InputError(f"{path}: not a binary glTF file ({exc})") from exc
    blob = None if gltf is None else gltf.binary_blob()
    if blob is None or not gltf.meshes:
        raise InputError(f"{path}: expected a .glb with a mesh and a binary chunk")
    primitive = gltf.meshes[0].primitives[0]
    template = _read_accessor(gltf, blob, primitive.attributes.POSITION).astype(np.float32)
    if primitive.indices is None:
        faces = np.arange(len(template), dtype=np.int64).reshape(-1, 3)
    else:
        faces = _read_accessor(gltf, blob, primitive.indices).astype(np.int64).reshape(-1, 3)
    target_accessors = [  # pygltflib reads targets back as plain dicts
        t["POSITION"] if isinstance(t, dict) else t.POSITION for t in primitive.targets or []
    ]
    K = len(target_accessors)
    targets = np.zeros((K, len(template), 3), dtype=np.float32)
    for k, accessor in enumerate(target_accessors):
        targets[k] = _read_accessor(gltf, blob, accessor)
    for animation in gltf.animations:
        for channel in animation.channels:
            if channel.target.path == "weights":
                sampler = animation.samplers[channel.sampler]
                times = _read_accessor(gltf, blob, sampler.input).reshape(-1)
                weights = _read_accessor(gltf, blob, sampler.output).reshape(len(times), K)
                return GlbAnimation(template, faces, targets, weights, times)
    raise InputError(f"{path}: no animation channel drives morph-target weights")


def validate_glb(path: str | Path, validator_prefix: str | Path | None = None) -> dict[str, Any]:
    """Run the Khronos glTF validator (npm ``gltf-validator``) on a file through Node.js.

    Install once, outside any repository:
    ``npm install --prefix ~/.cache/mmface4d-gltf-validator gltf-validator``.

    Args:
        path: the ``.glb`` (or ``.gltf``) file.
        validator_prefix: the npm prefix holding ``node_modules/gltf-validator``; default
            ``$MMFACE4D_GLTF_VALIDATOR`` or :data:`DEFAULT_VALIDATOR_PREFIX`.

    Returns:
        The validator's report as a dict; ``report["issues"]["numErrors"]`` is 0 for a valid
        file.

    Raises:
        GltfValidatorUnavailable: ``node`` is not on PATH or the package is not installed.
        RuntimeError: the validator itself failed (its message is included).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such glTF file to validate")
    node = shutil.which("node")
    if node is None:
        raise GltfValidatorUnavailable("glTF validation needs Node.js: `node` is not on PATH")
    prefix = Path(
        validator_prefix or os.environ.get("MMFACE4D_GLTF_VALIDATOR") or DEFAULT_VALIDATOR_PREFIX
    ).expanduser()
    package = prefix / "node_modules" / "gltf-validator"
    if not (package / "package.json").is_file():
        raise GltfValidatorUnavailable(
            f"the gltf-validator npm package is not installed under {prefix}; install it with: "
            f"npm install --prefix {prefix} gltf-validator"
        )
    script = (
        "const validator = require(process.argv[1]);"
        "const bytes = new Uint8Array(require('fs').readFileSync(process.argv[2]));"
        "validator.validateBytes(bytes, {maxIssues: 1000})"
        ".then((report) => process.stdout.write(JSON.stringify(report)))"
        ".catch((error) => { console.error(String(error)); process.exit(2); });"
    )
    done = subprocess.run(
        [node, "-e", script, str(package.resolve()), str(path.resolve())],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"gltf-validator failed on {path} (exit {done.returncode}): {done.stderr.strip()}"
        )
    return json.loads(done.stdout)

"""The face-model abstraction every stage stands on: a linear 3D morphable model.

A :class:`FaceModel` holds a mean shape, identity and expression bases, an albedo model, the
triangles, 68 iBUG landmark vertices and named vertex regions. Shapes use the project's letter
scheme: B batch, V vertices, F faces, K components.

Vertices are in metres unless ``unit`` says otherwise; every source converts at its boundary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

#: Axis convention of every model the project builds (sources convert to it).
AXES = "x: subject's left, y: up, z: out of the face (towards a viewer in front)"

_ARRAY_FIELDS = (
    "mean",
    "faces",
    "identity_basis",
    "expression_basis",
    "albedo_mean",
    "albedo_basis",
    "landmarks",
)


@dataclass
class FaceModel:
    """A linear face model: ``mean + identity_basis . alpha + expression_basis . beta``.

    Attributes:
        name: short name of the model (``synth``, ``bfm``, ``ict`` ...).
        mean: (V, 3) float32 mean (neutral) shape.
        faces: (F, 3) int64 triangles, counter-clockwise seen from outside.
        identity_basis: (K_id, V, 3) float32; coefficient 1 is one standard deviation.
        expression_basis: (K_exp, V, 3) float32; a blendshape delta per component.
        expression_names: K_exp names (ARKit-style names where the source has them).
        albedo_mean: (V, 3) float32 RGB albedo in [0, 1].
        albedo_basis: (K_alb, V, 3) float32 albedo variation, coefficient 1 = one std.
        landmarks: (68,) int64 vertex indices of the iBUG 68 landmarks (0-based).
        regions: name -> sorted int64 vertex indices; at least ``lip``, ``upper_face``,
            ``face`` and ``eyes``.
        unit: length unit of the vertices (``"m"``).
        metadata: free JSON-serialisable facts (source, axes, region rules, ...).
    """

    name: str
    mean: np.ndarray
    faces: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: list[str]
    albedo_mean: np.ndarray
    albedo_basis: np.ndarray
    landmarks: np.ndarray
    regions: dict[str, np.ndarray]
    unit: str = "m"
    metadata: dict[str, Any] = field(default_factory=dict)
    _torch_cache: dict[tuple[str, torch.dtype], dict[str, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        self.identity_basis = np.ascontiguousarray(self.identity_basis, dtype=np.float32)
        self.expression_basis = np.ascontiguousarray(self.expression_basis, dtype=np.float32)
        self.albedo_mean = np.ascontiguousarray(self.albedo_mean, dtype=np.float32)
        self.albedo_basis = np.ascontiguousarray(self.albedo_basis, dtype=np.float32)
        self.landmarks = np.ascontiguousarray(self.landmarks, dtype=np.int64)
        self.regions = {k: _sorted_unique(v) for k, v in self.regions.items()}
        self.expression_names = [str(n) for n in self.expression_names]
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def identity_dims(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def expression_dims(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def albedo_dims(self) -> int:
        return int(self.albedo_basis.shape[0])

    def validate(self) -> None:
        """Check every array's shape and range; raise :class:`InputError` naming the field."""
        V = self.mean.shape[0] if self.mean.ndim == 2 else -1
        if self.mean.ndim != 2 or self.mean.shape[1] != 3 or V < 3:
            raise InputError(f"face model {self.name}: mean must be (V, 3), got {self.mean.shape}")
        for name in ("identity_basis", "expression_basis", "albedo_basis"):
            arr = getattr(self, name)
            if arr.ndim != 3 or arr.shape[1:] != (V, 3):
                raise InputError(
                    f"face model {self.name}: {name} must be (K, {V}, 3), got {arr.shape}"
                )
        if self.albedo_mean.shape != (V, 3):
            raise InputError(
                f"face model {self.name}: albedo_mean must be ({V}, 3), "
                f"got {self.albedo_mean.shape}"
            )
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise InputError(
                f"face model {self.name}: faces must be (F, 3), got {self.faces.shape}"
            )
        if self.faces.min() < 0 or self.faces.max() >= V:
            raise InputError(
                f"face model {self.name}: faces index vertices "
                f"{self.faces.min()}..{self.faces.max()}, expected 0..{V - 1}"
            )
        if len(self.expression_names) != self.expression_dims:
            raise InputError(
                f"face model {self.name}: {len(self.expression_names)} expression names for "
                f"{self.expression_dims} expression components"
            )
        if len(set(self.expression_names)) != len(self.expression_names):
            raise InputError(f"face model {self.name}: expression names are not unique")
        if self.landmarks.shape != (68,) or self.landmarks.min() < 0 or self.landmarks.max() >= V:
            raise InputError(
                f"face model {self.name}: landmarks must be 68 vertex indices in 0..{V - 1}, "
                f"got shape {self.landmarks.shape}"
            )
        for region, idx in self.regions.items():
            if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= V:
                raise InputError(
                    f"face model {self.name}: region {region!r} must be non-empty vertex indices "
                    f"in 0..{V - 1}"
                )
        for name in ("mean", "identity_basis", "expression_basis", "albedo_mean", "albedo_basis"):
            if not np.isfinite(getattr(self, name)).all():
                raise InputError(f"face model {self.name}: {name} holds NaN or infinite values")

    # ------------------------------------------------------------------ evaluation
    def _buffers(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._torch_cache:
            self._torch_cache[key] = {
                name: torch.as_tensor(getattr(self, name), device=device, dtype=dtype)
                for name in ("mean", "identity_basis", "expression_basis")
            }
        return self._torch_cache[key]

    def vertices(
        self,
        identity: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Evaluate the model; differentiable in every input.

        Args:
            identity: (B, K_id) or (K_id,) coefficients, or None for zeros. May hold fewer than
                K_id columns: the first ones are used.
            expression: (B, K_exp) or (K_exp,) coefficients, or None for zeros (same rule).
            offsets: (B, V, 3) or (V, 3) per-vertex offsets added last, or None.

        Returns:
            (B, V, 3) vertices on the inputs' device and dtype (float32 when all are None);
            (V, 3) when every given input is unbatched.
        """
        given = [t for t in (identity, expression, offsets) if t is not None]
        for t in given:
            if not isinstance(t, torch.Tensor):
                raise InputError(
                    f"vertices(): inputs must be torch tensors, got {type(t).__name__}"
                )
        device = given[0].device if given else torch.device("cpu")
        dtype = given[0].dtype if given else torch.float32
        unbatched = bool(given) and all(t.dim() == (2 if t is offsets else 1) for t in given)
        buf = self._buffers(device, dtype)
        out = buf["mean"].unsqueeze(0)
        batch = 1
        for coeffs, basis_name, label in (
            (identity, "identity_basis", "identity"),
            (expression, "expression_basis", "expression"),
        ):
            if coeffs is None:
                continue
            coeffs = coeffs.unsqueeze(0) if coeffs.dim() == 1 else coeffs
            basis = buf[basis_name]
            if coeffs.dim() != 2 or coeffs.shape[1] > basis.shape[0]:
                raise InputError(
                    f"{label} coefficients must be (B, <= {basis.shape[0]}), "
                    f"got {tuple(coeffs.shape)}"
                )
            if not torch.isfinite(coeffs).all():
                raise InputError(f"{label} coefficients hold NaN or infinite values")
            batch = _broadcast_batch(batch, coeffs.shape[0], label)
            out = out + torch.einsum("bk,kvc->bvc", coeffs, basis[: coeffs.shape[1]])
        if offsets is not None:
            offsets = offsets.unsqueeze(0) if offsets.dim() == 2 else offsets
            if offsets.dim() != 3 or offsets.shape[1:] != (self.num_vertices, 3):
                raise InputError(
                    f"offsets must be (B, {self.num_vertices}, 3), got {tuple(offsets.shape)}"
                )
            batch = _broadcast_batch(batch, offsets.shape[0], "offsets")
            out = out + offsets
        out = out.expand(batch, -1, -1)
        return out[0] if unbatched else out

    def albedo(self, coefficients: torch.Tensor | None = None) -> torch.Tensor:
        """Per-vertex albedo.

        Args:
            coefficients: (B, K_alb) or None.

        Returns:
            (B, V, 3) RGB albedo (B = 1 when ``coefficients`` is None), not clamped.
        """
        if coefficients is None:
            return torch.as_tensor(self.albedo_mean).unsqueeze(0)
        if coefficients.dim() != 2 or coefficients.shape[1] > self.albedo_dims:
            raise InputError(
                f"albedo coefficients must be (B, <= {self.albedo_dims}), "
                f"got {tuple(coefficients.shape)}"
            )
        mean = torch.as_tensor(
            self.albedo_mean, device=coefficients.device, dtype=coefficients.dtype
        )
        basis = torch.as_tensor(
            self.albedo_basis[: coefficients.shape[1]],
            device=coefficients.device,
            dtype=coefficients.dtype,
        )
        return mean.unsqueeze(0) + torch.einsum("bk,kvc->bvc", coefficients, basis)

    def expression_index(self, name: str) -> int:
        """Index of a named expression component; :class:`InputError` lists the valid names."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise InputError(
                f"unknown expression {name!r} for face model {self.name}; "
                f"expected one of: {', '.join(self.expression_names)}"
            ) from None

    def expression_vector(self, weights: dict[str, float]) -> np.ndarray:
        """(K_exp,) float32 coefficients from ``{name: weight}``; unknown names raise."""
        vec = np.zeros(self.expression_dims, dtype=np.float32)
        for name, w in weights.items():
            if not np.isfinite(w):
                raise InputError(f"expression {name}: weight must be finite, got {w}")
            vec[self.expression_index(name)] = w
        return vec

    # ------------------------------------------------------------------ summary and I/O
    def info(self) -> dict[str, Any]:
        """JSON-ready summary (the output of ``mmface4d facemodel info``)."""
        return {
            "name": self.name,
            "vertices": self.num_vertices,
            "faces": int(len(self.faces)),
            "identity_dims": self.identity_dims,
            "expression_dims": self.expression_dims,
            "albedo_dims": self.albedo_dims,
            "expression_names": list(self.expression_names),
            "landmarks": int(len(self.landmarks)),
            "regions": {k: int(len(v)) for k, v in sorted(self.regions.items())},
            "unit": self.unit,
            "metadata": self.metadata,
        }

    def save(self, path: str | Path, compressed: bool = True) -> Path:
        """Write the model to one ``.npz`` file (atomically) that :func:`load` reads back.

        Args:
            path: the ``.npz`` file.
            compressed: deflate the arrays (smaller; uncompressed files read several times
                faster, as the on-disk cache of :func:`mmface4d.facemodel.synth.cached_synth_face`
                keeps them).
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"{path}: a face model is saved as .npz, got suffix {path.suffix!r}")
        arrays: dict[str, Any] = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        for region, idx in self.regions.items():
            arrays[f"region/{region}"] = idx
        header = {
            "format": "mmface4d.facemodel",
            "version": 1,
            "name": self.name,
            "unit": self.unit,
            "expression_names": self.expression_names,
            "metadata": self.metadata,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FaceModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: face model file not found")
        try:
            data = np.load(path, allow_pickle=False)
            header = json.loads(bytes(data["header"]).decode())
        except Exception as exc:  # noqa: BLE001 - any failure means "not our format"
            raise InputError(f"{path}: not a mmface4d face model file ({exc})") from None
        if header.get("format") != "mmface4d.facemodel":
            raise InputError(
                f"{path}: not a mmface4d face model file (header {header.get('format')})"
            )
        missing = [name for name in _ARRAY_FIELDS if name not in data]
        if missing:
            raise InputError(f"{path}: face model file lacks arrays {missing}")
        regions = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("region/")}
        return cls(
            name=header["name"],
            expression_names=header["expression_names"],
            regions=regions,
            unit=header["unit"],
            metadata=header.get("metadata", {}),
            **{name: data[name] for name in _ARRAY_FIELDS},
        )


def _sorted_unique(indices: Any) -> np.ndarray:
    """``np.unique`` of int64 indices; one already strictly increasing (a saved model's regions)
    is kept as it is, without the sort (and without the first ``np.unique``'s import of
    ``numpy.ma``)."""
    values = np.array(indices, dtype=np.int64)  # a copy, as np.unique's
    if values.ndim == 1 and bool((values[1:] > values[:-1]).all()):
        return values
    return np.unique(values)


def _broadcast_batch(current: int, new: int, label: str) -> int:
    if current in (1, new):
        return new
    if new == 1:
        return current
    raise InputError(f"{label}: batch size {new} does not match the other inputs' batch {current}")

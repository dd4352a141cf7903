"""The procedural default face: a front-of-head mesh built by the project's own code.

No download, deterministic, well under a second. The skin is a grid over a head-shaped surface
(horizontal sections are ellipses whose width and depth follow adult face proportions; see
docs/FORMATS.md, "Face proportions") with the facial features added as smooth displacements.
The grid is cut along the lip line and the eye openings, so the upper and lower lips (and lids)
are separate surfaces: the mouth really opens and the lids really close. Behind the cuts sit the
mouth interior (a dark cavity, inner lips, upper and lower teeth, a tongue) and two eyeballs with
irises in dark sockets. Expressions (ARKit-52) and identity components are built in
:mod:`mmface4d.facemodel.synth_shapes`.

Coordinates: metres, x = subject's left, y = up, z = out of the face; the origin is on the head's
vertical axis at about cheekbone height.

Building it takes a few tenths of a second; :func:`cached_synth_face` (what the ``synth`` spec of
:func:`~mmface4d.facemodel.sources.load_face_model` loads) keeps each build in an on-disk cache,
``$MMFACE4D_CACHE_DIR`` (default ``$XDG_CACHE_HOME/mmface4d``, else ``~/.cache/mmface4d``;
``off`` disables it), one file per set of options (about 12 MB), keyed by the face model code
and the numpy version, so that later processes read the same arrays instead of computing them
again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mmface4d import __version__
from mmface4d.cache import cache_root
from mmface4d.errors import InputError
from mmface4d.facemodel.model import AXES, FaceModel
from mmface4d.facemodel.regions import landmark_regions
from mmface4d.settings import coerce

# Feature heights (m): the face's vertical thirds and the features on them.
Y_TOP, Y_BOTTOM = 0.112, -0.106
Y_BROW, Y_EYE, Y_NOSE_TIP, Y_SUBNASALE, Y_MOUTH, Y_CHIN = (
    0.042,
    0.025,
    -0.012,
    -0.022,
    -0.042,
    -0.090,
)
EYE_X, EYE_HALF_WIDTH = 0.032, 0.0145  # eye centre offset from the midline; half the opening
MOUTH_HALF_WIDTH = 0.025
EYE_OPEN_UP, EYE_OPEN_DOWN = 0.0047, 0.0036  # lid displacement that opens the eye at rest
EYEBALL_RADIUS = 0.0125
EYEBALL_RADII = np.array([0.0135, EYEBALL_RADIUS, EYEBALL_RADIUS])  # wide: fills the opening
HINGE = np.array([0.0, -0.004, 0.012])  # jaw rotation axis point (axis along x)

# Cross-section profile of the head: half-width W(y) and frontal depth D(y), metres.
_PROFILE_Y = np.array([0.112, 0.09, 0.06, 0.03, 0.0, -0.03, -0.05, -0.07, -0.085, -0.097, -0.106])
_PROFILE_W = np.array([0.056, 0.064, 0.068, 0.069, 0.070, 0.066, 0.061, 0.052, 0.040, 0.026, 0.012])
_PROFILE_D = np.array([0.070, 0.082, 0.088, 0.089, 0.090, 0.089, 0.088, 0.087, 0.084, 0.074, 0.056])

PARTS = (
    "skin",
    "inner_lip",
    "mouth_cavity",
    "teeth_upper",
    "teeth_lower",
    "tongue",
    "eye_socket",
    "eyeball_left",
    "eyeball_right",
)


@dataclass
class SynthFaceConfig:
    """Options of the procedural face (``synth:key=value,...``)."""

    grid_columns: int = 84
    """Skin grid columns across the face (rows follow); 84 gives about 10k vertices."""
    eyeball_segments: int = 14
    """Latitude segments of each eyeball sphere (longitude uses twice as many)."""

    @classmethod
    def from_options(cls, options: dict[str, str]) -> SynthFaceConfig:
        """Build from ``{"grid_columns": "96"}``; ``vertices=N`` picks the grid for ~N vertices."""
        known = {f.name for f in fields(cls)}
        config = cls()
        for key, value in options.items():
            number = coerce(value, int, f"synth option {key}")
            if key == "vertices":
                if not 5000 <= number <= 15000:
                    raise InputError(f"synth option vertices={number}: expected 5000..15000")
                config.grid_columns = int(round(84 * np.sqrt(number / 10000)))
            elif key in known:
                setattr(config, key, number)
            else:
                raise InputError(
                    f"unknown synth option {key!r}; expected vertices, {', '.join(sorted(known))}"
                )
        if not 40 <= config.grid_columns <= 140:
            raise InputError(f"synth grid_columns={config.grid_columns}: expected 40..140")
        if not 8 <= config.eyeball_segments <= 40:
            raise InputError(f"synth eyeball_segments={config.eyeball_segments}: expected 8..40")
        return config


@dataclass
class SynthMesh:
    """The neutral synth mesh before its bases are built.

    Attributes:
        vertices: (V, 3) neutral positions.
        faces: (F, 3) triangles.
        part: (V,) index into :data:`PARTS` per vertex.
        lower: (V,) True for vertices that move with the lower lip / lower lid side of a cut.
        eye_side: (V,) +1 near/of the left eye (x > 0), -1 right, 0 elsewhere (lids, eyeballs).
        landmarks: (68,) iBUG landmark vertex indices.
        eyeball_centres: (2, 3) centres of the right (x < 0) and left eyeballs.
    """

    vertices: np.ndarray
    faces: np.ndarray
    part: np.ndarray
    lower: np.ndarray
    eye_side: np.ndarray
    landmarks: np.ndarray
    eyeball_centres: np.ndarray
    parts: tuple[str, ...] = field(default=PARTS)


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return np.exp(-(((x - cx) / rx) ** 2) - ((y - cy) / ry) ** 2)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _feature_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward displacement (m) of the facial features at frontal position (x, y)."""
    ax = np.abs(x)
    # Nose: a ridge from the nasion to the tip, widening to the alae, then the columella.
    t = np.clip((0.030 - y) / (0.030 - Y_NOSE_TIP), 0.0, None)  # 0 at nasion, 1 at the tip
    ridge_h = np.where(t <= 1.0, 0.006 + 0.017 * t**1.4, 0.023 * np.exp(-(((t - 1.0) / 0.28) ** 2)))
    ridge_w = 0.0075 + 0.006 * np.clip(t, 0, 1.25)
    nose = ridge_h * np.exp(-((x / ridge_w) ** 2)) * (y < 0.034)
    nose *= _smoothstep((y - (Y_SUBNASALE - 0.006)) / 0.006)
    alae = 0.009 * (
        _gauss(x, y, 0.014, -0.016, 0.0065, 0.0055) + _gauss(x, y, -0.014, -0.016, 0.0065, 0.0055)
    )
    # Eye sockets, brow ridge, cheekbones.
    sockets = sum(
        -0.011 * _gauss(x, y, side * EYE_X, Y_EYE + 0.001, 0.021, 0.0135)
        + 0.0045 * _gauss(x, y, side * EYE_X, Y_EYE, 0.011, 0.0075)  # lids over the eyeball
        for side in (-1, 1)
    )
    brow = (
        0.005 * np.exp(-(((y - (Y_BROW + 0.004)) / 0.009) ** 2)) * _smoothstep((0.058 - ax) / 0.02)
    )
    cheekbones = 0.006 * (
        _gauss(x, y, 0.050, -0.004, 0.018, 0.016) + _gauss(x, y, -0.050, -0.004, 0.018, 0.016)
    )
    temples = -0.005 * (
        _gauss(x, y, 0.062, 0.045, 0.012, 0.025) + _gauss(x, y, -0.062, 0.045, 0.012, 0.025)
    )
    # Mouth: the dental arch under the lips, lips, philtrum, sulcus, chin.
    muzzle = 0.011 * _gauss(x, y, 0.0, Y_MOUTH - 0.002, 0.034, 0.030)
    lip_taper = _smoothstep((MOUTH_HALF_WIDTH + 0.002 - ax) / 0.012)
    upper_lip = 0.0045 * np.exp(-(((y - (Y_MOUTH + 0.0045)) / 0.0042) ** 2)) * lip_taper
    lower_lip = 0.0040 * np.exp(-(((y - (Y_MOUTH - 0.0055)) / 0.0048) ** 2)) * lip_taper
    philtrum = -0.0012 * _gauss(x, y, 0.0, Y_MOUTH + 0.013, 0.0035, 0.006)
    sulcus = -0.0035 * _gauss(x, y, 0.0, Y_MOUTH - 0.017, 0.02, 0.005)
    chin = 0.0065 * _gauss(x, y, 0.0, Y_CHIN + 0.016, 0.017, 0.013)
    nasolabial = -0.0018 * (
        _gauss(x, y, 0.027, -0.030, 0.004, 0.014) + _gauss(x, y, -0.027, -0.030, 0.004, 0.014)
    )
    return (
        nose
        + alae
        + sockets
        + brow
        + cheekbones
        + temples
        + muzzle
        + upper_lip
        + lower_lip
        + philtrum
        + sulcus
        + chin
        + nasolabial
    )


def _grid_rows(n_rows: int) -> np.ndarray:
    """Row heights, top to bottom, denser at the mouth and eyes; rows hit Y_MOUTH and Y_EYE."""
    fine = np.linspace(Y_TOP, Y_BOTTOM, 4000)
    density = (
        1.0
        + 1.6 * np.exp(-(((fine - Y_MOUTH) / 0.016) ** 2))
        + 1.2 * np.exp(-(((fine - Y_EYE) / 0.012) ** 2))
        + 0.5 * np.exp(-(((fine - Y_SUBNASALE) / 0.012) ** 2))
    )
    cum = np.concatenate([[0.0], np.cumsum(density[1:] + density[:-1])])
    rows = np.interp(np.linspace(0, cum[-1], n_rows), cum, fine)
    for target in (Y_MOUTH, Y_EYE):
        rows[np.argmin(np.abs(rows - target))] = target
    return rows


def _column_angles(n_cols: int) -> np.ndarray:
    s = np.linspace(-1.0, 1.0, n_cols)
    return np.deg2rad(98.0) * (0.55 * s + 0.45 * s**3)


class _MeshBuilder:
    """Vertices, triangles and per-vertex flags of the mesh, added one surface at a time."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.part: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.eye_side: list[np.ndarray] = []
        self.count = 0

    def add(
        self,
        verts: np.ndarray,
        part: str,
        lower: np.ndarray | bool = False,
        eye_side: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """Append ``verts`` (N, 3) of ``part``; ``lower`` and ``eye_side`` are per vertex or one
        value for all (see :class:`SynthMesh`). Returns their indices."""
        idx = np.arange(self.count, self.count + len(verts))
        self.vertices.append(np.asarray(verts, dtype=np.float64))
        self.part.append(np.full(len(verts), PARTS.index(part)))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=bool), len(verts)))
        self.eye_side.append(np.broadcast_to(np.asarray(eye_side), len(verts)))
        self.count += len(verts)
        return idx

    def quad_faces(self, top: np.ndarray, bottom: np.ndarray, flip: bool = False) -> None:
        """Two triangles per quad between index rows ``top`` (R, C) and ``bottom`` (R, C).

        Rows run down and columns to +x; triangles then face +z (``flip`` reverses them).
        """
        a, b = top[:, :-1], top[:, 1:]
        c, d = bottom[:, :-1], bottom[:, 1:]
        tris = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)]).reshape(-1, 3)
        self.faces.append(tris[:, ::-1] if flip else tris)

    def grid_faces(self, index: np.ndarray, flip: bool = False) -> None:
        """Triangulate a (R, C) index grid (see :meth:`quad_faces`)."""
        self.quad_faces(index[:-1], index[1:], flip)


def _ellipsoid_grid(
    centre: np.ndarray, radii: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """(R, C, 3) points; lat from top (+pi/2) down, lon around the y axis from +z."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pts = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1)
    return centre + pts * radii


#: Eyeball rings: angle from the gaze axis (degrees), dense at the pupil and limbus edges.
EYEBALL_RINGS = (0, 5, 10, 12.5, 20, 26, 29.5, 32, 40, 55, 75, 100, 130, 160, 180)


def _eyeball_grid(centre: np.ndarray, segments: int) -> np.ndarray:
    """(R, C, 3) eyeball surface with its pole on the gaze axis (+z): rings are iris circles."""
    theta = np.deg2rad(np.array(EYEBALL_RINGS, dtype=np.float64))
    unit = _ellipsoid_grid(
        np.zeros(3), np.ones(3), np.pi / 2 - theta, np.linspace(-np.pi, np.pi, 2 * segments + 1)
    )
    forward = np.stack([unit[..., 0], -unit[..., 2], unit[..., 1]], -1)  # pole y -> +z
    return centre + forward * EYEBALL_RADII


@dataclass
class _Skin:
    """The skin grid once added: positions, index grids and the rows of the cuts."""

    X: np.ndarray
    """(R, C) x of the grid before the lids open (``Y`` likewise)."""
    Y: np.ndarray
    pos: np.ndarray
    """(R, C, 3) skin positions (lids open)."""
    index: np.ndarray
    """(R, C) vertex indices of the grid."""
    below: np.ndarray
    """(R, C) ``index`` with the cut rows replaced by their copies (used by the quads below)."""
    row_e: int
    row_m: int
    mouth_cols: np.ndarray
    eye_cols: np.ndarray


def _skin_surface(config: SynthFaceConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, C) X, Y, Z of the head-shaped grid with the facial features, eyes still closed."""
    n_cols = config.grid_columns | 1  # odd: one column on the midline
    n_rows = int(round(n_cols * 1.25))
    Y, PHI = np.meshgrid(_grid_rows(n_rows), _column_angles(n_cols), indexing="ij")
    W = np.interp(Y, _PROFILE_Y[::-1], _PROFILE_W[::-1])
    D = np.interp(Y, _PROFILE_Y[::-1], _PROFILE_D[::-1])
    X = W * np.sin(PHI)
    frontal = np.clip(np.cos(PHI), 0.0, 1.0) ** 1.5
    Z = D * np.cos(PHI) + _feature_depth(X, Y) * frontal
    return X, Y, Z


def _open_lids(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Y with the lids displaced up (upper) and down (lower) around each eye's cut."""
    lid_up = np.zeros_like(X)
    lid_down = np.zeros_like(X)
    for side in (-1, 1):
        u = np.clip(1 - ((X - side * EYE_X) / EYE_HALF_WIDTH) ** 2, 0, None) ** 0.75
        above = np.exp(-(((Y - Y_EYE) / 0.0065) ** 2)) * (Y >= Y_EYE)
        below = np.exp(-(((Y - Y_EYE) / 0.0055) ** 2)) * (Y < Y_EYE)
        lid_up += EYE_OPEN_UP * u * above
        lid_down -= EYE_OPEN_DOWN * u * below
    return Y + lid_up + lid_down


def _add_skin(builder: _MeshBuilder, config: SynthFaceConfig) -> _Skin:
    """Add the skin grid, cut along the lip line and the eye openings.

    A cut row's vertices are duplicated and the quads below the cut use the copies, so the lower
    lip (lid) moves apart from the upper one.
    """
    X, Y, Z = _skin_surface(config)
    ys = Y[:, 0]
    row_e = int(np.argmin(np.abs(ys - Y_EYE)))
    row_m = int(np.argmin(np.abs(ys - Y_MOUTH)))
    pos = np.stack([X, _open_lids(X, Y), Z], -1)
    near_eye = (np.abs(np.abs(X) - EYE_X) < 0.03) & (np.abs(Y - Y_EYE) < 0.02)
    flat = pos.reshape(-1, 3)
    lower = Y.reshape(-1) < Y_MOUTH
    index = builder.add(flat, "skin", lower, (np.sign(X) * near_eye).reshape(-1)).reshape(X.shape)

    below = index.copy()
    mouth_cols = np.nonzero(np.abs(X[row_m]) < MOUTH_HALF_WIDTH)[0]
    below[row_m, mouth_cols] = builder.add(pos[row_m, mouth_cols], "skin", True, 0.0)
    eye_cols = np.nonzero(np.abs(np.abs(X[row_e]) - EYE_X) < EYE_HALF_WIDTH)[0]
    lid_rim = pos[row_e, eye_cols].copy()
    u = np.clip(
        1 - ((lid_rim[:, 0] - np.sign(lid_rim[:, 0]) * EYE_X) / EYE_HALF_WIDTH) ** 2, 0, None
    )
    lid_rim[:, 1] -= (EYE_OPEN_UP + EYE_OPEN_DOWN) * u**0.75
    below[row_e, eye_cols] = builder.add(lid_rim, "skin", False, np.sign(lid_rim[:, 0]))
    builder.quad_faces(below[:-1], index[1:])
    return _Skin(X, Y, pos, index, below, row_e, row_m, mouth_cols, eye_cols)


def _add_inner_lips(builder: _MeshBuilder, skin: _Skin) -> None:
    """Strips rolling from each lip's edge into the mouth."""
    strip_cols = np.arange(skin.mouth_cols[0] - 1, skin.mouth_cols[-1] + 2)
    upper_edge = skin.index[skin.row_m, strip_cols]
    lower_edge = skin.below[skin.row_m, strip_cols]
    verts_now = np.concatenate(builder.vertices)
    depth = np.array([0.0035, 0.0075, 0.011])
    taper = _smoothstep((MOUTH_HALF_WIDTH + 0.001 - np.abs(verts_now[upper_edge, 0])) / 0.008)
    for edge, sign, is_lower in ((upper_edge, 1.0, False), (lower_edge, -1.0, True)):
        rows = [edge]
        for k, dz in enumerate(depth):
            pos = verts_now[edge].copy()
            pos[:, 2] -= dz * (0.3 + 0.7 * taper)
            pos[:, 1] += sign * (0.0012 * (k + 1)) * taper
            pos[:, 0] *= 1 - 0.04 * (k + 1)
            rows.append(builder.add(pos, "inner_lip", is_lower, 0.0))
        builder.grid_faces(np.stack(rows), flip=not is_lower)


def _add_mouth_interior(builder: _MeshBuilder, lip_front: float) -> None:
    """The mouth cavity (the back half of an ellipsoid, seen from inside), the teeth (arcs behind
    the lips) and the tongue (a flattened cap on the mouth floor)."""
    centre = np.array([0.0, Y_MOUTH - 0.009, lip_front - 0.030])
    lat = np.linspace(np.pi / 2, -np.pi / 2, 13)
    lon = np.linspace(np.pi / 2, 3 * np.pi / 2, 17)
    cav = _ellipsoid_grid(centre, np.array([0.029, 0.026, 0.030]), lat, lon).reshape(-1, 3)
    idx = builder.add(cav, "mouth_cavity", cav[:, 1] < centre[1], 0.0)
    builder.grid_faces(idx.reshape(len(lat), len(lon)), flip=True)

    for part, y0, y1, back in (
        ("teeth_upper", Y_MOUTH + 0.0085, Y_MOUTH - 0.0015, 0.0065),
        ("teeth_lower", Y_MOUTH - 0.001, Y_MOUTH - 0.0105, 0.0085),
    ):
        psi = np.linspace(-1.15, 1.15, 15)
        radius = 0.023
        rows_y = np.linspace(y0, y1, 4)
        tx = radius * np.sin(psi)
        tz = lip_front - back + radius * (np.cos(psi) - 1)
        pts = np.stack(np.broadcast_arrays(tx[None], rows_y[:, None], tz[None]), -1)
        idx = builder.add(pts.reshape(-1, 3), part, part == "teeth_lower", 0.0)
        builder.grid_faces(idx.reshape(pts.shape[:2]))
    tongue = _ellipsoid_grid(
        np.array([0.0, Y_MOUTH - 0.012, lip_front - 0.034]),
        np.array([0.016, 0.007, 0.018]),
        np.linspace(np.pi / 2, 0.0, 6),
        np.linspace(-np.pi, np.pi, 17),
    )
    idx = builder.add(tongue.reshape(-1, 3), "tongue", True, 0.0)
    builder.grid_faces(idx.reshape(tongue.shape[:2]))


def _add_eyes(builder: _MeshBuilder, skin: _Skin, segments: int) -> np.ndarray:
    """A dark socket behind each opening and an eyeball with its front just behind the lids;
    returns the (2, 3) eyeball centres (right eye, x < 0, first)."""
    centres = []
    for side in (-1, 1):
        cols = skin.eye_cols
        centre_col = cols[np.argmin(np.abs(skin.X[skin.row_e, cols] - side * EYE_X))]
        rim = skin.pos[skin.row_e, centre_col, 2]  # the lids' depth in front of the pupil
        c = np.array([side * EYE_X, Y_EYE + 0.0005, rim - 0.0015 - EYEBALL_RADIUS])
        centres.append(c)
        sock = _ellipsoid_grid(
            c + [0, 0, 0.002],
            np.array([0.0175, 0.0125, 0.013]),
            np.linspace(np.pi / 2, -np.pi / 2, 9),
            np.linspace(np.pi / 2, 3 * np.pi / 2, 11),
        )
        idx = builder.add(sock.reshape(-1, 3), "eye_socket", False, side)
        builder.grid_faces(idx.reshape(sock.shape[:2]), flip=True)
        ball = _eyeball_grid(c, segments)
        part = "eyeball_left" if side > 0 else "eyeball_right"
        idx = builder.add(ball.reshape(-1, 3), part, False, side)
        builder.grid_faces(idx.reshape(ball.shape[:2]))
    return np.array(centres, dtype=np.float32)


def build_synth_mesh(config: SynthFaceConfig | None = None) -> SynthMesh:
    """Build the neutral procedural mesh (see the module doc)."""
    config = config or SynthFaceConfig()
    builder = _MeshBuilder()
    skin = _add_skin(builder, config)
    _add_inner_lips(builder, skin)
    lip_front = float(skin.pos[skin.row_m, skin.pos.shape[1] // 2, 2])
    _add_mouth_interior(builder, lip_front)
    eyeball_centres = _add_eyes(builder, skin, config.eyeball_segments)

    vertices = np.concatenate(builder.vertices)
    part = np.concatenate(builder.part)
    mesh_landmarks = _landmarks(vertices, part, skin.index, skin.below, skin.row_e, skin.row_m)
    return SynthMesh(
        vertices=vertices.astype(np.float32),
        faces=np.concatenate(builder.faces).astype(np.int64),
        part=part,
        lower=np.concatenate(builder.lower),
        eye_side=np.concatenate(builder.eye_side).astype(np.int8),
        landmarks=mesh_landmarks,
        eyeball_centres=eyeball_centres,
    )


def _landmarks(
    vertices: np.ndarray,
    part: np.ndarray,
    skin: np.ndarray,
    below_grid: np.ndarray,
    row_e: int,
    row_m: int,
) -> np.ndarray:
    """The 68 iBUG landmarks: targets on the frontal plane snapped to skin vertices."""
    targets = np.zeros((68, 2))
    kinds = np.zeros(68, dtype=int)  # 0: any front skin, 1: upper cut row, 2: lower cut row
    a = np.pi * np.arange(17) / 16
    targets[:17] = np.stack([-0.066 * np.cos(a), 0.010 - 0.100 * np.sin(a)], 1)
    bx = np.linspace(0.055, 0.012, 5)
    targets[17:22] = np.stack([-bx, Y_BROW - 0.004 + 0.007 * np.sin(np.linspace(0.3, 2.6, 5))], 1)
    targets[22:27] = np.stack(
        [bx[::-1], Y_BROW - 0.004 + 0.007 * np.sin(np.linspace(2.6, 0.3, 5))], 1
    )
    targets[27:31] = np.stack([np.zeros(4), np.linspace(0.028, Y_NOSE_TIP, 4)], 1)
    targets[31:36] = np.stack(
        [np.linspace(-0.013, 0.013, 5), [-0.019, -0.021, -0.022, -0.021, -0.019]], 1
    )
    for base, side in ((36, -1), (42, 1)):
        # Both eyes start at their corner with the smaller x (right eye: outer, left: inner).
        ex = np.array([-1.0, -0.35, 0.35, 1.0, 0.35, -0.35]) * EYE_HALF_WIDTH * 0.97
        targets[base : base + 6, 0] = side * EYE_X + ex
        targets[base : base + 6, 1] = Y_EYE
        kinds[base + 1 : base + 3] = 1
        kinds[base + 4 : base + 6] = 2
    w = MOUTH_HALF_WIDTH
    outer_x = np.array(
        [-w, -0.016, -0.006, 0.0, 0.006, 0.016, w, 0.016, 0.006, 0.0, -0.006, -0.016]
    )
    outer_y = Y_MOUTH + np.array(
        [0, 0.007, 0.0085, 0.0078, 0.0085, 0.007, 0, -0.0085, -0.0098, -0.010, -0.0098, -0.0085]
    )
    targets[48:60] = np.stack([outer_x, outer_y], 1)
    inner_x = np.array([-0.022, -0.010, 0.0, 0.010, 0.022, 0.010, 0.0, -0.010])
    targets[60:68] = np.stack([inner_x, np.full(8, Y_MOUTH)], 1)
    kinds[[61, 62, 63]] = 1
    kinds[[65, 66, 67]] = 2
    kinds[[60, 64]] = 1

    skin_idx = np.nonzero(part == PARTS.index("skin"))[0]
    front = skin_idx[vertices[skin_idx, 2] > 0.02]
    out = np.zeros(68, dtype=np.int64)
    for i in range(68):
        if kinds[i] == 0:
            d = np.linalg.norm(vertices[front, :2] - targets[i], axis=1)
            out[i] = front[np.argmin(d)]
            continue
        # lid and inner-lip landmarks: the cut row's vertex (upper original or lower copy)
        # nearest in x, so that upper and lower landmarks pair up exactly
        grid = skin if kinds[i] == 1 else below_grid
        row = grid[row_e] if abs(targets[i, 1] - Y_EYE) < 0.01 else grid[row_m]
        out[i] = row[np.argmin(np.abs(vertices[row, 0] - targets[i, 0]))]
    return out


def build_synth_face(config: SynthFaceConfig | None = None) -> FaceModel:
    """The procedural default :class:`FaceModel` (ARKit-52 expressions, 24 identity components)."""
    from mmface4d.facemodel import synth_shapes

    config = config or SynthFaceConfig()
    mesh = build_synth_mesh(config)
    expression_names, expression_basis = synth_shapes.expression_basis(mesh)
    identity_names, identity_basis = synth_shapes.identity_basis(mesh)
    albedo_mean, albedo_basis = synth_shapes.albedo(mesh)
    skin = np.nonzero(mesh.part == PARTS.index("skin"))[0]
    face = skin[mesh.vertices[skin, 2] > 0.0]
    regions = landmark_regions(mesh.vertices, mesh.landmarks, face)
    for name in ("eyeball_left", "eyeball_right", "teeth_upper", "teeth_lower", "tongue"):
        regions[f"part_{name}"] = np.nonzero(mesh.part == PARTS.index(name))[0]
    return FaceModel(
        name="synth",
        mean=mesh.vertices,
        faces=mesh.faces,
        identity_basis=identity_basis,
        expression_basis=expression_basis,
        expression_names=expression_names,
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        landmarks=mesh.landmarks,
        regions=regions,
        unit="m",
        metadata={
            "source": "synth (procedural, mmface4d)",
            "axes": AXES,
            "config": {f.name: getattr(config, f.name) for f in fields(config)},
            "identity_names": identity_names,
            "face_rule": "skin vertices in front of the head's coronal plane (z > 0)",
            "parts": {p: int((mesh.part == i).sum()) for i, p in enumerate(PARTS)},
        },
    )


def cache_folder() -> Path | None:
    """Where :func:`cached_synth_face` keeps its files, or None when caching is off."""
    root = cache_root()
    return None if root is None else root / "facemodel"


def _cache_name(config: SynthFaceConfig) -> tuple[str, str]:
    """The cache file's stem for ``config``: ``synth-<options>-<digest>``, the digest of what the
    built arrays depend on (the source of every module of the face model subpackage: the
    builders, the shapes, the regions, :class:`FaceModel`; the package and numpy versions).
    Returns the stem and its ``synth-<options>-`` prefix."""
    options = "-".join(f"{f.name}{getattr(config, f.name)}" for f in fields(config))
    digest = hashlib.sha256(f"{__version__} numpy {np.__version__}".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    prefix = f"synth-{options}-"
    return prefix + digest.hexdigest()[:16], prefix


def cached_synth_face(config: SynthFaceConfig | None = None) -> FaceModel:
    """:func:`build_synth_face`, read from the on-disk cache when the same code built it before
    (see the module doc); a missing, unreadable or stale entry is built and written (atomically)
    again, and a cache that cannot be written is left alone.

    Args:
        config: the options (default :class:`SynthFaceConfig`).

    Returns:
        The face model, array for array what :func:`build_synth_face` returns.
    """
    config = config or SynthFaceConfig()
    folder = cache_folder()
    if folder is None:
        return build_synth_face(config)
    stem, prefix = _cache_name(config)
    path = folder / f"{stem}.npz"
    if path.is_file():
        try:
            return FaceModel.load(path)
        except (InputError, OSError):
            pass  # a damaged entry: build it again below
    model = build_synth_face(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{prefix}*.npz"):  # the same options built by other code
            stale.unlink(missing_ok=True)
        model.save(path, compressed=False)
    except OSError:
        pass  # a read-only or full disk: the model is built, only not kept
    return model

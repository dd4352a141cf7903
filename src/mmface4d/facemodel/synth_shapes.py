"""Expression (ARKit-52), identity and albedo bases of the procedural face.

Every blendshape is a smooth, local displacement field evaluated on the neutral mesh of
:mod:`mmface4d.facemodel.synth`; its weight 1 is the shape's full extent (jawOpen: 24 degrees
about the jaw hinge, about 3.3 cm at the lips). Identity components are displacement fields whose
coefficient 1 is about one standard deviation of adult faces.
"""

from __future__ import annotations

import numpy as np

from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.synth import (
    EYE_HALF_WIDTH,
    EYE_OPEN_DOWN,
    EYE_OPEN_UP,
    EYE_X,
    HINGE,
    MOUTH_HALF_WIDTH,
    PARTS,
    Y_BROW,
    Y_CHIN,
    Y_EYE,
    Y_MOUTH,
    Y_NOSE_TIP,
    SynthMesh,
)

JAW_OPEN_DEGREES = 24.0


def _g(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return np.exp(-(((x - cx) / rx) ** 2) - ((y - cy) / ry) ** 2)


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _vec(
    mask: np.ndarray, dx: float | np.ndarray, dy: float | np.ndarray, dz: float | np.ndarray
) -> np.ndarray:
    return np.stack(np.broadcast_arrays(mask * dx, mask * dy, mask * dz), -1)


def _rot_x(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    """Displacement of rotating points about the x axis through ``centre`` (+ opens the jaw)."""
    a = np.deg2rad(degrees)
    q = points - centre
    y = q[:, 1] * np.cos(a) - q[:, 2] * np.sin(a)
    z = q[:, 1] * np.sin(a) + q[:, 2] * np.cos(a)
    return np.stack([np.zeros_like(y), y - q[:, 1], z - q[:, 2]], -1)


def _rot_y(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    """Displacement of rotating about the y axis (+ moves the front towards +x)."""
    a = np.deg2rad(degrees)
    q = points - centre
    x = q[:, 0] * np.cos(a) + q[:, 2] * np.sin(a)
    z = -q[:, 0] * np.sin(a) + q[:, 2] * np.cos(a)
    return np.stack([x - q[:, 0], np.zeros_like(x), z - q[:, 2]], -1)


class _Fields:
    """Masks over the neutral mesh shared by the expression and identity builders."""

    def __init__(self, mesh: SynthMesh) -> None:
        self.p = mesh.vertices.astype(np.float64)
        self.x, self.y, self.z = self.p.T
        part = mesh.part
        self.is_ = {name: part == i for i, name in enumerate(PARTS)}
        self.soft = self.is_["skin"] | self.is_["inner_lip"]
        self.mesh = mesh
        x, y = self.x, self.y
        ax = np.abs(x)
        w = MOUTH_HALF_WIDTH
        # Jaw weight: 1 on the lower lip, chin and jaw; a soft seam beyond the mouth corners.
        band = 0.008 + 0.8 * np.clip(ax - w, 0, None)
        seam = _smooth((Y_MOUTH - y) / band + 0.5)
        jaw = np.where(ax < w, mesh.lower.astype(float), seam) * _smooth((0.068 - ax) / 0.025)
        jaw = np.where(self.soft, jaw, 0.0)
        jaw[self.is_["teeth_lower"] | self.is_["tongue"]] = 1.0
        cav = self.is_["mouth_cavity"]
        jaw[cav] = np.clip((Y_MOUTH - 0.009 - y[cav]) / 0.026, 0, 1)
        self.jaw = jaw
        self.lower = jaw > 0.5
        taper = _smooth((w + 0.004 - ax) / 0.012)
        self.lip_band = self.soft * taper * np.exp(-(((y - Y_MOUTH) / 0.011) ** 2))
        self.mouth_area = self.soft * _g(x, y, 0.0, Y_MOUTH, 0.034, 0.022)
        self.centre = _smooth((0.021 - ax) / 0.014)
        self.left = _smooth(x / 0.02 + 0.5)
        self.right = 1.0 - self.left
        # Lids: opening profile u(x) per eye and the vertical falloff above / below the cut.
        self.lid_u = {}
        for side in (-1, 1):
            u = np.clip(1 - ((x - side * EYE_X) / EYE_HALF_WIDTH) ** 2, 0, None) ** 0.75
            self.lid_u[side] = u * self.is_["skin"] * (np.sign(x) == side)
        skin = self.is_["skin"]
        self.upper_lid = skin * (y >= Y_EYE) * np.exp(-(((y - Y_EYE - EYE_OPEN_UP) / 0.0075) ** 2))
        self.lower_lid = skin * (y < Y_EYE) * np.exp(-(((y - Y_EYE + EYE_OPEN_DOWN) / 0.006) ** 2))

    def corner(self, side: int, r: float = 0.014) -> np.ndarray:
        return self.soft * _g(self.x, self.y, side * MOUTH_HALF_WIDTH, Y_MOUTH, r, r)


def _lips(f: _Fields) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the (lower, upper) lip."""
    return f.lip_band * f.lower, f.lip_band * ~f.lower


def _jaw_shapes(f: _Fields) -> dict[str, np.ndarray]:
    """The jaw's four shapes and mouthClose, which cancels jawOpen on the lips."""
    jaw_open = f.jaw[:, None] * _rot_x(f.p, HINGE, JAW_OPEN_DEGREES)
    # mouthClose cancels jawOpen on the lower lip: equal weights give closed lips, open jaw.
    closing = f.soft * np.exp(-(((f.y - Y_MOUTH) / 0.014) ** 2))  # smooth: no crease at the seam
    return {
        "jawOpen": jaw_open,
        "jawForward": _vec(f.jaw, 0, 0, 0.007),
        "jawLeft": _vec(f.jaw, 0.008, 0, 0),
        "jawRight": _vec(f.jaw, -0.008, 0, 0),
        "mouthClose": -jaw_open * closing[:, None],
    }


def _mouth_shapes(f: _Fields) -> dict[str, np.ndarray]:
    """The mouth's shapes that act on both sides at once."""
    x, y = f.x, f.y
    lower_lip, upper_lip = _lips(f)
    open_mid = f.centre * f.lip_band
    chin = f.soft * f.lower * _g(x, y, 0, Y_MOUTH - 0.016, 0.03, 0.02)
    return {
        "mouthFunnel": (
            _vec(f.mouth_area, -0.25 * x, 0, 0.007)
            + _vec(open_mid * ~f.lower, 0, 0.0035, 0)
            + _vec(open_mid * f.lower, 0, -0.0045, 0)
        ),
        "mouthPucker": _vec(f.mouth_area, -0.38 * x, 0, 0.010),
        "mouthLeft": _vec(f.mouth_area, 0.009, 0, 0),
        "mouthRight": _vec(f.mouth_area, -0.009, 0, 0),
        "mouthRollLower": _vec(lower_lip, 0, 0.002, -0.004),
        "mouthRollUpper": _vec(upper_lip, 0, -0.002, -0.004),
        "mouthShrugLower": _vec(np.maximum(chin, lower_lip), 0, 0.004, 0.002),
        "mouthShrugUpper": _vec(upper_lip, 0, 0.003, 0.001),
    }


def _mouth_side_shapes(f: _Fields, side: int, name: str) -> dict[str, np.ndarray]:
    """The mouth's shapes of one side (``side`` +1: Left, -1: Right)."""
    x, y = f.x, f.y
    lower_lip, upper_lip = _lips(f)
    cheek = f.is_["skin"] * _g(x, y, side * 0.042, -0.012, 0.016, 0.014)
    c = f.corner(side, 0.018)
    half = f.left if side > 0 else f.right
    press = f.lip_band * half
    return {
        f"mouthSmile{name}": _vec(c, side * 0.006, 0.008, -0.004) + _vec(cheek, 0, 0.003, 0.002),
        f"mouthFrown{name}": _vec(f.corner(side), side * 0.001, -0.007, 0),
        f"mouthDimple{name}": _vec(f.corner(side), side * 0.003, 0, -0.004),
        f"mouthStretch{name}": _vec(c, side * 0.007, -0.003, -0.002),
        f"mouthPress{name}": _vec(press, 0, -0.35 * (y - Y_MOUTH), -0.0012),
        f"mouthLowerDown{name}": _vec(lower_lip * half, 0, -0.006, 0.001),
        f"mouthUpperUp{name}": _vec(upper_lip * half, 0, 0.005, 0.001),
    }


def _upper_face_side_shapes(f: _Fields, side: int, name: str) -> dict[str, np.ndarray]:
    """Brow, cheek-squint and nose-sneer shapes of one side."""
    x, y, skin = f.x, f.y, f.is_["skin"]
    brow = skin * _g(x, y, side * 0.03, Y_BROW, 0.026, 0.013)
    outer = skin * _g(x, y, side * 0.046, Y_BROW, 0.015, 0.013)
    squint = skin * _g(x, y, side * 0.038, 0.004, 0.016, 0.009)
    sneer = skin * _g(x, y, side * 0.012, -0.006, 0.008, 0.011)
    return {
        f"browDown{name}": _vec(brow, -side * 0.002, -0.005, 0.001),
        f"browOuterUp{name}": _vec(outer, 0, 0.006, 0),
        f"cheekSquint{name}": _vec(squint, 0, 0.004, 0.001),
        f"noseSneer{name}": _vec(sneer, 0, 0.003, 0.001),
    }


def _eye_shapes(f: _Fields, side: int, name: str) -> dict[str, np.ndarray]:
    """One eye's lid shapes (blink, squint, wide) and gaze (the eyeball turns about its centre)."""
    u = f.lid_u[side]
    up, down = u * f.upper_lid, u * f.lower_lid
    ball = f.is_["eyeball_left" if side > 0 else "eyeball_right"][:, None]
    centre = f.mesh.eyeball_centres[1 if side > 0 else 0].astype(np.float64)
    blink_up = _vec(up, 0, -(EYE_OPEN_UP + 0.8 * EYE_OPEN_DOWN), 0.0015)
    squint_down = _vec(down, 0, 0.45 * EYE_OPEN_DOWN, 0.0005)
    return {
        f"eyeBlink{name}": blink_up + _vec(down, 0, 0.2 * EYE_OPEN_DOWN, 0),
        f"eyeSquint{name}": _vec(up, 0, -0.15 * EYE_OPEN_UP, 0) + squint_down,
        f"eyeWide{name}": _vec(up, 0, 0.003, 0) + _vec(down, 0, -0.0008, 0),
        f"eyeLookUp{name}": ball * _rot_x(f.p, centre, -20.0),
        f"eyeLookDown{name}": ball * _rot_x(f.p, centre, 20.0),
        f"eyeLookIn{name}": ball * _rot_y(f.p, centre, -side * 25.0),
        f"eyeLookOut{name}": ball * _rot_y(f.p, centre, side * 25.0),
    }


def _brow_cheek_tongue_shapes(f: _Fields) -> dict[str, np.ndarray]:
    """browInnerUp, cheekPuff and tongueOut (both sides at once)."""
    x, y, skin = f.x, f.y, f.is_["skin"]
    inner = skin * (
        _g(x, y, 0.014, Y_BROW + 0.003, 0.014, 0.014)
        + _g(x, y, -0.014, Y_BROW + 0.003, 0.014, 0.014)
    )
    puff = skin * (_g(x, y, 0.042, -0.03, 0.018, 0.02) + _g(x, y, -0.042, -0.03, 0.018, 0.02))
    tongue = f.is_["tongue"]
    reach = _smooth((f.z - f.z[tongue].min()) / np.ptp(f.z[tongue])) if tongue.any() else 0
    return {
        "browInnerUp": _vec(inner, 0, 0.007, 0),
        "cheekPuff": _vec(puff, np.sign(x) * 0.006, 0, 0.004),
        "tongueOut": _vec(tongue * (0.4 + 0.6 * reach), 0, -0.004, 0.024),
    }


def expression_basis(mesh: SynthMesh) -> tuple[list[str], np.ndarray]:
    """The 52 ARKit blendshapes as (52, V, 3) deltas, in :data:`ARKIT_52` order."""
    f = _Fields(mesh)
    shapes = _jaw_shapes(f) | _mouth_shapes(f) | _brow_cheek_tongue_shapes(f)
    for side, name in ((1, "Left"), (-1, "Right")):
        shapes |= _mouth_side_shapes(f, side, name)
        shapes |= _upper_face_side_shapes(f, side, name)
        shapes |= _eye_shapes(f, side, name)
    names = list(ARKIT_52)
    return names, np.stack([shapes[n] for n in names]).astype(np.float32)


def _identity_displacements(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Identity components as (N, 3) displacements at points (x, y, z); 1 = about one std."""
    one = np.ones_like(x)
    ax, side = np.abs(x), np.sign(x)
    eye = _g(ax, y, EYE_X, Y_EYE, 0.02, 0.015)
    cheek = _g(ax, y, 0.045, -0.03, 0.02, 0.025)
    lower_face = _smooth(-y / 0.05)
    upper_lip = _g(x, y, 0, Y_MOUTH + 0.0045, 0.022, 0.0045)
    lower_lip = _g(x, y, 0, Y_MOUTH - 0.0055, 0.022, 0.0045)
    nose_base = _g(x, y, 0, -0.015, 0.02, 0.012)
    return {
        "face_width": _vec(one, 0.055 * x, 0, 0),
        "lower_face_length": _vec(one, 0, 0.07 * np.minimum(y - Y_NOSE_TIP, 0), 0),
        "forehead_height": _vec(one, 0, 0.08 * np.maximum(y - Y_BROW, 0), 0),
        "jaw_width": _vec(_smooth((Y_MOUTH + 0.01 - y) / 0.04), 0.08 * x, 0, 0),
        "chin_protrusion": _vec(_g(x, y, 0, Y_CHIN + 0.015, 0.025, 0.02), 0, 0, 0.005),
        "chin_width": _vec(_g(x, y, 0, Y_CHIN + 0.01, 0.03, 0.02), 0.15 * x, 0, 0),
        "cheek_fullness": _vec(cheek, side * 0.003, 0, 0.003),
        "cheekbones": _vec(_g(ax, y, 0.05, 0.0, 0.015, 0.012), 0, 0, 0.003),
        "nose_length": _vec(_g(x, y, 0, -0.015, 0.015, 0.012), 0, -0.003, 0),
        "nose_width": _vec(nose_base, 0.12 * x, 0, 0),
        "nose_protrusion": _vec(_g(x, y, 0, -0.006, 0.01, 0.018), 0, 0, 0.004),
        "nose_bridge": _vec(_g(x, y, 0, 0.02, 0.008, 0.012), 0, 0, 0.003),
        "upper_lip_thickness": _vec(upper_lip, 0, 0.001, 0.0015),
        "lower_lip_thickness": _vec(lower_lip, 0, -0.001, 0.0015),
        "mouth_width": _vec(_g(x, y, 0, Y_MOUTH, 0.03, 0.012), 0.12 * x, 0, 0),
        "eye_spacing": _vec(eye, side * 0.002, 0, 0),
        "brow_ridge": _vec(_g(x, y, 0, Y_BROW + 0.004, 0.045, 0.008), 0, 0, 0.003),
        "forehead_slope": _vec(one, 0, 0, -0.06 * np.maximum(y - 0.04, 0)),
        "face_depth": _vec(one, 0, 0, 0.05 * z),
        "temple_width": _vec(_g(ax, y, 0.062, 0.045, 0.015, 0.025), side * 0.003, 0, 0),
        "mouth_height": _vec(_g(x, y, 0, Y_MOUTH, 0.04, 0.015), 0, 0.003, 0),
        "eye_height": _vec(eye, 0, 0.003, 0),
        "face_roundness": _vec(lower_face, 0.04 * x, 0, 0.002),
        "midface_depth": _vec(_g(x, y, 0, -0.01, 0.05, 0.03), 0, 0, 0.004),
    }


def identity_basis(mesh: SynthMesh) -> tuple[list[str], np.ndarray]:
    """24 identity components as (24, V, 3); eyeballs and sockets move rigidly."""
    p = mesh.vertices.astype(np.float64)
    rigid = [
        (mesh.part == PARTS.index(n)) & (np.sign(p[:, 0]) == s)
        for n in ("eyeball_left", "eyeball_right", "eye_socket")
        for s in (-1, 1)
    ]
    rigid = [m for m in rigid if m.any()]
    centres = np.array([p[m].mean(0) for m in rigid])
    points = np.concatenate([p, centres])
    fields = _identity_displacements(points[:, 0], points[:, 1], points[:, 2])
    names, basis = [], []
    for name, delta in fields.items():
        per_vertex = delta[: len(p)].copy()
        for k, mask in enumerate(rigid):
            per_vertex[mask] = delta[len(p) + k]
        names.append(name)
        basis.append(per_vertex)
    return names, np.stack(basis).astype(np.float32)


#: Flat albedo of the parts behind the skin.
PART_COLOURS = {
    "inner_lip": (0.62, 0.26, 0.27),
    "mouth_cavity": (0.30, 0.08, 0.08),
    "teeth_upper": (0.93, 0.91, 0.84),
    "teeth_lower": (0.90, 0.88, 0.80),
    "tongue": (0.72, 0.32, 0.33),
    "eye_socket": (0.80, 0.58, 0.55),
}
SKIN_COLOUR = np.array([0.80, 0.60, 0.50])


def _paint_skin(f: _Fields) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(V, 3) skin albedo with lips, brows, cheek flush, nostrils and lashes painted on, and the
    weights of the lips, brows and flush (the albedo basis varies them)."""
    x, y = f.x, f.y
    col = np.zeros((len(x), 3))
    skin = f.is_["skin"]
    col[:] = SKIN_COLOUR
    lips = skin * _smooth((1.0 - np.sqrt((x / 0.026) ** 2 + ((y - Y_MOUTH) / 0.0105) ** 2)) / 0.15)
    col = col * (1 - lips[:, None]) + lips[:, None] * np.array([0.70, 0.34, 0.35])
    brow_y = (
        Y_BROW + 0.003 + 0.004 * np.sin(np.clip((np.abs(x) - 0.012) / 0.045, 0, 1) * np.pi * 0.9)
    )
    brows = (
        skin
        * np.exp(-(((y - brow_y) / 0.0033) ** 2))
        * _smooth((np.abs(x) - 0.01) / 0.006)
        * _smooth((0.058 - np.abs(x)) / 0.008)
    )
    col = col * (1 - 0.85 * brows[:, None]) + 0.85 * brows[:, None] * np.array([0.28, 0.2, 0.15])
    flush = skin * (_g(x, y, 0.045, -0.012, 0.018, 0.016) + _g(x, y, -0.045, -0.012, 0.018, 0.016))
    col += flush[:, None] * np.array([0.03, -0.03, -0.02])
    nostrils = skin * (
        _g(x, y, 0.0065, -0.0195, 0.0035, 0.0022) + _g(x, y, -0.0065, -0.0195, 0.0035, 0.0022)
    )
    nostril_colour = np.array([0.25, 0.12, 0.1])
    col = col * (1 - 0.8 * nostrils[:, None]) + 0.8 * nostrils[:, None] * nostril_colour
    for side in (-1, 1):
        u = f.lid_u[side]
        lash = (u > 0.05) * skin * np.exp(-(((y - Y_EYE - EYE_OPEN_UP * u) / 0.0012) ** 2))
        col = col * (1 - 0.85 * lash[:, None]) + 0.85 * lash[:, None] * np.array([0.12, 0.08, 0.07])
    return col, {"lips": lips, "brows": brows, "flush": flush}


def _paint_eyeballs(f: _Fields, col: np.ndarray) -> np.ndarray:
    """Paint sclera, iris and pupil on the eyeballs in ``col``; returns the (V,) iris weight."""
    iris = np.zeros(len(f.x))
    for side, part in ((-1, "eyeball_right"), (1, "eyeball_left")):
        m = f.is_[part]
        c = f.mesh.eyeball_centres[0 if side < 0 else 1]
        d = f.p[m] - c
        angle = np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1, 1))
        eye_col = np.tile([0.94, 0.93, 0.90], (m.sum(), 1))
        in_iris = angle < 0.51
        eye_col[in_iris] = [0.36, 0.24, 0.14]
        eye_col[(angle > 0.45) & in_iris] = [0.2, 0.13, 0.08]
        eye_col[angle < 0.2] = [0.03, 0.03, 0.03]
        col[m] = eye_col
        iris[np.nonzero(m)[0][in_iris & (angle >= 0.2)]] = 1
    return iris


def albedo(mesh: SynthMesh) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) mean albedo in [0, 1] and an (8, V, 3) albedo basis."""
    f = _Fields(mesh)
    col, w = _paint_skin(f)
    for part, rgb in PART_COLOURS.items():
        col[f.is_[part]] = rgb
    iris = _paint_eyeballs(f, col)
    skin_soft = (f.is_["skin"] | f.is_["inner_lip"]).astype(float)
    height = (np.abs(f.y) / 0.1)[:, None] ** 2
    basis = np.stack(
        [
            skin_soft[:, None] * SKIN_COLOUR * 0.12,  # lightness
            skin_soft[:, None] * np.array([0.04, -0.01, -0.015]),  # redness
            skin_soft[:, None] * np.array([0.015, 0.015, -0.035]),  # yellowness
            w["lips"][:, None] * np.array([0.07, -0.03, -0.01]),  # lip colour
            w["flush"][:, None] * np.array([0.05, -0.02, -0.015]),  # cheek flush
            w["brows"][:, None] * np.array([-0.08, -0.06, -0.05]),  # brow darkness
            iris[:, None] * np.array([-0.08, 0.04, 0.15]),  # iris hue
            skin_soft[:, None] * SKIN_COLOUR * -0.25 * height,  # tone gradient
        ]
    )
    return np.clip(col, 0, 1).astype(np.float32), basis.astype(np.float32)

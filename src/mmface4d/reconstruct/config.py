"""Configuration of the three-stage fit and of sequence tracking (saved beside every output).

Defaults are the paper's (section IV.D; docs/FORMATS.md): landmark fitting 100 iterations, 3DMM
fitting 500, vertex-level fitting 500, Adam lr 0.01 on the first frame; later frames 200
iterations at lr 0.005 from the previous frame; weights depth 2, landmark 100, prior 0.001,
offset 0.01; robust Geman-McClure penalties on colour (sigma 0.1) and depth (sigma 2 mm) as the
official code. What each weight multiplies is defined in :mod:`mmface4d.reconstruct.losses`.

Departures, measured on a tuning studio capture with surface detail (one frame, true cameras;
face / lip mean vertex error after the vertex-level stage; the benchmark uses other subjects):
the paper's edge and Laplacian weights 20 with lr 0.01 hold the offsets back in this project's
units (offsets in mm, losses as means; 1.17 / 1.57 mm at 480x270 working images), weights 2
with lr 0.02 recover the relief (1.06 / 1.44 mm at 480x270; 0.92 / 1.16 mm at 960x540); and
colour 3 and landmark 300 instead of 1 and 100 keep the 3DMM stage from trading the lips for
depth detail (0.75 / 0.75 mm at 960x540; lips after the 3DMM stage 1.07 instead of 1.38 mm).
The paper does not state the units its weights apply to.

Speed options that are not in the paper (each one's accuracy cost is measured by
``benchmarks/bench_reconstruct.py``): ``visibility_every`` (rasterize every k-th iteration and
reuse the visible triangles in between; the barycentrics stay differentiable), ``crop_margin``
(fit only a window around the face), ``plateau``
(stop a stage early when its loss stops falling), ``scale`` (working resolution).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmface4d.errors import InputError
from mmface4d.settings import (
    apply_dataclass_overrides,
    find_config,
    load_config_file,
    update_dataclass,
)


@dataclass
class StageConfig:
    """One optimisation stage."""

    iterations: int
    """Adam iterations (at most; see ``plateau``)."""
    lr: float
    """Adam learning rate (parameters are scaled so that one rate suits all of them)."""
    plateau: float = 0.0
    """Stop when the loss fell by less than this fraction over the last ``patience``
    iterations (0: run every iteration, as the paper)."""
    patience: int = 20
    """Window of the plateau test, iterations."""


@dataclass
class LossWeights:
    """Weights of the loss terms (the paper's; see :mod:`mmface4d.reconstruct.losses`)."""

    colour: float = 3.0
    """Robust colour residual of the render against the images (the paper: 1)."""
    depth: float = 2.0
    """Robust depth residual of the render against the depth maps, mm (the paper: 2)."""
    landmark: float = 300.0
    """Squared 2D landmark distance, in image heights (the paper: 100)."""
    prior: float = 0.001
    """Mean squared model coefficient (the paper: 0.001)."""
    edge: float = 2.0
    """Edge regulariser of the vertex offsets (the paper: 20)."""
    laplacian: float = 2.0
    """Laplacian regulariser of the vertex offsets (the paper: 20)."""
    offset: float = 0.01
    """Squared vertex offsets, mm (the paper: 0.01)."""


@dataclass
class ReconstructConfig:
    """Everything ``mmface4d reconstruct`` needs besides its inputs."""

    landmark_stage: StageConfig = field(default_factory=lambda: StageConfig(100, 0.01))
    """Stage 1: identity, expression and head pose from the 2D landmarks of every camera."""
    model_stage: StageConfig = field(default_factory=lambda: StageConfig(500, 0.01))
    """Stage 2: + albedo and per-camera SH lighting, through the renderer (eq. 2)."""
    vertex_stage: StageConfig = field(default_factory=lambda: StageConfig(500, 0.02))
    """Stage 3: per-vertex offsets with edge, Laplacian and offset regularisers (eq. 3-4)."""
    tracking_stage: StageConfig = field(default_factory=lambda: StageConfig(200, 0.005))
    """Every later frame, initialised from the previous one."""
    track_coefficients: bool = True
    """Later frames also tune expression and head pose (the official code) besides the
    offsets; False: offsets only (the paper's text)."""
    bound_blendshapes: bool = True
    """Keep expression weights in [0, 1] (projected after every step) when the face model's
    expressions are a blendshape rig (every name an ARKit one: the default model, ICT); PCA
    expressions (BFM) stay unbounded. Without the bounds the rig's correlated shapes explain
    surface detail and noise with wild weights."""
    weights: LossWeights = field(default_factory=LossWeights)
    """Weights of the loss terms."""
    colour_sigma: float = 0.1
    """Geman-McClure scale of the colour residual (linear RGB in [0, 1])."""
    depth_sigma_mm: float = 2.0
    """Geman-McClure scale of the depth residual, millimetres."""
    scale: float = 0.5
    """Working resolution as a fraction of the recording's (0.5: 960x540 of 1920x1080; the
    lips need it: 480x270 gives them ~15x6 pixels per camera)."""
    crop_margin: float | None = 0.2
    """After the landmark stage (and in tracking, from the previous frame) the images are cut
    to the face's box grown by this fraction on each side (None: whole images)."""
    visibility_every: int = 5
    """Rasterize every k-th iteration; in between the visible triangles are reused."""
    smoothing_hz: float | None = 5.0
    """Cut-off of the temporal low-pass filter of the tracked vertices (None: off); the
    official release filters at 5 Hz."""
    identity_dims: int | None = None
    """Identity coefficients fitted (None: all of the model's)."""
    expression_dims: int | None = None
    """Expression coefficients fitted (None: all)."""
    albedo_dims: int | None = None
    """Albedo coefficients fitted (None: all)."""
    backend: str = "auto"
    """Rasterizer backend: auto, torch or nvdiffrast."""
    device: str = "cpu"
    """Torch device of the fit."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_config(
    config_file: str | Path | None = None, overrides: Sequence[str] = ()
) -> ReconstructConfig:
    """The defaults, then a JSON/TOML file of nested sections (e.g. a saved
    ``reconstruct.json``) or a preset (``paper``, ``fast``: ``configs/reconstruct/``), then
    ``section.key=value`` overrides such as ``vertex_stage.iterations=200 scale=0.5``;
    checked."""
    config = ReconstructConfig()
    if config_file is not None:
        values = load_config_file(find_config(config_file, "reconstruct"))
        config = update_dataclass(config, values, str(config_file), skip=("version",))
    config = apply_dataclass_overrides(config, overrides)
    check_config(config)
    return config


def check_config(config: ReconstructConfig) -> None:
    """Raise :class:`InputError` on a setting outside its range."""
    for name in ("landmark_stage", "model_stage", "vertex_stage", "tracking_stage"):
        stage = getattr(config, name)
        if not isinstance(stage.iterations, int) or stage.iterations < 0:
            raise InputError(f"{name}.iterations must be an integer >= 0, got {stage.iterations}")
        if not stage.lr > 0:
            raise InputError(f"{name}.lr must be positive, got {stage.lr}")
        if not 0 <= stage.plateau < 1 or int(stage.patience) < 1:
            raise InputError(f"{name}: plateau must be in [0, 1) and patience >= 1")
    for name, value in dataclasses.asdict(config.weights).items():
        if not value >= 0:
            raise InputError(f"weights.{name} must be >= 0, got {value}")
    if not 0 < config.scale <= 1:
        raise InputError(f"scale must be in (0, 1], got {config.scale}")
    if config.crop_margin is not None and not 0 <= config.crop_margin <= 2:
        raise InputError(f"crop_margin must be in [0, 2] or null, got {config.crop_margin}")
    if int(config.visibility_every) < 1:
        raise InputError(f"visibility_every must be >= 1, got {config.visibility_every}")
    if config.smoothing_hz is not None and not config.smoothing_hz > 0:
        raise InputError(f"smoothing_hz must be positive or null, got {config.smoothing_hz}")
    if not (config.colour_sigma > 0 and config.depth_sigma_mm > 0):  # NaN fails too
        raise InputError("colour_sigma and depth_sigma_mm must be positive")
    from mmface4d.render.rasterize import BACKENDS  # torch: not for `reconstruct --help`

    if config.backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")

"""The paper's three-stage fit of a face model to one multi-view RGB-D frame, and its tracking.

Stages (section IV of the paper; iterations, rates and weights in
:class:`~mmface4d.reconstruct.config.ReconstructConfig`):

1. **Landmark fitting** (:meth:`FaceFitter.fit_landmarks`): identity, expression and head pose
   so that the model's landmark vertices project onto the detected 2D landmarks of every camera
   (landmark + prior losses). The pose starts from a rigid fit of the model's landmarks to the
   landmarks lifted with depth (:func:`initial_pose`).
2. **3DMM fitting** (:meth:`FaceFitter.fit_model`): + albedo and one SH lighting per camera,
   through the differentiable renderer over all cameras at once (eq. 2: colour, depth,
   landmark, prior).
3. **Vertex-level fitting** (:meth:`FaceFitter.fit_offsets`): per-vertex offsets on top of the
   3DMM shape (eq. 3-4: colour, depth, landmark + edge, Laplacian and offset regularisers).

Later frames (:meth:`FaceFitter.track`) start from the previous frame's parameters and run the
vertex-level stage (with ``track_coefficients``, also expression and head pose, as the official
code). A loss that becomes NaN raises :class:`FitDiverged`; the sequence tracker recovers.

Parameter units are chosen so that one Adam rate suits all of them: coefficients as the model
defines them, rotation as an axis-angle (radians) on top of the initial rotation, translation
in decimetres (:data:`TRANSLATION_UNIT`: a step of lr 0.01 moves the head by 1 mm) and offsets
in centimetres (:data:`OFFSET_UNIT`: 0.1 mm). The world is the reference (centre) camera's
frame, metres.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from mmface4d.capture.calibration import CalibrationConfig, align_landmarks, lift_landmarks
from mmface4d.capture.cameras import CameraCalibration
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import canonical_arkit_name
from mmface4d.facemodel.lighting import SH_COEFFS
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry import uniform_laplacian, unique_edges
from mmface4d.geometry.align import axis_angle_matrix
from mmface4d.geometry.frames import MM_PER_M, axis_flip_matrix
from mmface4d.reconstruct import losses
from mmface4d.reconstruct.config import ReconstructConfig, StageConfig
from mmface4d.reconstruct.observation import FrameObservation
from mmface4d.render.rasterize import get_rasterizer
from mmface4d.render.shade import RenderOutput, render_rgbd

#: Rotation of a face that faces the camera: model-frame axes (x left of the subject, y up, z out
#: of the face) -> OpenCV camera axes, ``diag(1, -1, -1)``.
FACING_CAMERA = axis_flip_matrix()
#: Half-width of the depth band about the landmarks' median depth when lifting them, metres.
LIFT_BAND_M = 0.05
#: Metres per unit of :attr:`FaceParameters.translation`.
TRANSLATION_UNIT = 0.1
#: Metres per unit of :attr:`FaceParameters.offsets`.
OFFSET_UNIT = 0.01
#: Where a face is assumed when no landmark can be lifted: straight ahead, metres.
DEFAULT_DISTANCE = 0.7
#: iBUG-68 landmarks used to initialise the pose: all but the jaw contour (0-16), whose 2D
#: detections follow the silhouette and lift onto the background.
_INNER_LANDMARKS = np.arange(17, 68)


class FitDiverged(RuntimeError):
    """A loss became NaN or infinite during a stage."""


@dataclass
class FaceParameters:
    """The fitted state of one frame.

    Attributes:
        identity: (K_id,) coefficients.
        expression: (K_exp,) coefficients.
        albedo: (K_alb,) coefficients.
        rotation: (3,) axis-angle (radians) applied after ``base_rotation``.
        translation: (3,) added to ``base_translation``, in :data:`TRANSLATION_UNIT` metres.
        lighting: (C, 27) SH coefficients per camera (0.8 is added to each first band).
        offsets: (V, 3) per-vertex offsets in the model frame, in :data:`OFFSET_UNIT` metres.
        base_rotation: (3, 3) model-to-world rotation of the initialisation (fixed).
        base_translation: (3,) world position of the initialisation, metres (fixed).
    """

    identity: torch.Tensor
    expression: torch.Tensor
    albedo: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    lighting: torch.Tensor
    offsets: torch.Tensor
    base_rotation: torch.Tensor
    base_translation: torch.Tensor

    TRAINABLE = (
        "identity",
        "expression",
        "albedo",
        "rotation",
        "translation",
        "lighting",
        "offsets",
    )

    def clone(self) -> FaceParameters:
        """A detached copy (new leaves)."""
        return FaceParameters(
            **{f.name: getattr(self, f.name).detach().clone() for f in fields(self)}
        )

    def rotation_matrix(self) -> torch.Tensor:
        """(3, 3) model-to-world rotation."""
        return axis_angle_matrix(self.rotation) @ self.base_rotation

    def world_translation(self) -> torch.Tensor:
        """(3,) model-to-world translation, metres."""
        return self.base_translation + TRANSLATION_UNIT * self.translation

    def as_numpy(self) -> dict[str, np.ndarray]:
        """The coefficients and pose as float32 arrays (pose as a matrix and metres)."""
        with torch.no_grad():
            return {
                "identity": self.identity.cpu().numpy().astype(np.float32),
                "expression": self.expression.cpu().numpy().astype(np.float32),
                "albedo": self.albedo.cpu().numpy().astype(np.float32),
                "rotation": self.rotation_matrix().cpu().numpy().astype(np.float32),
                "translation": self.world_translation().cpu().numpy().astype(np.float32),
                "lighting": self.lighting.cpu().numpy().astype(np.float32),
                "offsets": (OFFSET_UNIT * self.offsets).cpu().numpy().astype(np.float32),
            }


@dataclass
class StageReport:
    """How one stage went.

    Attributes:
        stage: ``landmark``, ``model``, ``vertex`` or ``tracking``.
        iterations: iterations run (fewer than configured when the loss plateaued).
        seconds: wall time.
        loss: the total loss at the first and at the last iteration (before its step).
        terms: the last value of each weighted loss term.
    """

    stage: str
    iterations: int
    seconds: float
    loss: tuple[float, float]
    terms: dict[str, float] = field(default_factory=dict)


def initial_pose(
    model: FaceModel, observation: FrameObservation, depth_window: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Model-to-world rotation (3, 3) and translation (3,) from the lifted landmarks.

    Every camera's valid inner landmarks (not the jaw contour) are lifted with their depth
    (dropping those whose depth lies over 5 cm from the landmarks' median: a landmark hidden
    from a side camera falls on the silhouette and lifts onto the backdrop) and moved into the
    world; the model's mean-face landmark vertices are fitted to them rigidly and robustly
    (RANSAC, then iterated outlier rejection:
    :func:`~mmface4d.capture.calibration.align_landmarks`). Without 6 agreeing points the face
    is put :data:`DEFAULT_DISTANCE` ahead of the reference camera, facing it.
    """
    mean_points, world_points = [], []
    landmarks = observation.landmarks.cpu().numpy()
    valid = observation.landmark_valid.cpu().numpy()
    if landmarks.shape[1] == len(model.landmarks):
        inner = _INNER_LANDMARKS[_INNER_LANDMARKS < landmarks.shape[1]]
        depth = observation.depth.cpu().numpy()
        for camera, pinhole in enumerate(observation.cameras):
            calibration = CameraCalibration.from_pinhole(pinhole)
            points = np.where(valid[camera][:, None], landmarks[camera], np.nan)[inner]
            millimetres = np.round(depth[camera] * MM_PER_M).astype(np.uint16)
            lifted, ok = lift_landmarks(
                points, millimetres, calibration, window=depth_window, band_m=LIFT_BAND_M
            )
            world = lifted[ok] @ calibration.extrinsics[:3, :3].T + calibration.extrinsics[:3, 3]
            world_points.append(world)
            mean_points.append(model.mean[model.landmarks[inner][ok]])
    default = FACING_CAMERA.copy(), np.array([0.0, 0.0, DEFAULT_DISTANCE])
    if sum(len(p) for p in world_points) < 6:
        return default
    try:  # mean face -> this person: allow a centimetre of identity before calling outliers
        fit = align_landmarks(
            np.concatenate(world_points),
            np.concatenate(mean_points),
            CalibrationConfig(outlier_floor_m=0.012),
        )
    except InputError:
        return default
    return fit.transform[:3, :3], fit.transform[:3, 3]


class FaceFitter:
    """Fits one face model to frames of one camera set.

    Args:
        model: the face model (its 68 landmark vertices drive the landmark loss).
        config: stages, weights and options.
        num_cameras: C.
    """

    def __init__(self, model: FaceModel, config: ReconstructConfig, num_cameras: int) -> None:
        if len(model.landmarks) == 0:
            raise InputError(
                f"face model {model.name!r} has no landmark vertices; the fit needs its 68 "
                "iBUG landmarks"
            )
        self.model, self.config, self.num_cameras = model, config, int(num_cameras)
        self.device = torch.device(config.device)
        self.dtype = torch.float32
        self.faces = torch.as_tensor(model.faces, dtype=torch.int64, device=self.device)
        self.edges = torch.as_tensor(unique_edges(model.faces), device=self.device)
        self.laplacian = uniform_laplacian(model.faces, model.num_vertices).to(self.device)
        self.landmark_index = torch.as_tensor(
            model.landmarks, dtype=torch.int64, device=self.device
        )
        self.rasterizer = get_rasterizer(config.backend, self.device)
        self.blendshape_rig = config.bound_blendshapes and all(
            canonical_arkit_name(name) for name in model.expression_names
        )
        self.dims = {
            "identity": _dims(config.identity_dims, model.identity_dims, "identity_dims"),
            "expression": _dims(config.expression_dims, model.expression_dims, "expression_dims"),
            "albedo": _dims(config.albedo_dims, model.albedo_dims, "albedo_dims"),
        }

    # ------------------------------------------------------------------ model evaluation
    def initial_parameters(self, observation: FrameObservation) -> FaceParameters:
        """Zero coefficients, neutral lighting and the pose of :func:`initial_pose`."""
        rotation, translation = initial_pose(self.model, observation)

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=self.dtype, device=self.device)

        return FaceParameters(
            identity=zeros(self.dims["identity"]),
            expression=zeros(self.dims["expression"]),
            albedo=zeros(self.dims["albedo"]),
            rotation=zeros(3),
            translation=zeros(3),
            lighting=zeros(self.num_cameras, SH_COEFFS),
            offsets=zeros(self.model.num_vertices, 3),
            base_rotation=torch.as_tensor(rotation, dtype=self.dtype, device=self.device),
            base_translation=torch.as_tensor(translation, dtype=self.dtype, device=self.device),
        )

    def model_vertices(self, params: FaceParameters) -> torch.Tensor:
        """(V, 3) the face in the model frame, offsets included."""
        return self.model.vertices(params.identity, params.expression, OFFSET_UNIT * params.offsets)

    def world_vertices(self, params: FaceParameters) -> torch.Tensor:
        """(V, 3) the face in the world (reference camera) frame, metres."""
        return self.model_vertices(params) @ params.rotation_matrix().T + params.world_translation()

    def render(
        self,
        params: FaceParameters,
        observation: FrameObservation,
        triangle_id: torch.Tensor | None = None,
    ) -> RenderOutput:
        """Render the fitted face into every camera: (1, C, H, W, ...) images."""
        albedo = self.model.albedo(params.albedo[None])
        return render_rgbd(
            self.world_vertices(params)[None],
            self.faces,
            albedo,
            observation.cameras,
            params.lighting[None],
            backend=self.rasterizer,
            triangle_id=triangle_id,
        )

    def project_landmarks(
        self, params: FaceParameters, observation: FrameObservation
    ) -> torch.Tensor:
        """(C, 68, 2) the model's landmark vertices in every camera's pixels."""
        points = self.world_vertices(params).index_select(0, self.landmark_index)
        return torch.stack([camera.project(points) for camera in observation.cameras])

    def around_face(
        self, params: FaceParameters, observation: FrameObservation
    ) -> FrameObservation:
        """``observation`` cut to the window of the face as ``params`` place it (grown by
        ``config.crop_margin``); unchanged when cropping is off."""
        if self.config.crop_margin is None:
            return observation
        with torch.no_grad():
            vertices = self.world_vertices(params)
            projected = [camera.project(vertices).cpu().numpy() for camera in observation.cameras]
        return observation.crop_around(projected, self.config.crop_margin)

    # ------------------------------------------------------------------ losses
    def loss_terms(
        self,
        params: FaceParameters,
        observation: FrameObservation,
        terms: tuple[str, ...],
        triangle_id: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], RenderOutput | None]:
        """The weighted loss terms named in ``terms`` (and the render, when one was needed)."""
        weights, config = self.config.weights, self.config
        values: dict[str, torch.Tensor] = {}
        render = None
        if "colour" in terms or "depth" in terms:
            render = self.render(params, observation, triangle_id)
            mask = render.mask[0]
            if "colour" in terms:
                values["colour"] = weights.colour * losses.colour_loss(
                    render.rgb[0], observation.colour, mask, config.colour_sigma
                )
            if "depth" in terms:
                measured = mask & (observation.depth > 0)
                values["depth"] = weights.depth * losses.depth_loss(
                    render.depth[0], observation.depth, measured, config.depth_sigma_mm
                )
        if "landmark" in terms and observation.landmarks.shape[1] == len(self.landmark_index):
            values["landmark"] = weights.landmark * losses.landmark_loss(
                self.project_landmarks(params, observation),
                observation.landmarks,
                observation.landmark_valid,
                observation.image_size[0],
            )
        if "prior" in terms:
            coefficients = [params.identity, params.expression]
            if "colour" in terms:
                coefficients.append(params.albedo)
            values["prior"] = weights.prior * losses.prior_loss(*coefficients)
        offsets_mm = MM_PER_M * OFFSET_UNIT * params.offsets
        if "edge" in terms:
            values["edge"] = weights.edge * losses.edge_loss(offsets_mm, self.edges)
        if "laplacian" in terms:
            values["laplacian"] = weights.laplacian * losses.laplacian_loss(
                offsets_mm, self.laplacian
            )
        if "offset" in terms:
            values["offset"] = weights.offset * losses.offset_loss(offsets_mm)
        return values, render

    # ------------------------------------------------------------------ stages
    def run_stage(
        self,
        name: str,
        params: FaceParameters,
        observation: FrameObservation,
        trainable: tuple[str, ...],
        terms: tuple[str, ...],
        stage: StageConfig,
        on_iteration: Callable[[int, float], None] | None = None,
    ) -> tuple[FaceParameters, StageReport]:
        """Optimise ``trainable`` parameters against ``terms`` with Adam.

        Visibility is recomputed every ``config.visibility_every`` iterations; in between the
        barycentrics of the same triangles are recomputed (differentiably).

        Raises:
            FitDiverged: the loss became NaN or infinite.
        """
        params = params.clone()
        for key in trainable:
            getattr(params, key).requires_grad_(True)
        optimiser = torch.optim.Adam([getattr(params, key) for key in trainable], lr=stage.lr)
        start, history, triangle_id = time.perf_counter(), [], None
        values: dict[str, torch.Tensor] = {}
        iterations = 0
        for iteration in range(stage.iterations):
            refresh = iteration % int(self.config.visibility_every) == 0
            values, render = self.loss_terms(
                params, observation, terms, None if refresh else triangle_id
            )
            if refresh and render is not None:
                triangle_id = render.triangle_id.detach()
            total = sum(values.values())
            if not torch.isfinite(total):
                raise FitDiverged(
                    f"{name} stage: the loss became {float(total.detach())} at "
                    f"iteration {iteration}"
                )
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            if self.blendshape_rig and "expression" in trainable:
                with torch.no_grad():
                    params.expression.clamp_(0.0, 1.0)
            history.append(float(total.detach()))
            iterations = iteration + 1
            if on_iteration is not None:
                on_iteration(iteration, history[-1])
            if _plateaued(history, stage):
                break
        for key in trainable:
            getattr(params, key).requires_grad_(False)
        if not history:  # no iteration: report the loss of the parameters as they are
            with torch.no_grad():
                values, _ = self.loss_terms(params, observation, terms)
            history.append(float(sum(values.values())))
        report = StageReport(
            stage=name,
            iterations=iterations,
            seconds=time.perf_counter() - start,
            loss=(history[0], history[-1]),
            terms={key: float(value.detach()) for key, value in values.items()},
        )
        return params.clone(), report

    def fit_landmarks(
        self, params: FaceParameters, observation: FrameObservation
    ) -> tuple[FaceParameters, StageReport]:
        """Stage 1: identity, expression and pose from the 2D landmarks."""
        return self.run_stage(
            "landmark",
            params,
            observation,
            ("identity", "expression", "rotation", "translation"),
            ("landmark", "prior"),
            self.config.landmark_stage,
        )

    def fit_model(
        self, params: FaceParameters, observation: FrameObservation
    ) -> tuple[FaceParameters, StageReport]:
        """Stage 2: every 3DMM parameter through the renderer (eq. 2)."""
        return self.run_stage(
            "model",
            params,
            observation,
            ("identity", "expression", "albedo", "rotation", "translation", "lighting"),
            ("colour", "depth", "landmark", "prior"),
            self.config.model_stage,
        )

    def fit_offsets(
        self, params: FaceParameters, observation: FrameObservation
    ) -> tuple[FaceParameters, StageReport]:
        """Stage 3: per-vertex offsets (eq. 3-4)."""
        return self.run_stage(
            "vertex",
            params,
            observation,
            ("offsets",),
            ("colour", "depth", "landmark", "edge", "laplacian", "offset"),
            self.config.vertex_stage,
        )

    def fit_first_frame(
        self, observation: FrameObservation
    ) -> tuple[FaceParameters, list[StageReport], list[FaceParameters]]:
        """The three stages from scratch.

        Returns:
            The final parameters, one report per stage, and the parameters after each stage
            (for per-stage error maps).
        """
        landmarks, landmark_report = self.fit_landmarks(
            self.initial_parameters(observation), observation
        )
        observation = self.around_face(landmarks, observation)  # the face is placed now
        model, model_report = self.fit_model(landmarks, observation)
        final, vertex_report = self.fit_offsets(model, observation)
        return final, [landmark_report, model_report, vertex_report], [landmarks, model, final]

    def track(
        self, previous: FaceParameters, observation: FrameObservation
    ) -> tuple[FaceParameters, StageReport]:
        """A later frame: the vertex-level stage from the previous frame's parameters (with
        ``track_coefficients``, expression and head pose too)."""
        trainable: tuple[str, ...] = ("offsets",)
        terms: tuple[str, ...] = ("colour", "depth", "landmark", "edge", "laplacian", "offset")
        if self.config.track_coefficients:
            trainable += ("expression", "rotation", "translation")
            terms += ("prior",)
        return self.run_stage(
            "tracking",
            previous,
            self.around_face(previous, observation),
            trainable,
            terms,
            self.config.tracking_stage,
        )


def _plateaued(history: list[float], stage: StageConfig) -> bool:
    if stage.plateau <= 0 or len(history) <= stage.patience:
        return False
    before = history[-1 - stage.patience]
    return before - history[-1] < stage.plateau * abs(before)


def _dims(wanted: int | None, available: int, name: str) -> int:
    if wanted is None:
        return available
    if not 0 <= wanted <= available:
        raise InputError(f"{name} must be in 0..{available} for this face model, got {wanted}")
    return int(wanted)

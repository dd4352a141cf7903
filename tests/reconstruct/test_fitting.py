"""The three-stage fit (mmface4d.reconstruct.fitting) on a rendered scene whose face is known
(``scene`` in conftest.py: 3 cameras, 120x90, noise-free), and the renderer's visibility
reuse (``render_rgbd(..., triangle_id=...)``) that the fit relies on."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mmface4d.capture.landmarks import FrameLandmarks
from mmface4d.errors import InputError
from mmface4d.geometry.align import fit_similarity
from mmface4d.reconstruct.config import ReconstructConfig, StageConfig
from mmface4d.reconstruct.fitting import (
    DEFAULT_DISTANCE,
    FACING_CAMERA,
    OFFSET_UNIT,
    TRANSLATION_UNIT,
    FaceFitter,
    FaceParameters,
    FitDiverged,
    StageReport,
    initial_pose,
)
from mmface4d.reconstruct.observation import observe
from mmface4d.render.shade import render_rgbd

#: Iterations of the fixture's fit (a fraction of the paper's 100 / 500 / 500).
STAGES = {"landmark": 80, "model": 60, "vertex": 30}


def small_config(**changes) -> ReconstructConfig:
    config = ReconstructConfig(
        landmark_stage=StageConfig(STAGES["landmark"], 0.01),
        model_stage=StageConfig(STAGES["model"], 0.01),
        vertex_stage=StageConfig(STAGES["vertex"], 0.01),
        tracking_stage=StageConfig(10, 0.005),
    )
    return dataclasses.replace(config, **changes)


def rotation_angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (np.trace(np.asarray(a, np.float64).T @ np.asarray(b, np.float64)) - 1) / 2
    return math.degrees(math.acos(np.clip(cosine, -1.0, 1.0)))


def true_parameters(scene, fitter: FaceFitter) -> FaceParameters:
    """The scene's own face as fitter parameters (zero residual rotation and translation)."""
    params = fitter.initial_parameters(scene.observation)
    return dataclasses.replace(
        params,
        identity=scene.identity.clone(),
        expression=scene.expression.clone(),
        lighting=scene.lighting[0].clone(),
        base_rotation=scene.rotation.clone(),
        base_translation=scene.translation.clone(),
    )


@dataclass
class Fitted:
    fitter: FaceFitter
    initial: FaceParameters
    after: dict[str, FaceParameters]
    reports: dict[str, StageReport]
    error_mm: dict[str, float]
    landmark_loss: dict[str, float]


@pytest.fixture(scope="module")
def fitted(scene) -> Fitted:
    """The three stages run once, one after the other, on the scene."""
    fitter = FaceFitter(scene.model, small_config(), scene.observation.num_cameras)
    params = fitter.initial_parameters(scene.observation)
    initial = params

    def landmark_loss(p: FaceParameters) -> float:
        with torch.no_grad():
            values, _ = fitter.loss_terms(p, scene.observation, ("landmark",))
        return float(values["landmark"])

    after, reports = {}, {}
    error = {"initial": scene.face_error_mm(fitter.world_vertices(params))}
    marks = {"initial": landmark_loss(params)}
    for name, stage in (
        ("landmark", fitter.fit_landmarks),
        ("model", fitter.fit_model),
        ("vertex", fitter.fit_offsets),
    ):
        params, report = stage(params, scene.observation)
        after[name], reports[name] = params, report
        error[name] = scene.face_error_mm(fitter.world_vertices(params))
        marks[name] = landmark_loss(params)
    return Fitted(fitter, initial, after, reports, error, marks)


# ---------------------------------------------------------------------- initialisation
def test_initial_pose_recovers_the_pose_roughly(scene):
    rotation, translation = initial_pose(scene.model, scene.observation)
    assert rotation.shape == (3, 3) and translation.shape == (3,)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert rotation_angle_degrees(rotation, scene.rotation.numpy()) < 8.0
    assert np.linalg.norm(translation - scene.translation.numpy()) < 0.015


def test_initial_pose_without_landmarks_or_depth_faces_the_camera(scene):
    observation = scene.observation
    no_marks = dataclasses.replace(
        observation, landmark_valid=torch.zeros_like(observation.landmark_valid)
    )
    no_depth = dataclasses.replace(observation, depth=torch.zeros_like(observation.depth))
    foreign = dataclasses.replace(
        observation,
        landmarks=observation.landmarks[:, :5],
        landmark_valid=observation.landmark_valid[:, :5],
    )
    for case in (no_marks, no_depth, foreign):
        rotation, translation = initial_pose(scene.model, case)
        np.testing.assert_array_equal(rotation, FACING_CAMERA)
        np.testing.assert_array_equal(translation, [0.0, 0.0, DEFAULT_DISTANCE])


def _studio_pose_error(studio_capture, face_model, scale: float) -> tuple[float, float]:
    """(degrees, metres) between initial_pose on the studio recording's first frame and the
    rigid fit of the model's inner landmarks to the true mesh's."""
    recording = studio_capture.open()
    frame = next(recording.frames(0, 1))
    with FrameLandmarks(recording, "file") as source:
        marks = source(0, frame.colour)
    observation = observe(0, frame.colour, frame.depth, recording.calibrations, marks, scale)
    inner = face_model.landmarks[17:]
    truth = fit_similarity(face_model.mean[inner], studio_capture.truth.vertices[0][inner])
    rotation, translation = initial_pose(face_model, observation)
    return (
        rotation_angle_degrees(rotation, truth.rotation),
        float(np.linalg.norm(translation - truth.translation)),
    )


def test_initial_pose_ignores_landmarks_lifted_onto_the_backdrop(studio_capture, face_model):
    degrees, metres = _studio_pose_error(studio_capture, face_model, scale=1.0)
    assert degrees < 10.0 and metres < 0.01


def test_initial_parameters(scene, fitted):
    params = fitted.initial
    model = scene.model
    assert params.identity.shape == (model.identity_dims,)
    assert params.expression.shape == (model.expression_dims,)
    assert params.albedo.shape == (model.albedo_dims,)
    assert params.lighting.shape == (3, 27) and params.offsets.shape == (model.num_vertices, 3)
    for name in FaceParameters.TRAINABLE:
        tensor = getattr(params, name)
        assert tensor.dtype == torch.float32 and (tensor == 0).all() and not tensor.requires_grad
    expected_rotation, expected_translation = initial_pose(model, scene.observation)
    np.testing.assert_allclose(params.rotation_matrix().numpy(), expected_rotation, atol=1e-6)
    np.testing.assert_allclose(params.world_translation().numpy(), expected_translation, atol=1e-6)


def test_dims_options(scene):
    fitter = FaceFitter(
        scene.model, small_config(identity_dims=5, expression_dims=0, albedo_dims=2), 3
    )
    params = fitter.initial_parameters(scene.observation)
    assert params.identity.shape == (5,) and params.expression.shape == (0,)
    assert params.albedo.shape == (2,)
    assert fitter.world_vertices(params).shape == (scene.model.num_vertices, 3)
    with pytest.raises(InputError, match="identity_dims must be in 0..24"):
        FaceFitter(scene.model, small_config(identity_dims=99), 3)


def test_a_model_without_landmarks_is_refused(scene):
    # FaceModel itself insists on 68 landmarks, so the bare model is patched after the fact
    bare = copy.copy(scene.model)
    bare.landmarks = np.zeros(0, dtype=np.int64)
    with pytest.raises(InputError, match="no landmark vertices"):
        FaceFitter(bare, small_config(), 3)


# ---------------------------------------------------------------------- known values
def test_the_true_face_explains_the_observation(scene):
    """At the scene's own parameters every data term vanishes (render and landmarks)."""
    fitter = FaceFitter(scene.model, small_config(), 3)
    params = true_parameters(scene, fitter)
    torch.testing.assert_close(fitter.world_vertices(params), scene.vertices, atol=1e-6, rtol=0)
    terms, render = fitter.loss_terms(
        params, scene.observation, ("colour", "depth", "landmark", "edge", "laplacian", "offset")
    )
    assert render is not None and render.rgb.shape == (1, 3, 90, 120, 3)
    assert terms["colour"] < 1e-6 and terms["depth"] < 1e-6 and terms["landmark"] < 1e-9
    assert terms["edge"] == 0 and terms["laplacian"] == 0 and terms["offset"] == 0
    projected = fitter.project_landmarks(params, scene.observation)
    torch.testing.assert_close(projected.float(), scene.observation.landmarks, atol=1e-3, rtol=0)
    # moving the face 1 mm away from the centre camera costs depth: 1 / (1 + 2^2) = 0.2 per
    # pixel there, 0.7^2 / (0.7^2 + 2^2) = 0.11 in the side cameras (45 degrees)
    shifted = dataclasses.replace(params, translation=torch.tensor([0.0, 0.0, 0.001 / 0.1]))
    terms, _ = fitter.loss_terms(shifted, scene.observation, ("depth",))
    assert 0.11 < terms["depth"] / fitter.config.weights.depth < 0.2


def test_loss_terms_weights_and_prior(scene):
    config = small_config(
        weights=dataclasses.replace(ReconstructConfig().weights, prior=2.0, offset=3.0)
    )
    fitter = FaceFitter(scene.model, config, 3)
    params = fitter.initial_parameters(scene.observation)
    params = dataclasses.replace(
        params,
        identity=torch.ones_like(params.identity),
        albedo=torch.full_like(params.albedo, 10.0),
        offsets=torch.full_like(params.offsets, 0.1),
    )
    terms, render = fitter.loss_terms(params, scene.observation, ("prior", "offset"))
    assert render is None and set(terms) == {"prior", "offset"}
    k_id, k_exp = params.identity.numel(), params.expression.numel()
    # albedo is left out of the prior unless colour is fitted
    assert float(terms["prior"]) == pytest.approx(2.0 * k_id / (k_id + k_exp))
    # 0.1 offset units = 1 mm on each axis: 3 mm^2 per vertex
    assert float(terms["offset"]) == pytest.approx(3.0 * 3.0, rel=1e-5)
    terms, _ = fitter.loss_terms(params, scene.observation, ("prior", "colour"))
    k_alb = params.albedo.numel()
    assert float(terms["prior"]) == pytest.approx(
        2.0 * (k_id + 100.0 * k_alb) / (k_id + k_exp + k_alb)
    )


# ---------------------------------------------------------------------- the three stages
def test_landmark_stage_lowers_the_landmark_loss_and_the_error(fitted):
    report = fitted.reports["landmark"]
    assert report.stage == "landmark" and report.iterations == STAGES["landmark"]
    assert report.seconds > 0 and set(report.terms) == {"landmark", "prior"}
    assert report.loss[1] < 0.1 * report.loss[0]
    assert fitted.landmark_loss["landmark"] < 0.05 * fitted.landmark_loss["initial"]
    assert fitted.error_mm["landmark"] < 0.5 * fitted.error_mm["initial"]
    assert fitted.error_mm["landmark"] < 2.5
    # only the shape and pose move: no albedo, lighting or offsets yet
    params = fitted.after["landmark"]
    assert (params.albedo == 0).all() and (params.lighting == 0).all()
    assert (params.offsets == 0).all() and (params.identity != 0).any()


def test_model_stage_lowers_the_error_further(fitted):
    report = fitted.reports["model"]
    assert set(report.terms) == {"colour", "depth", "landmark", "prior"}
    assert report.loss[1] < 0.5 * report.loss[0]
    assert fitted.error_mm["model"] < fitted.error_mm["landmark"] - 0.2
    assert fitted.error_mm["model"] < 1.5
    params = fitted.after["model"]
    assert (params.lighting != 0).any() and (params.offsets == 0).all()


def test_vertex_stage_keeps_the_error(fitted):
    report = fitted.reports["vertex"]
    assert set(report.terms) == {"colour", "depth", "landmark", "edge", "laplacian", "offset"}
    assert fitted.error_mm["vertex"] < fitted.error_mm["model"] + 0.1
    before, after = fitted.after["model"], fitted.after["vertex"]
    assert (after.offsets != 0).any()
    # offsets alone are trained
    for name in ("identity", "expression", "albedo", "rotation", "translation", "lighting"):
        torch.testing.assert_close(getattr(after, name), getattr(before, name), atol=0, rtol=0)
    # and they stay small (0.1 mm per step at most): under 5 mm after 30 steps
    assert float((OFFSET_UNIT * after.offsets).norm(dim=-1).max()) < 0.005


def test_fit_first_frame_runs_the_three_stages(scene):
    config = small_config(
        landmark_stage=StageConfig(3, 0.01),
        model_stage=StageConfig(2, 0.01),
        vertex_stage=StageConfig(2, 0.01),
    )
    fitter = FaceFitter(scene.model, config, 3)
    params, reports, snapshots = fitter.fit_first_frame(scene.observation)
    assert [r.stage for r in reports] == ["landmark", "model", "vertex"]
    assert [r.iterations for r in reports] == [3, 2, 2] and len(snapshots) == 3
    torch.testing.assert_close(snapshots[-1].offsets, params.offsets)
    assert not params.offsets.requires_grad


def test_tracking_trains_offsets_expression_and_pose_only(scene, fitted):
    fitter = FaceFitter(scene.model, small_config(tracking_stage=StageConfig(4, 0.005)), 3)
    start = fitted.after["model"]
    params, report = fitter.track(start, scene.observation)
    assert report.stage == "tracking" and report.iterations == 4
    for name in ("identity", "albedo", "lighting", "base_rotation", "base_translation"):
        torch.testing.assert_close(getattr(params, name), getattr(start, name), atol=0, rtol=0)
    for name in ("offsets", "expression", "rotation", "translation"):
        assert not torch.equal(getattr(params, name), getattr(start, name)), name
    assert "prior" in report.terms
    offsets_only = FaceFitter(
        scene.model, small_config(tracking_stage=StageConfig(4, 0.005), track_coefficients=False), 3
    )
    params, report = offsets_only.track(start, scene.observation)
    assert "prior" not in report.terms
    for name in ("expression", "rotation", "translation"):
        torch.testing.assert_close(getattr(params, name), getattr(start, name), atol=0, rtol=0)
    assert not torch.equal(params.offsets, start.offsets)
    assert not start.offsets.requires_grad  # the start is not modified


def test_plateau_stops_a_stage_early_and_callback(scene):
    calls = []
    fitter = FaceFitter(scene.model, small_config(), 3)
    params = fitter.initial_parameters(scene.observation)
    stage = StageConfig(200, 0.01, plateau=0.5, patience=3)
    _, report = fitter.run_stage(
        "landmark",
        params,
        scene.observation,
        ("identity", "expression", "rotation", "translation"),
        ("landmark", "prior"),
        stage,
        on_iteration=lambda i, loss: calls.append((i, loss)),
    )
    assert 3 < report.iterations < 200
    assert [i for i, _ in calls] == list(range(report.iterations))
    assert calls[0][1] == pytest.approx(report.loss[0]) and calls[-1][1] == pytest.approx(
        report.loss[1]
    )
    _, empty = fitter.run_stage(
        "landmark", params, scene.observation, ("identity",), ("landmark",), StageConfig(0, 0.01)
    )
    # no iteration: the loss of the parameters as given, finite (it goes to strict JSON)
    assert empty.iterations == 0 and empty.loss[0] == empty.loss[1] == pytest.approx(report.loss[0])


# ---------------------------------------------------------------------- parameters
def test_clone_detaches(fitted):
    params = fitted.after["landmark"]
    params.identity.requires_grad_(True)
    try:
        copy = params.clone()
        assert not copy.identity.requires_grad and copy.identity.grad_fn is None
        assert copy.identity.data_ptr() != params.identity.data_ptr()
        copy.identity.add_(1.0)
        assert not torch.equal(copy.identity, params.identity)
        torch.testing.assert_close(copy.base_rotation, params.base_rotation)
    finally:
        params.identity.requires_grad_(False)


def test_as_numpy_units(fitted):
    params = fitted.after["vertex"]
    arrays = params.as_numpy()
    assert all(a.dtype == np.float32 for a in arrays.values())
    np.testing.assert_allclose(arrays["offsets"], OFFSET_UNIT * params.offsets.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        arrays["translation"],
        params.base_translation.numpy() + TRANSLATION_UNIT * params.translation.numpy(),
        rtol=1e-6,
    )
    rotation = arrays["rotation"]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)


# ---------------------------------------------------------------------- divergence
def test_nan_observation_raises_fit_diverged(scene, fitted):
    colour = scene.observation.colour.clone()
    colour[0, 0, 0, 0] = float("nan")  # one background pixel
    broken = dataclasses.replace(scene.observation, colour=colour)
    fitter = FaceFitter(scene.model, small_config(model_stage=StageConfig(3, 0.01)), 3)
    start = fitted.after["landmark"]
    with pytest.raises(FitDiverged, match="model stage: the loss became nan at iteration 0"):
        fitter.fit_model(start, broken)
    # the landmark stage does not look at the colour
    fitter.config = small_config(landmark_stage=StageConfig(2, 0.01))
    _, report = fitter.fit_landmarks(fitter.initial_parameters(broken), broken)
    assert math.isfinite(report.loss[1])
    assert issubclass(FitDiverged, RuntimeError)


# ---------------------------------------------------------------------- visibility reuse
def test_render_with_earlier_triangle_ids_equals_rasterizing_again(scene):
    model, cameras = scene.model, scene.observation.cameras
    faces = torch.as_tensor(model.faces)
    albedo = model.albedo(None)
    vertices = scene.vertices.clone()[None].requires_grad_(True)
    fresh = render_rgbd(vertices, faces, albedo, cameras, scene.lighting)
    reused = render_rgbd(
        vertices, faces, albedo, cameras, scene.lighting, triangle_id=fresh.triangle_id.detach()
    )
    torch.testing.assert_close(reused.rgb, fresh.rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(reused.depth, fresh.depth, atol=1e-6, rtol=0)
    assert torch.equal(reused.mask, fresh.mask)
    assert torch.equal(reused.triangle_id, fresh.triangle_id)
    # gradients flow through the reused barycentrics, as through a fresh render
    weights = torch.rand(fresh.depth.shape, generator=torch.Generator().manual_seed(0))
    (grad_fresh,) = torch.autograd.grad((fresh.depth * weights).sum() + fresh.rgb.sum(), vertices)
    (grad_reused,) = torch.autograd.grad(
        (reused.depth * weights).sum() + reused.rgb.sum(), vertices
    )
    assert torch.isfinite(grad_reused).all() and grad_reused.abs().sum() > 0
    torch.testing.assert_close(grad_reused, grad_fresh, atol=1e-4, rtol=1e-3)


def test_reused_triangle_ids_follow_a_moving_mesh(scene):
    """After a small move, the reused triangles give the moved mesh's depth wherever the
    visibility did not change."""
    model, cameras = scene.model, scene.observation.cameras
    faces = torch.as_tensor(model.faces)
    albedo = model.albedo(None)
    before = render_rgbd(scene.vertices[None], faces, albedo, cameras)
    moved = scene.vertices + torch.tensor([0.0005, 0.0, 0.001])
    fresh = render_rgbd(moved[None], faces, albedo, cameras)
    reused = render_rgbd(moved[None], faces, albedo, cameras, triangle_id=before.triangle_id)
    same = fresh.triangle_id == before.triangle_id
    assert same.float().mean() > 0.5
    torch.testing.assert_close(reused.depth[same], fresh.depth[same], atol=1e-6, rtol=0)
    assert torch.equal(reused.mask, before.mask)  # coverage is the earlier render's
    with pytest.raises(InputError, match="triangle_id must be"):
        render_rgbd(moved[None], faces, albedo, cameras, triangle_id=before.triangle_id[:, :2])

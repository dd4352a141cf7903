"""Scenes shared by the reconstruction tests, all tiny so that a busy core runs them quickly.

- :func:`face_model`: the procedural face at its coarsest grid (3.7k vertices, not the default
  10.8k: the fit's speed is what the tests pay for).
- :func:`scene`: a known face (identity, expression, pose) rendered without the studio by
  :func:`render_rgbd` into three 120x90 cameras 45 degrees apart at 0.7 m, with its landmark
  vertices projected as the observed landmarks: a noise-free :class:`FrameObservation`.
- :func:`studio_capture`: a 3-frame studio recording of that face model at 1/8 resolution
  (240x134), filmed once per session from an NPZ mesh sequence (no corpus, no speech).
- :func:`calibrated`: a function opening that recording with its true extrinsics (no
  calibration run needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mmface4d.capture import Capture
from mmface4d.capture.capture import CaptureFrame
from mmface4d.data.sequence import MeshSequence, save_sequence
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.align import axis_angle_matrix
from mmface4d.reconstruct.fitting import FACING_CAMERA
from mmface4d.reconstruct.observation import FrameObservation
from mmface4d.render.camera import PinholeCamera
from mmface4d.render.shade import render_rgbd
from mmface4d.synth.capture import capture
from mmface4d.synth.studio import StudioGroundTruth, StudioRig, load_ground_truth

#: The small procedural face used throughout (grid_columns=40: 3,733 vertices).
MODEL_SPEC = "synth:grid_columns=40"
#: Working image size of :func:`scene`.
WIDTH, HEIGHT = 120, 90
#: Frames of the studio recording.
STUDIO_FRAMES = 3


@pytest.fixture(scope="session")
def face_model() -> FaceModel:
    return load_face_model(MODEL_SPEC)


def scene_cameras(width: int = WIDTH, height: int = HEIGHT, focal: float = 330.0):
    """Three cameras on the studio's ideal poses (the centre one is the world), 0.7 m from
    the face, 45 degrees apart; the face fills about half of each image."""
    poses = StudioRig(pose_jitter_degrees=0.0, pose_jitter_m=0.0).nominal_camera_from_world()
    centre = ((width - 1) / 2, (height - 1) / 2)
    return [
        PinholeCamera(focal, focal, *centre, width, height, R=pose[:3, :3], t=pose[:3, 3])
        for pose in poses
    ]


@dataclass
class Scene:
    """A known face seen by three cameras.

    Attributes:
        model: the face model.
        identity, expression: the true coefficients.
        rotation: (3, 3) true model-to-world rotation; translation: (3,) metres.
        vertices: (V, 3) true world vertices.
        lighting: (1, C, 27) the SH lighting rendered with.
        observation: the rendered frame (colour, depth, projected landmarks).
    """

    model: FaceModel
    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    vertices: torch.Tensor
    lighting: torch.Tensor
    observation: FrameObservation

    def face_error_mm(self, vertices: torch.Tensor) -> float:
        """Mean distance (mm) of (V, 3) world vertices to the truth over the face region."""
        face = torch.as_tensor(self.model.regions["face"])
        with torch.no_grad():
            return float((vertices - self.vertices)[face].norm(dim=-1).mean() * 1000.0)


def make_scene(model: FaceModel, seed: int = 0) -> Scene:
    generator = torch.Generator().manual_seed(seed)
    identity = 0.5 * torch.randn(model.identity_dims, generator=generator)
    expression = torch.zeros(model.expression_dims)
    expression[[0, 1, 17, 25]] = 0.3
    facing = torch.as_tensor(FACING_CAMERA, dtype=torch.float32)
    rotation = axis_angle_matrix(torch.tensor([0.05, 0.1, 0.0])) @ facing
    translation = torch.tensor([0.005, -0.01, 0.7])
    cameras = scene_cameras()
    lighting = torch.zeros(1, len(cameras), 27)
    lighting[..., [1, 10, 19]] = 0.1
    with torch.no_grad():
        vertices = model.vertices(identity, expression) @ rotation.T + translation
        render = render_rgbd(
            vertices[None], torch.as_tensor(model.faces), model.albedo(None), cameras, lighting
        )
        landmarks = torch.stack([c.project(vertices[model.landmarks]) for c in cameras])
    observation = FrameObservation(
        index=0,
        colour=render.rgb[0].float().contiguous(),
        depth=render.depth[0].float().contiguous(),
        landmarks=landmarks.float(),
        landmark_valid=torch.ones(len(cameras), len(model.landmarks), dtype=torch.bool),
        cameras=cameras,
    )
    return Scene(
        model, identity, expression, rotation, translation, vertices, lighting, observation
    )


@pytest.fixture(scope="session")
def scene(face_model: FaceModel) -> Scene:
    return make_scene(face_model)


# ---------------------------------------------------------------------- a studio recording
@dataclass
class StudioCapture:
    """A filmed recording: ``folder/<name>_<cam>.*`` and its ground truth."""

    root: Path
    folder: Path
    name: str
    truth: StudioGroundTruth

    @property
    def extrinsics(self) -> list[np.ndarray]:
        """The true reference-from-camera transforms."""
        return [np.linalg.inv(pose) for pose in self.truth.camera_from_world]

    def open(self) -> Capture:
        """The recording with its true extrinsics."""
        return Capture.from_raw(self.folder, self.name).with_extrinsics(self.extrinsics)


def film(root: Path, model: FaceModel, frames: int = STUDIO_FRAMES) -> StudioCapture:
    """Film a ``frames``-frame sequence of one identity opening its jaw (model frame)."""
    generator = torch.Generator().manual_seed(1)
    identity = 0.5 * torch.randn(model.identity_dims, generator=generator)
    expression = torch.zeros(frames, model.expression_dims)
    expression[:, :3] = torch.linspace(0.0, 0.4, frames)[:, None]
    with torch.no_grad():
        vertices = model.vertices(identity.expand(frames, -1), expression).numpy()
    sequence = MeshSequence(vertices, model.faces, 30.0, colors=model.albedo_mean)
    source = save_sequence(sequence, root / "source" / "S1" / "rec.npz")
    out = capture(
        source,
        root / "capture",
        scale=1 / 8,
        frames=frames,
        seed=3,
        face_model=MODEL_SPEC,
        progress=False,
    )
    folder = out / "S1"
    return StudioCapture(root, folder, "rec", load_ground_truth(folder / "rec_gt_capture.npz"))


@pytest.fixture(scope="session")
def studio_capture(tmp_path_factory: pytest.TempPathFactory, face_model: FaceModel):
    return film(tmp_path_factory.mktemp("studio"), face_model)


class EditedCapture:
    """A capture whose frames pass through ``edit(frame) -> frame`` (everything else is the
    wrapped capture's): to blank a frame's depth without writing videos."""

    def __init__(self, wrapped: Capture, edit) -> None:
        self._wrapped, self._edit = wrapped, edit

    def __getattr__(self, name: str):
        return getattr(self._wrapped, name)

    def __len__(self) -> int:
        return len(self._wrapped)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[CaptureFrame]:
        for frame in self._wrapped.frames(start, stop):
            yield self._edit(frame)


def without_depth(frame: CaptureFrame) -> CaptureFrame:
    return CaptureFrame(frame.index, frame.colour, tuple(np.zeros_like(d) for d in frame.depth))


#: Tiny stages for the tracking tests (about a second per recording). The landmark stage keeps
#: the paper's 100 iterations: the initial pose of the studio recording is off by ~25 degrees
#: (see test_fitting.py::test_initial_pose_ignores_landmarks_lifted_onto_the_backdrop).
TRACKING_OVERRIDES = (
    "scale=1",
    "landmark_stage.iterations=100",
    "model_stage.iterations=10",
    "vertex_stage.iterations=3",
    "tracking_stage.iterations=3",
)


@pytest.fixture(scope="session")
def tracking_config():
    from mmface4d.reconstruct.config import resolve_config

    return resolve_config(overrides=TRACKING_OVERRIDES)


@pytest.fixture(scope="session")
def tracked(studio_capture: StudioCapture, face_model: FaceModel, tracking_config):
    """The studio recording reconstructed with its true cameras: (capture, result)."""
    from mmface4d.reconstruct.tracking import reconstruct_capture

    recording = studio_capture.open()
    return recording, reconstruct_capture(recording, face_model, tracking_config, progress=False)

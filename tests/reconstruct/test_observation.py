"""One frame at the working resolution (mmface4d.reconstruct.observation): block reduction
against naive loops, depth-edge rejection, camera and landmark consistency, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.capture.cameras import CameraCalibration
from mmface4d.errors import InputError
from mmface4d.reconstruct.observation import (
    DEPTH_AGREEMENT_M,
    FrameObservation,
    observe,
    reduce_colour,
    reduce_depth,
    reduction_factor,
    working_camera,
)
from mmface4d.render.camera import PinholeCamera


def naive_colour(colour: np.ndarray, k: int) -> np.ndarray:
    height, width = colour.shape[0] // k, colour.shape[1] // k
    out = np.zeros((height, width, 3))
    for r in range(height):
        for c in range(width):
            out[r, c] = colour[r * k : (r + 1) * k, c * k : (c + 1) * k].reshape(-1, 3).mean(0)
    return out / 255.0


def naive_depth(depth_mm: np.ndarray, k: int) -> np.ndarray:
    height, width = depth_mm.shape[0] // k, depth_mm.shape[1] // k
    out = np.zeros((height, width))
    for r in range(height):
        for c in range(width):
            block = depth_mm[r * k : (r + 1) * k, c * k : (c + 1) * k].ravel().astype(int)
            measured = block[block > 0]
            if 2 * len(measured) >= k * k and np.ptp(measured) <= DEPTH_AGREEMENT_M * 1000:
                out[r, c] = measured.mean() / 1000.0
    return out


def calibration(width: int = 64, height: int = 48, yaw: float = 0.0) -> CameraCalibration:
    extrinsics = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    extrinsics[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    extrinsics[:3, 3] = [0.3 * s, 0.01, 0.2 * (1 - c)]
    intrinsics = np.array([[70.0, 0, 31.2], [0, 72.0, 23.9], [0, 0, 1]])
    return CameraCalibration(intrinsics, width, height, extrinsics=extrinsics)


def test_reduction_factor():
    assert [reduction_factor(s) for s in (1.0, 0.5, 0.25, 0.3, 1 / 8)] == [1, 2, 4, 3, 8]
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(InputError, match="scale"):
            reduction_factor(bad)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_reduce_colour_matches_a_per_block_loop(k):
    rng = np.random.default_rng(k)
    colour = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)  # remainders cropped
    out = reduce_colour(colour, k)
    assert out.shape == (13 // k, 17 // k, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, naive_colour(colour, k), atol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_reduce_depth_matches_a_per_block_loop(k):
    rng = np.random.default_rng(10 + k)
    # multiples of 3 mm: block spreads of 18 and 21 mm but never exactly the 20 mm limit
    # (see test_a_spread_of_exactly_the_limit_is_kept_at_every_depth)
    depth = (3 * rng.integers(230, 239, size=(14, 19))).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.3] = 0  # holes
    depth[:5, :6] = 1500  # a backdrop corner: silhouette blocks straddle 700 / 1500
    out = reduce_depth(depth, k)
    assert out.shape == (14 // k, 19 // k) and out.dtype == np.float32
    np.testing.assert_allclose(out, naive_depth(depth, k), atol=1e-6)
    assert (out == 0).any() and (out > 0).any()


def test_reduce_depth_known_blocks():
    depth = np.array(
        [
            [700, 702, 700, 1500, 0, 0, 700, 0],
            [704, 706, 700, 700, 0, 700, 0, 0],
        ],
        dtype=np.uint16,
    )
    out = reduce_depth(depth, 2)
    # agreeing block: mean; silhouette (spread 0.8 m > 2 cm): dropped; 1/4 measured: dropped;
    # 1/4 measured in the last block: dropped
    np.testing.assert_allclose(out, [[0.703, 0.0, 0.0, 0.0]], atol=1e-6)
    half = np.array([[700, 0], [0, 710]], dtype=np.uint16)  # exactly half measured: kept
    np.testing.assert_allclose(reduce_depth(half, 2), [[0.705]], atol=1e-6)
    # within the agreement limit is kept, past it is not
    edge = np.array([[700, 719], [700, 719]], dtype=np.uint16)
    np.testing.assert_allclose(reduce_depth(edge, 2), [[0.7095]], atol=1e-6)
    past = np.array([[700, 721], [700, 721]], dtype=np.uint16)
    assert reduce_depth(past, 2)[0, 0] == 0.0


def test_a_spread_of_exactly_the_limit_is_kept_at_every_depth():
    kept = [
        reduce_depth(np.array([[a, a + 20], [a, a + 20]], dtype=np.uint16), 2)[0, 0] > 0
        for a in range(700, 720)
    ]
    assert all(kept)


def test_reduce_depth_factor_one_is_metres():
    depth = np.array([[0, 1], [700, 9999]], dtype=np.uint16)
    np.testing.assert_allclose(reduce_depth(depth, 1), [[0, 0.001], [0.7, 9.999]], rtol=1e-6)


def test_reduce_depth_saturated_is_unmeasured():
    depth = np.array([[65535, 10000], [700, 701]], dtype=np.uint16)
    np.testing.assert_allclose(reduce_depth(depth, 1), [[0, 0], [0.7, 0.701]], rtol=1e-6)
    assert reduce_depth(np.full((2, 2), 65535, dtype=np.uint16), 2)[0, 0] == 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_working_camera_keeps_projection_consistent(k):
    full = calibration(yaw=0.4)
    camera = working_camera(full, k)
    assert (camera.width, camera.height) == (64 // k, 48 // k)
    points = torch.tensor(
        [[0.01, -0.02, 0.7], [-0.05, 0.03, 0.6], [0.0, 0.0, 0.9]], dtype=torch.float64
    )
    u_full = full.to_pinhole().project(points)
    u_work = camera.project(points)
    torch.testing.assert_close(u_work, (u_full + 0.5) / k - 0.5)
    # the pose is the calibration's: world = the reference frame
    np.testing.assert_allclose(np.asarray(camera.R), np.linalg.inv(full.extrinsics)[:3, :3])


def _frame(count: int = 2, width: int = 64, height: int = 48):
    rng = np.random.default_rng(0)
    colour = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    depth = [np.full((height, width), 700, dtype=np.uint16) for _ in range(count)]
    calibrations = [calibration(width, height, yaw=0.3 * c) for c in range(count)]
    return colour, depth, calibrations


def test_observe_reduces_images_and_converts_landmarks():
    colour, depth, calibrations = _frame()
    marks = np.array([[10.0, 20.0], [np.nan, 5.0], [63.0, 47.0], [0.0, 0.0]])
    with_z = np.concatenate([marks, np.ones((4, 1))], axis=1)  # (K, 3) input is accepted
    observation = observe(7, colour, depth, calibrations, [with_z, None], scale=0.5)
    assert isinstance(observation, FrameObservation)
    assert observation.index == 7 and observation.num_cameras == 2
    assert observation.image_size == (24, 32)
    assert observation.colour.shape == (2, 24, 32, 3) and observation.colour.dtype == torch.float32
    assert observation.depth.shape == (2, 24, 32)
    np.testing.assert_allclose(observation.colour[1].numpy(), naive_colour(colour[1], 2), atol=1e-6)
    np.testing.assert_allclose(observation.depth.numpy(), 0.7, atol=1e-6)
    assert observation.landmarks.shape == (2, 4, 2)
    np.testing.assert_array_equal(
        observation.landmark_valid.numpy(), [[True, False, True, True], [False] * 4]
    )
    expected = (marks + 0.5) / 2 - 0.5
    np.testing.assert_allclose(observation.landmarks[0, [0, 2, 3]].numpy(), expected[[0, 2, 3]])
    assert torch.isfinite(observation.landmarks).all()  # 0 where invalid, not NaN
    assert (observation.landmarks[1] == 0).all() and (observation.landmarks[0, 1] == 0).all()
    # the working cameras are consistent with the landmarks: a point projects alike
    point = torch.tensor([[0.01, 0.02, 0.7]], dtype=torch.float64)
    full = calibrations[0].to_pinhole().project(point)
    torch.testing.assert_close(observation.cameras[0].project(point), (full + 0.5) / 2 - 0.5)


def test_observe_without_landmarks_and_to():
    colour, depth, calibrations = _frame()
    observation = observe(0, colour, depth, calibrations, [None, None], scale=1.0)
    assert observation.landmarks.shape == (2, 0, 2) and observation.landmark_valid.shape == (2, 0)
    assert observation.image_size == (48, 64)
    moved = observation.to("cpu")
    assert moved.index == 0 and moved.cameras is observation.cameras
    torch.testing.assert_close(moved.colour, observation.colour)


def test_observe_validates_sizes():
    colour, depth, calibrations = _frame()
    with pytest.raises(InputError, match="2 colour, 2 depth and 1 landmark"):
        observe(0, colour, depth, calibrations, [None], 0.5)
    with pytest.raises(InputError, match="camera 1"):
        observe(0, colour, [depth[0], depth[1][:-1]], calibrations, [None, None], 0.5)
    with pytest.raises(InputError, match="camera 0"):
        observe(0, [colour[0][:, :-2], colour[1]], depth, calibrations, [None, None], 0.5)
    other = calibration(66, 48)
    with pytest.raises(InputError, match="share one image size"):
        observe(
            0,
            [colour[0], np.zeros((48, 66, 3), np.uint8)],
            [depth[0], np.zeros((48, 66), np.uint16)],
            [calibrations[0], other],
            [None, None],
            0.5,
        )
    with pytest.raises(InputError, match="3 landmarks, expected 2"):
        observe(0, colour, depth, calibrations, [np.zeros((2, 2)), np.zeros((3, 2))], 0.5)
    with pytest.raises(InputError, match="scale"):
        observe(0, colour, depth, calibrations, [None, None], 0.0)


def test_observe_silhouette_depth_blocks_are_dropped():
    colour, depth, calibrations = _frame(count=1)
    depth[0][:, 33:] = 1500  # a vertical depth edge inside the block of columns 32-33
    observation = observe(0, colour, depth, calibrations, [None], scale=0.5)
    out = observation.depth[0].numpy()
    np.testing.assert_allclose(out[:, :16], 0.7, atol=1e-6)
    assert (out[:, 16] == 0).all()
    np.testing.assert_allclose(out[:, 17:], 1.5, atol=1e-6)


def test_pinhole_round_trip_of_a_working_camera():
    camera = working_camera(calibration(yaw=-0.2), 2)
    again = CameraCalibration.from_pinhole(camera).to_pinhole()
    assert isinstance(again, PinholeCamera)
    np.testing.assert_allclose(again.intrinsic_matrix(), camera.intrinsic_matrix())
    np.testing.assert_allclose(np.asarray(again.R), np.asarray(camera.R), atol=1e-12)

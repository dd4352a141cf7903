"""MMFace4D raw layout: the real sample's json/pkl/wav, writing and reading a recording, and the
synchronised multi-camera :class:`Capture` over it."""

from __future__ import annotations

import collections
import json
import os
import pickle

import av
import numpy as np
import pytest

from mmface4d.capture import (
    CENTRE_CAMERA,
    CameraCalibration,
    Capture,
    RawRecording,
    RawRecordingWriter,
    count_frames,
    find_recordings,
    read_depth_frames,
    read_landmarks,
    read_mmface4d_json,
    write_mmface4d_json,
    write_raw_recording,
)
from mmface4d.errors import InputError
from mmface4d.render.camera import PinholeCamera

HEIGHT, WIDTH, FRAMES, CAMERAS = 48, 64, 5, 3


def _calibrations() -> list[CameraCalibration]:
    cameras = []
    for camera in range(CAMERAS):
        extrinsics = np.eye(4)
        angle = np.radians(30.0 * (camera - CENTRE_CAMERA))
        extrinsics[:3, :3] = [
            [np.cos(angle), 0, np.sin(angle)],
            [0, 1, 0],
            [-np.sin(angle), 0, np.cos(angle)],
        ]
        extrinsics[:3, 3] = [0.4 * np.sin(angle), 0.0, 0.4 * (1 - np.cos(angle))]
        cameras.append(
            CameraCalibration(
                intrinsics=np.array([[70.0, 0, 31.5], [0, 70.0, 23.5], [0, 0, 1]]),
                width=WIDTH,
                height=HEIGHT,
                distortion=[0.01 * camera, 0, 0, 0, 0],
                extrinsics=extrinsics,
                serial=f"00000{camera}",
                metadata={"color_mode": "MJPG_1080P", "depth_mode": "NFOV_UNBINNED"},
            )
        )
    return cameras


def _colour(camera: int, t: int) -> np.ndarray:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack(
        [cols * 3 + 20, rows * 3 + 30 + 5 * t, np.full_like(rows, 60 + 40 * camera)], axis=-1
    ).astype(np.uint8)


@pytest.fixture
def recording(tmp_path):
    """A written 3-camera recording and what went in."""
    rng = np.random.default_rng(7)
    depth = rng.integers(0, 65536, (CAMERAS, FRAMES, HEIGHT, WIDTH), dtype=np.uint16)
    depth[:, :, 0, 0] = [0, 65535, 1, 2, 3]  # extremes survive: the codec is lossless
    colour = [np.stack([_colour(c, t) for t in range(FRAMES)]) for c in range(CAMERAS)]
    landmarks = [rng.uniform(0, WIDTH, (FRAMES, 98, 2)) for _ in range(CAMERAS)]
    audio = (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    raw = write_raw_recording(
        tmp_path,
        "000001",
        _calibrations(),
        colour,
        list(depth),
        landmarks=landmarks,
        audio=audio,
    )
    return raw, colour, depth, landmarks, audio


# ---------------------------------------------------------------------- the real sample
def test_real_sample_intrinsics(shared_data):
    sample = shared_data / "mmface4d_sample"
    calibration = read_mmface4d_json(sample / "000337_0.json")
    assert (calibration.width, calibration.height) == (1920, 1080)
    assert calibration.fx == pytest.approx(910.9786376953125)
    assert calibration.fy == pytest.approx(910.66961669921875)
    assert calibration.cx == pytest.approx(963.4462890625)  # column-major: cx is element 6
    assert calibration.cy == pytest.approx(543.6405029296875)
    assert calibration.serial == "000250714112"
    assert calibration.metadata["depth_mode"] == "NFOV_UNBINNED"
    np.testing.assert_array_equal(calibration.extrinsics, np.eye(4))
    assert not calibration.distortion.any()


def test_real_sample_recording(shared_data):
    sample = shared_data / "mmface4d_sample"
    assert "000337" in find_recordings(sample)
    raw = RawRecording.open(sample, "000337")
    assert raw.cameras == (0, 1, 2)
    for camera in raw.cameras:
        calibration = raw.calibration(camera)
        assert 850 < calibration.fx < 1000 and abs(calibration.cx - 960) < 20
        landmarks = raw.landmarks(camera)
        assert landmarks.shape == (67, 98, 2)
        assert (landmarks[..., 0] > 0).all() and (landmarks[..., 0] < 1920).all()
        assert (landmarks[..., 1] > 0).all() and (landmarks[..., 1] < 1080).all()
    serials = {raw.calibration(c).serial for c in raw.cameras}
    assert len(serials) == 3  # three devices
    audio = raw.audio()
    assert audio.dtype == np.float32 and abs(len(audio) / 16000 - 2.23) < 0.01
    with pytest.raises(InputError, match=r"000337_0\.mp4: colour video not found"):
        Capture.from_raw(sample, "000337")


def test_json_round_trip_keeps_metadata_distortion_and_extrinsics(tmp_path, shared_data):
    source = read_mmface4d_json(shared_data / "mmface4d_sample" / "000337_2.json")
    path = write_mmface4d_json(tmp_path / "a_2.json", source)
    again = read_mmface4d_json(path)
    np.testing.assert_array_equal(again.intrinsics, source.intrinsics)
    assert again.metadata == source.metadata and again.serial == source.serial
    assert "distortion" not in json.loads(path.read_text())  # plain MMFace4D file
    moved = _calibrations()[0]
    again = read_mmface4d_json(write_mmface4d_json(tmp_path / "b_0.json", moved))
    np.testing.assert_allclose(again.extrinsics, moved.extrinsics)
    np.testing.assert_allclose(again.distortion, moved.distortion)
    # still readable as a plain MMFace4D camera
    assert PinholeCamera.from_mmface4d_json(tmp_path / "b_0.json").fx == 70.0


def test_bad_json_and_landmark_files_are_refused(tmp_path):
    (tmp_path / "r_0.json").write_text('{"width": 10}')
    with pytest.raises(InputError, match=r"r_0\.json"):
        read_mmface4d_json(tmp_path / "r_0.json")

    # any pickled object but a numpy array is refused before it is built
    (tmp_path / "r_0.pkl").write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(InputError, match=r"r_0\.pkl: not a pickled landmark array"):
        read_landmarks(tmp_path / "r_0.pkl")
    (tmp_path / "r_1.pkl").write_bytes(pickle.dumps(np.zeros((4, 68, 2))))
    with pytest.raises(InputError, match=r"r_1\.pkl: expected \(T, 98, 2 or 3\)"):
        read_landmarks(tmp_path / "r_1.pkl")


def test_read_real_landmark_files(shared_data):
    for camera in range(3):
        lm = read_landmarks(shared_data / "mmface4d_sample" / f"000337_{camera}.pkl")
        assert lm.shape == (67, 98, 2) and lm.dtype == np.float64
        assert np.isfinite(lm).all()
        # a steady speaker: the landmark centre moves little between frames
        step = np.linalg.norm(np.diff(lm.mean(1), axis=0), axis=1)
        assert step.max() < 20.0


def test_read_landmarks_list_with_missing_frames(tmp_path):
    frame = np.arange(98 * 3, dtype=np.float64).reshape(98, 3)
    path = tmp_path / "rec_0.pkl"
    path.write_bytes(pickle.dumps([frame, None, frame + 1]))
    lm = read_landmarks(path)
    assert lm.shape == (3, 98, 3)
    assert np.isnan(lm[1]).all()
    np.testing.assert_array_equal(lm[2], frame + 1)


class _Malicious:
    def __reduce__(self):
        return (os.getcwd, ())


def test_read_landmarks_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_landmarks(tmp_path / "missing.pkl")
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps(np.zeros((5, 68, 2))))
    with pytest.raises(InputError, match=r"\(T, 98, 2 or 3\)"):
        read_landmarks(wrong)
    assert read_landmarks(wrong, num_points=68).shape == (5, 68, 2)
    code = tmp_path / "code.pkl"
    code.write_bytes(pickle.dumps(_Malicious()))
    with pytest.raises(InputError, match="refusing to load posix.getcwd"):
        read_landmarks(code)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=r"garbage\.pkl: not a pickled landmark array"):
        read_landmarks(garbage)
    infinite = tmp_path / "inf.pkl"
    infinite.write_bytes(pickle.dumps(np.full((2, 98, 2), np.inf)))
    with pytest.raises(InputError, match="infinite"):
        read_landmarks(infinite)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(pickle.dumps([None, None]))
    with pytest.raises(InputError, match="no landmark frames"):
        read_landmarks(empty)


def test_calibration_conversions():
    calibration = _calibrations()[2]
    camera = calibration.to_pinhole()
    point_in_camera = np.array([0.05, -0.02, 0.5])
    point_in_reference = calibration.extrinsics @ np.r_[point_in_camera, 1.0]
    projected = camera.project(point_in_reference[None, :3]).numpy()[0]
    expected = calibration.intrinsics @ point_in_camera
    np.testing.assert_allclose(projected, expected[:2] / expected[2], atol=1e-6)
    back = CameraCalibration.from_pinhole(camera)
    np.testing.assert_allclose(back.extrinsics, calibration.extrinsics, atol=1e-12)
    assert back.serial == calibration.serial
    with pytest.raises(InputError, match="rigid"):
        calibration.with_extrinsics(np.diag([2.0, 1, 1, 1]))


# ---------------------------------------------------------------------- writing and reading
def test_written_files_are_the_dataset_formats(recording):
    raw = recording[0]
    names = sorted(p.name for p in raw.folder.iterdir())
    expected = ["000001.wav"] + [
        f"000001_{c}.{ext}" for c in range(CAMERAS) for ext in ("json", "mp4", "nut", "pkl")
    ]
    assert names == sorted(expected)
    with av.open(str(raw.depth_path(0))) as container:
        assert container.format.name == "nut"
        context = container.streams.video[0].codec_context
        assert (context.name, context.pix_fmt) == ("ffv1", "gray16le")
    with av.open(str(raw.colour_path(0))) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.pix_fmt) == ("h264", "yuv420p")
    data = json.loads(raw.intrinsics_path(1).read_text())
    assert data["serial_number"] == "000001" and data["stream_length_usec"] == 166667
    assert data["intrinsic_matrix"][6] == 31.5  # column-major
    assert count_frames(raw.depth_path(2)) == FRAMES == count_frames(raw.colour_path(2))


def test_raw_recording_round_trip(recording):
    raw, colour, depth, landmarks, audio = recording
    again = RawRecording.open(raw.folder, "000001")
    assert again.cameras == (0, 1, 2)
    for camera in again.cameras:
        frames = list(again.depth_frames(camera))
        np.testing.assert_array_equal(np.stack(frames), depth[camera])  # lossless
        images = np.stack(list(again.colour_frames(camera))).astype(int)
        assert np.abs(images - colour[camera]).mean() < 3  # H.264 crf 18
        np.testing.assert_array_equal(again.landmarks(camera), landmarks[camera])
        written = _calibrations()[camera]
        read = again.calibration(camera)
        np.testing.assert_allclose(read.extrinsics, written.extrinsics)
        np.testing.assert_allclose(read.intrinsics, written.intrinsics)
    np.testing.assert_array_equal(again.audio(), audio)


def test_capture_streams_synchronised_frames(recording):
    raw, colour, depth, _, audio = recording
    capture = Capture.from_raw(raw.folder, raw.recording)
    assert len(capture) == FRAMES and capture.num_cameras == CAMERAS and capture.fps == 30
    assert capture.reference_camera == CENTRE_CAMERA
    frames = list(capture.frames(2, 4))
    assert [f.index for f in frames] == [2, 3]
    for frame in frames:
        for camera in range(CAMERAS):
            np.testing.assert_array_equal(frame.depth[camera], depth[camera][frame.index])
            error = np.abs(frame.colour[camera].astype(int) - colour[camera][frame.index])
            assert error.mean() < 3
    assert sum(1 for _ in capture) == FRAMES
    np.testing.assert_array_equal(capture.audio(), audio)
    assert capture.landmarks(1).shape == (FRAMES, 98, 2)
    with pytest.raises(InputError, match="frame range"):
        next(capture.frames(3, 9))
    moved = capture.with_extrinsics([np.eye(4)] * CAMERAS)
    np.testing.assert_array_equal(moved.calibrations[0].extrinsics, np.eye(4))


def test_capture_refuses_cameras_with_different_frame_counts(recording, tmp_path):
    raw, colour, depth, _, _ = recording
    calibrations = _calibrations()
    short = write_raw_recording(
        tmp_path / "short", "000001", calibrations[:1], [colour[0][:4]], [depth[0][:4]]
    )
    for suffix in (".mp4", ".nut"):
        (raw.folder / f"000001_1{suffix}").write_bytes(
            (short.folder / f"000001_0{suffix}").read_bytes()
        )
    with pytest.raises(InputError, match=r"000001_1\.mp4: 4 frames, camera 0 has 5"):
        Capture.from_raw(raw.folder, "000001")
    (raw.folder / "000001_1.nut").write_bytes(raw.depth_path(0).read_bytes())
    with pytest.raises(InputError, match=r"000001_1\.nut: 5 depth frames, 000001_1\.mp4 has 4"):
        Capture.from_raw(raw.folder, "000001")


def test_streaming_writer_takes_generators(tmp_path):
    calibrations = _calibrations()[:2]
    produced = []

    def frames(camera):
        for t in range(3):
            produced.append((camera, t))
            yield _colour(camera, t)

    depth = [(np.full((HEIGHT, WIDTH), 500 + t, np.uint16) for t in range(3)) for _ in range(2)]
    raw = write_raw_recording(tmp_path, "gen", calibrations, [frames(0), frames(1)], depth)
    # lockstep: both cameras advance together, one frame each
    assert produced == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert [int(d[0, 0]) for d in read_depth_frames(raw.depth_path(1))] == [500, 501, 502]
    assert raw.landmarks(0) is None and raw.audio() is None


def test_writer_errors_leave_no_videos(tmp_path):
    calibrations = _calibrations()
    good = [_colour(c, 0) for c in range(CAMERAS)]
    zero = [np.zeros((HEIGHT, WIDTH), np.uint16)] * CAMERAS
    with pytest.raises(InputError, match=r"camera 1 frame 1: depth must be \(48, 64\) uint16"):
        with RawRecordingWriter(tmp_path, "bad", calibrations) as writer:
            writer.write(good, zero)
            writer.write(good, [zero[0], zero[1].astype(np.float32), zero[2]])
    with pytest.raises(InputError, match=r"depth\[1\]: 1 frames, colour\[0\] has more"):
        write_raw_recording(
            tmp_path,
            "bad",
            calibrations,
            [[g, g] for g in good],
            [[zero[0], zero[0]], [zero[0]], [zero[0], zero[0]]],
        )
    with pytest.raises(InputError, match=r"landmarks\[0\]: 1 frames, the videos have more"):
        write_raw_recording(
            tmp_path,
            "bad",
            calibrations,
            [[g, g] for g in good],
            [[z, z] for z in zero],
            landmarks=[np.zeros((1, 98, 2)), None, None],
        )
    with pytest.raises(InputError, match="audio"):
        write_raw_recording(
            tmp_path,
            "bad",
            calibrations,
            [[g] for g in good],
            [[z] for z in zero],
            audio=np.array([0.0, np.nan]),
        )
    writer = RawRecordingWriter(tmp_path, "aborted", calibrations)
    writer.write(good, zero)
    writer.abort()
    assert list(tmp_path.iterdir()) == []  # no final names, no temporary files
    odd = CameraCalibration(np.array([[50.0, 0, 20], [0, 50, 20], [0, 0, 1]]), 41, 40)
    with pytest.raises(InputError, match="even"):
        RawRecordingWriter(tmp_path, "odd", [odd])


def test_capture_allows_a_camera_that_dropped_out(recording, tmp_path):
    """allow_dropouts: a camera whose files end early gives blank frames from then on."""
    raw, colour, depth, _, _ = recording
    short = write_raw_recording(
        tmp_path / "short", "000001", _calibrations()[:1], [colour[1][:4]], [depth[1][:4]]
    )
    for suffix in (".mp4", ".nut"):
        (raw.folder / f"000001_1{suffix}").write_bytes(
            (short.folder / f"000001_0{suffix}").read_bytes()
        )
    with pytest.raises(InputError, match="4 frames"):
        Capture.from_raw(raw.folder, "000001")
    capture = Capture.from_raw(raw.folder, "000001", allow_dropouts=True)
    assert len(capture) == FRAMES and capture.ends == (FRAMES, 4, FRAMES)
    frames = list(capture.frames())
    assert len(frames) == FRAMES
    np.testing.assert_array_equal(frames[3].depth[1], depth[1][3])  # still recording
    assert not frames[4].colour[1].any() and not frames[4].depth[1].any()  # dropped out
    np.testing.assert_array_equal(frames[4].depth[0], depth[0][4])  # the others go on
    assert capture.with_extrinsics([np.eye(4)] * 3).ends == capture.ends

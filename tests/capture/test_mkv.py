"""Azure Kinect MKV reading, K4A calibration parsing and depth-to-colour registration.

The MKV files are written here with PyAV in the recorder's track layout: a COLOR track (MJPEG),
a DEPTH track stored as ``V_MS/VFW/FOURCC`` raw video with fourcc ``b16g`` (big-endian 16-bit
grey) and a ``calibration.json`` attachment. FFmpeg's Matroska muxer drops a raw-video fourcc it
does not know, so the helper patches ``b16g`` into the track's BITMAPINFOHEADER afterwards.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import ndimage

from mmface4d.capture import (
    COLOUR_MODES,
    CameraCalibration,
    Capture,
    DepthRegistration,
    MkvRecording,
    distort_normalised,
    parse_k4a_calibration,
    register_depth,
    undistort_normalised,
)
from mmface4d.errors import InputError

# Normalised ModelParameters of a real Azure Kinect (a public SDK calibration printout), and the
# pixel intrinsics the SDK printed for NFOV_UNBINNED depth and 1080P colour.
DEPTH_PARAMETERS = [
    0.5122697949409485, 0.49451231956481934, 0.4921168386936188, 0.4921667277812958,
    3.1305770874023438, 2.324939012527466, 0.1304156482219696, 3.458651542663574,
    3.350114583969116, 0.6629416346549988, 0.0, 0.0, -5.11557373101823e-05, 8.132171933539212e-05,
]  # fmt: skip
COLOUR_PARAMETERS = [
    0.4967627227306366, 0.5108628273010254, 0.470907062292099, 0.6274453997612,
    0.7227460145950317, -2.8855903148651123, 1.6327226161956787, 0.6021990180015564,
    -2.7196261882781982, 1.565053105354309, 0.0, 0.0, -0.0001431911950930953, 0.0007828465895727277,
]  # fmt: skip
SDK_DEPTH_NFOV = (503.927643, 503.978729, 332.064270, 325.880615)  # fx, fy, cx, cy
SDK_COLOUR_1080P = (904.141541, 903.521362, 953.284424, 555.142456)
# depth-to-colour extrinsics of a real device (rotation row-major, translation in metres)
COLOUR_ROTATION = [
    0.9999893307685852, 0.0016191748436540365, -0.004320160020142794,
    -0.001163218286819756, 0.9946256279945374, 0.103530153632164,
    0.004464575555175543, -0.10352402180433273, 0.9946169257164001,
]  # fmt: skip
COLOUR_TRANSLATION = [-0.032072898864746094, -0.0020814547538757324, 0.0038745241165161133]


def k4a_calibration_json(rotation=None, translation=None) -> dict:
    def camera(location, purpose, size, parameters, rt):
        return {
            "Intrinsics": {
                "ModelParameterCount": 14,
                "ModelParameters": parameters,
                "ModelType": "CALIBRATION_LensDistortionModelBrownConrady",
            },
            "Location": location,
            "Purpose": purpose,
            "MetricRadius": 1.74,
            "Rt": rt,
            "SensorHeight": size[1],
            "SensorWidth": size[0],
            "Shutter": "CALIBRATION_ShutterTypeUndefined",
            "ThermalAdjustmentParams": {"Params": [0.0] * 12},
        }

    identity = {"Rotation": [1, 0, 0, 0, 1, 0, 0, 0, 1], "Translation": [0, 0, 0]}
    colour_rt = {
        "Rotation": COLOUR_ROTATION if rotation is None else rotation,
        "Translation": COLOUR_TRANSLATION if translation is None else translation,
    }
    return {
        "CalibrationInformation": {
            "Cameras": [
                camera(
                    "CALIBRATION_CameraLocationD0",
                    "CALIBRATION_CameraPurposeDepth",
                    (1024, 1024),
                    DEPTH_PARAMETERS,
                    identity,
                ),
                camera(
                    "CALIBRATION_CameraLocationPV0",
                    "CALIBRATION_CameraPurposePhotoVideo",
                    (4096, 3072),
                    COLOUR_PARAMETERS,
                    colour_rt,
                ),
            ],
            "InertialSensors": [],
            "Metadata": {"SerialId": "000123456789"},
        }
    }


def _patch_b16g(path: Path) -> None:
    """Set fourcc b16g (and a bottom-up-free positive height) in the VFW BITMAPINFOHEADER."""
    data = bytearray(path.read_bytes())
    codec_id = data.find(b"V_MS/VFW/FOURCC")
    private = data.find(b"\x63\xa2", codec_id)
    assert codec_id > 0 and private > 0 and data[private + 2] == 0x80 | 40  # 40-byte header
    header = private + 3
    height = struct.unpack_from("<i", data, header + 8)[0]
    struct.pack_into("<i", data, header + 8, abs(height))
    data[header + 16 : header + 20] = b"b16g"
    path.write_bytes(bytes(data))


def write_k4a_mkv(
    path: Path,
    colour: np.ndarray,
    depth: np.ndarray | None,
    *,
    calibration: dict | None,
    tags: dict[str, str],
    depth_frames: list[int] | None = None,
    fps: int = 30,
) -> Path:
    """An MKV in the Azure Kinect recorder's layout (COLOR, DEPTH b16g, calibration.json)."""
    frames = len(colour)
    depth_frames = list(range(frames)) if depth_frames is None else depth_frames
    with av.open(str(path), "w", format="matroska", options={"allow_raw_vfw": "1"}) as container:
        for key, value in tags.items():
            container.metadata[key] = value
        colour_stream = container.add_stream("mjpeg", rate=fps)
        colour_stream.width, colour_stream.height = colour.shape[2], colour.shape[1]
        colour_stream.pix_fmt = "yuvj420p"
        colour_stream.metadata["title"] = "COLOR"
        if depth is not None:
            depth_stream = container.add_stream("rawvideo", rate=fps)
            depth_stream.width, depth_stream.height = depth.shape[2], depth.shape[1]
            depth_stream.pix_fmt = "gray16be"
            depth_stream.metadata["title"] = "DEPTH"
        if calibration is not None:
            payload = json.dumps(calibration).encode()
            container.add_attachment("calibration.json", "application/octet-stream", payload)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(colour[t], format="rgb24").reformat(
                format="yuvj420p"
            )
            frame.pts = t
            container.mux(colour_stream.encode(frame))
            if depth is not None and t in depth_frames:
                frame = av.VideoFrame.from_ndarray(depth[t], format="gray16be")
                frame.pts = t
                container.mux(depth_stream.encode(frame))
        container.mux(colour_stream.encode(None))
        if depth is not None:
            container.mux(depth_stream.encode(None))
    if depth is not None:
        _patch_b16g(path)
    return path


TAGS = {
    "K4A_CALIBRATION_FILE": "calibration.json",
    "K4A_COLOR_MODE": "MJPG_720P",
    "K4A_DEPTH_MODE": "NFOV_2X2BINNED",
    "K4A_DEVICE_SERIAL_NUMBER": "000123456789",
}


def _smooth_colour(frames: int, height: int = 720, width: int = 1280) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    images = [
        np.stack(
            [cols * 200 // width + 20, rows * 200 // height + 20, np.full_like(rows, 40 + 30 * t)],
            axis=-1,
        )
        for t in range(frames)
    ]
    return np.stack(images).astype(np.uint8)


def _plane_depth(frames: int, z_mm: int = 800) -> np.ndarray:
    depth = np.zeros((frames, 288, 320), np.uint16)
    depth[:, 100:191, 120:201] = z_mm
    for t in range(frames):
        depth[t, 5, 5] = 1000 + t  # frame marker, to check pairing
    return depth


# ---------------------------------------------------------------------- calibration
def test_mode_specific_intrinsics_match_the_sdk():
    calibration = parse_k4a_calibration(
        json.dumps(k4a_calibration_json()), "NFOV_UNBINNED", "MJPG_1080P", serial="x"
    )
    depth, colour = calibration.depth, calibration.colour
    np.testing.assert_allclose((depth.fx, depth.fy, depth.cx, depth.cy), SDK_DEPTH_NFOV, atol=2e-4)
    np.testing.assert_allclose(
        (colour.fx, colour.fy, colour.cx, colour.cy), SDK_COLOUR_1080P, atol=2e-4
    )
    assert (depth.width, depth.height, colour.width, colour.height) == (640, 576, 1920, 1080)
    # OpenCV order (k1, k2, p1, p2, k3, ...): p1 is the last model parameter, p2 the one before
    assert depth.distortion[2] == pytest.approx(8.132171933539212e-05)
    assert depth.distortion[3] == pytest.approx(-5.11557373101823e-05)
    assert colour.distortion[4] == pytest.approx(1.6327226161956787)
    np.testing.assert_allclose(calibration.depth_to_colour[:3, :3].ravel(), COLOUR_ROTATION)
    np.testing.assert_allclose(calibration.depth_to_colour[:3, 3], COLOUR_TRANSLATION)
    np.testing.assert_array_equal(colour.extrinsics, np.eye(4))
    assert colour.serial == depth.serial == "x"


def test_binned_mode_halves_the_focal_length():
    data = k4a_calibration_json()
    binned = parse_k4a_calibration(data, "NFOV_2X2BINNED", "720P").depth
    unbinned = parse_k4a_calibration(data, "NFOV_UNBINNED", "720P").depth
    assert binned.fx == pytest.approx(unbinned.fx / 2)
    # same optical centre: (c + 0.5) scales with the binning
    assert binned.cx + 0.5 + 96 == pytest.approx((unbinned.cx + 0.5 + 192) / 2)


def test_calibration_with_non_rigid_or_missing_camera_is_refused():
    data = k4a_calibration_json(rotation=[2, 0, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(InputError, match="rigid"):
        parse_k4a_calibration(data, "NFOV_UNBINNED", "1080P")
    data = k4a_calibration_json()
    data["CalibrationInformation"]["Cameras"].pop(1)
    with pytest.raises(InputError, match="PV0"):
        parse_k4a_calibration(data, "NFOV_UNBINNED", "1080P", source="cal.json")


def test_undistortion_inverts_the_kinect_lens_models():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.9, 0.9, (2000, 2))
    for parameters in (DEPTH_PARAMETERS, COLOUR_PARAMETERS):
        p = parameters
        coefficients = [p[4], p[5], p[13], p[12], p[6], p[7], p[8], p[9]]
        distorted = distort_normalised(points, coefficients)
        recovered, residual = undistort_normalised(distorted, coefficients)
        np.testing.assert_allclose(recovered, points, atol=1e-9)
        assert residual.max() < 1e-12


def test_distortion_matches_a_scalar_reference():
    p1, p2, k = 1e-3, -2e-3, [0.3, -0.1, 0.02, 0.1, 0.01, 0.001]
    x, y = 0.31, -0.22
    r2 = x * x + y * y
    radial = (1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3) / (
        1 + k[3] * r2 + k[4] * r2**2 + k[5] * r2**3
    )
    expected = (
        x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
    )
    coefficients = [k[0], k[1], p1, p2, k[2], k[3], k[4], k[5]]
    np.testing.assert_allclose(distort_normalised(np.array([[x, y]]), coefficients)[0], expected)


# ---------------------------------------------------------------------- registration
def _expected_plane(calibration, z_mm: float, rows: tuple[int, int], cols: tuple[int, int]):
    """Reference: intersect colour pixels' rays with the depth camera's z = z_mm plane and keep
    those landing inside the depth rectangle ``rows x cols`` (end-exclusive pixel ranges)."""
    colour, depth = calibration.colour, calibration.depth
    transform = calibration.depth_to_colour
    rotation, translation = transform[:3, :3], transform[:3, 3] * 1000
    # a window of colour pixels around the rectangle's projected outline
    t = np.linspace(0.0, 1.0, 50)
    left, right, top, bottom = cols[0] - 0.5, cols[1] - 0.5, rows[0] - 0.5, rows[1] - 0.5
    across, down = left + t * (right - left), top + t * (bottom - top)
    outline = np.concatenate(
        [
            np.c_[across, np.full(50, top)],
            np.c_[across, np.full(50, bottom)],
            np.c_[np.full(50, left), down],
            np.c_[np.full(50, right), down],
        ]
    )
    rays, _ = depth.pixel_rays(outline)
    corners, _ = colour.project(rays * z_mm @ rotation.T + translation)
    u0, v0 = np.floor(corners.min(0)).astype(int) - 3
    u1, v1 = np.ceil(corners.max(0)).astype(int) + 4
    v, u = np.mgrid[v0:v1, u0:u1]
    rays, _ = colour.pixel_rays(np.stack([u.ravel(), v.ravel()], 1).astype(float))
    normal = rotation[:, 2]  # the plane's normal in the colour frame
    points = rays * ((z_mm + normal @ translation) / (rays @ normal))[:, None]
    pixels, _ = depth.project((points - translation) @ rotation)
    inside = (
        (pixels[:, 0] >= cols[0] - 0.5)
        & (pixels[:, 0] <= cols[1] - 0.5)
        & (pixels[:, 1] >= rows[0] - 0.5)
        & (pixels[:, 1] <= rows[1] - 0.5)
    )
    shape = (colour.height, colour.width)
    mask, z = np.zeros(shape, bool), np.zeros(shape)
    mask[v0:v1, u0:u1] = inside.reshape(u.shape)
    z[v0:v1, u0:u1] = points[:, 2].reshape(u.shape)
    assert not mask[v0, :].any() and not mask[:, u0].any()  # the window holds the footprint
    assert not mask[v1 - 1, :].any() and not mask[:, u1 - 1].any()
    return mask, z


def test_plane_registers_to_the_expected_colour_pixels():
    calibration = parse_k4a_calibration(k4a_calibration_json(), "NFOV_2X2BINNED", "720P")
    depth = _plane_depth(1)[0]
    depth[5, 5] = 0
    registered = register_depth(depth, calibration.depth, calibration.colour)
    assert registered.shape == (720, 1280) and registered.dtype == np.uint16
    expected_mask, expected_z = _expected_plane(calibration, 800, (100, 191), (120, 201))
    valid = registered > 0
    assert expected_mask.sum() > 10_000
    # within one pixel of the reference footprint, no holes inside it
    assert not (valid & ~ndimage.binary_dilation(expected_mask)).any()
    assert not (ndimage.binary_erosion(expected_mask) & ~valid).any()
    error = np.abs(registered.astype(float) - expected_z)[valid & expected_mask]
    assert error.max() <= 1.0
    # the 6 degree tilt between the cameras shows: z differs across the plane in colour
    assert registered[valid].max() - registered[valid].min() >= 10


def test_registration_keeps_the_nearest_surface():
    calibration = parse_k4a_calibration(
        k4a_calibration_json(translation=[0.08, 0.0, 0.0]), "NFOV_2X2BINNED", "720P"
    )
    registration = DepthRegistration(calibration.depth, calibration.colour)
    near_only = np.zeros((288, 320), np.uint16)
    near_only[120:170, 140:180] = 500
    scene = np.full((288, 320), 1000, np.uint16)
    scene[120:170, 140:180] = 500
    near, both = registration(near_only), registration(scene)
    core = ndimage.binary_erosion(near > 0, iterations=2)
    assert core.sum() > 1000
    np.testing.assert_array_equal(both[core], near[core])
    # the far wall is hidden behind the near box on the parallax side, visible elsewhere
    assert (both > 900).sum() > 100_000


def test_nearest_pixel_registration_is_a_subset_of_the_splat():
    calibration = parse_k4a_calibration(k4a_calibration_json(), "NFOV_2X2BINNED", "720P")
    depth = _plane_depth(1)[0]
    splat = DepthRegistration(calibration.depth, calibration.colour)(depth)
    points = DepthRegistration(calibration.depth, calibration.colour, splat=False)(depth)
    hit = points > 0
    assert 0 < hit.sum() < (splat > 0).sum()
    assert np.abs(points[hit].astype(int) - splat[hit]).max() <= 1


def test_registration_rejects_a_wrong_depth_size():
    calibration = parse_k4a_calibration(k4a_calibration_json(), "NFOV_2X2BINNED", "720P")
    with pytest.raises(InputError, match=r"\(288, 320\)"):
        register_depth(np.zeros((576, 640), np.uint16), calibration.depth, calibration.colour)


# ---------------------------------------------------------------------- MKV files
def test_mkv_round_trip(tmp_path):
    colour, depth = _smooth_colour(4), _plane_depth(4)
    path = write_k4a_mkv(
        tmp_path / "a.mkv", colour, depth, calibration=k4a_calibration_json(), tags=TAGS
    )
    recording = MkvRecording(path)
    assert len(recording) == 4
    assert recording.serial == "000123456789" and recording.fps == 30
    assert recording.calibration.depth_mode == "NFOV_2X2BINNED"
    assert recording.calibration.colour_mode == "720P"
    raw = list(recording.frames(registered=False))
    assert [f.index for f in raw] == [0, 1, 2, 3]
    for t, frame in enumerate(raw):
        np.testing.assert_array_equal(frame.depth, depth[t])
        assert frame.colour.shape == (720, 1280, 3) and frame.colour.dtype == np.uint8
        assert np.abs(frame.colour.astype(int) - colour[t]).mean() < 3
        assert frame.timestamp_s == pytest.approx(t / 30, abs=1e-3)
    registered = list(recording.frames(1, 3))
    assert [f.index for f in registered] == [1, 2]
    expected = register_depth(depth[1], recording.calibration.depth, recording.calibration.colour)
    np.testing.assert_array_equal(registered[0].depth, expected)


def test_mkv_pairs_by_timestamp_and_skips_incomplete_captures(tmp_path):
    colour, depth = _smooth_colour(5), _plane_depth(5)
    path = write_k4a_mkv(
        tmp_path / "gap.mkv",
        colour,
        depth,
        calibration=k4a_calibration_json(),
        tags=TAGS,
        depth_frames=[0, 1, 3, 4],
    )
    recording = MkvRecording(path)
    assert len(recording) == 4
    markers = [int(f.depth[5, 5]) for f in recording.frames(registered=False)]
    assert markers == [1000, 1001, 1003, 1004]
    frame = next(recording.frames(2, 3, registered=False))
    assert frame.index == 2 and frame.depth[5, 5] == 1003
    assert np.abs(frame.colour.astype(int) - colour[3]).mean() < 3


def test_mkv_without_calibration_is_refused(tmp_path):
    path = write_k4a_mkv(
        tmp_path / "nocal.mkv", _smooth_colour(2), _plane_depth(2), calibration=None, tags=TAGS
    )
    with pytest.raises(InputError, match=r"nocal\.mkv: no calibration attachment"):
        MkvRecording(path)


def test_mkv_with_another_depth_mode_is_refused(tmp_path):
    tags = {**TAGS, "K4A_DEPTH_MODE": "NFOV_UNBINNED"}
    path = write_k4a_mkv(
        tmp_path / "mode.mkv",
        _smooth_colour(2),
        _plane_depth(2),
        calibration=k4a_calibration_json(),
        tags=tags,
    )
    with pytest.raises(InputError, match=r"mode\.mkv: DEPTH track is 320x288 .*NFOV_UNBINNED"):
        MkvRecording(path)


def test_mkv_without_depth_track_is_refused(tmp_path):
    path = write_k4a_mkv(
        tmp_path / "colour.mkv",
        _smooth_colour(2),
        None,
        calibration=k4a_calibration_json(),
        tags=TAGS,
    )
    with pytest.raises(InputError, match=r"colour\.mkv: no DEPTH track"):
        MkvRecording(path)


def test_capture_from_mkv_files(tmp_path):
    colour, depth = _smooth_colour(3), _plane_depth(3)
    paths = [
        write_k4a_mkv(
            tmp_path / f"cam{i}.mkv", colour, depth, calibration=k4a_calibration_json(), tags=TAGS
        )
        for i in range(2)
    ]
    capture = Capture.from_mkv(paths)
    assert len(capture) == 3 and capture.num_cameras == 2
    assert all(isinstance(c, CameraCalibration) for c in capture.calibrations)
    assert (capture.calibrations[0].width, capture.calibrations[0].height) == COLOUR_MODES[
        "720P"
    ].output
    frames = list(capture.frames(1))
    assert [f.index for f in frames] == [1, 2]
    assert frames[0].depth[1].shape == (720, 1280) and frames[0].depth[1].max() > 700
    assert capture.audio() is None
    short = write_k4a_mkv(
        tmp_path / "short.mkv",
        colour[:2],
        depth[:2],
        calibration=k4a_calibration_json(),
        tags=TAGS,
    )
    with pytest.raises(InputError, match=r"short\.mkv: 2 frames, camera 0 has 3"):
        Capture.from_mkv([paths[0], short])

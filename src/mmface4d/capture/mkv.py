"""Azure Kinect / Orbbec (K4A wrapper) MKV recordings, read with PyAV (no Kinect SDK).

A recording holds a ``COLOR`` track (MJPEG, NV12, YUY2 or BGRA), a ``DEPTH`` track (fourcc
``b16g``: 16-bit big-endian grey, millimetres), optionally ``IR`` (also ``b16g``) and ``IMU``,
global tags (``K4A_DEPTH_MODE``, ``K4A_COLOR_MODE``, ``K4A_DEPTH_DELAY_NS``,
``K4A_DEVICE_SERIAL_NUMBER``, ...) and the factory calibration as a ``calibration.json``
attachment (named by the ``K4A_CALIBRATION_FILE`` tag).

Tracks are found by name (``COLOR``, ``DEPTH``); without names, the depth track is the first
``b16g`` track (the recorder writes DEPTH before IR) and the colour track the first other video
track.

Calibration (as the Azure Kinect SDK reads it): per camera, ``Intrinsics.ModelParameters`` are
``[cx, cy, fx, fy, k1..k6, codx, cody, p2, p1]`` normalised by the sensor size and 0-cornered;
the pixel intrinsics of a mode are ``c * binned_size - crop_offset - 0.5``, ``f * binned_size``
(:data:`DEPTH_MODES`, :data:`COLOUR_MODES`). ``Rt`` is each camera's transform from the
calibration's frame (the depth camera's), rotation row-major, translation in metres; so
``colour_from_depth = Rt_colour @ inverse(Rt_depth)``. The lens model is Brown-Conrady
(OpenCV's rational model; ``codx, cody`` are zero for it and ignored).

Depth is registered into the colour camera by :class:`DepthRegistration`: every depth pixel is
unprojected through the depth lens (distortion inverted exactly), moved by the extrinsics,
projected through the colour lens and splatted over its footprint with a z-buffer, giving the
colour-frame z in millimetres (what the SDK's ``depth_image_to_color_camera`` returns, up to
its edge handling).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import av
import numpy as np

from mmface4d.capture.cameras import CameraCalibration
from mmface4d.errors import InputError
from mmface4d.geometry.frames import MM_PER_M

CALIBRATION_TAG = "K4A_CALIBRATION_FILE"
DEFAULT_METRIC_RADIUS = 1.7
"""Largest normalised radius the SDK projects through a lens whose calibration lacks one."""


@dataclass(frozen=True)
class SensorMode:
    """How one camera mode crops and bins its sensor (the SDK's mode table).

    Attributes:
        binned: (width, height) of the whole sensor after binning.
        crop: (x, y) offset of the output window in the binned sensor.
        output: (width, height) of the images.
    """

    binned: tuple[int, int]
    crop: tuple[int, int]
    output: tuple[int, int]


DEPTH_MODES = {
    "NFOV_2X2BINNED": SensorMode((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": SensorMode((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": SensorMode((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": SensorMode((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": SensorMode((1024, 1024), (0, 0), (1024, 1024)),
}
COLOUR_MODES = {
    "720P": SensorMode((1280, 960), (0, 120), (1280, 720)),
    "1080P": SensorMode((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": SensorMode((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": SensorMode((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": SensorMode((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": SensorMode((4096, 3072), (0, 0), (4096, 3072)),
}


# ---------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class KinectCalibration:
    """One device's calibration for one depth mode and colour resolution.

    Attributes:
        colour: the colour camera; the device's reference (identity extrinsics).
        depth: the depth camera; its extrinsics are colour-from-depth (metres).
        depth_mode: e.g. ``NFOV_UNBINNED``.
        colour_mode: the resolution, e.g. ``1080P``.
    """

    colour: CameraCalibration
    depth: CameraCalibration
    depth_mode: str
    colour_mode: str

    @property
    def depth_to_colour(self) -> np.ndarray:
        """(4, 4) transform of depth-camera points into the colour camera, metres."""
        return self.depth.extrinsics


def _numbers(value: Any, count: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected {count} numbers") from None
    if array.size < count or not np.isfinite(array[:count]).all():
        raise InputError(f"{what}: expected {count} finite numbers, got {array.size}")
    return array[:count]


def _camera_entry(cameras: list[Any], location: str, source: str) -> dict[str, Any]:
    for camera in cameras:
        if isinstance(camera, dict) and camera.get("Location") == location:
            return camera
    raise InputError(f"{source}: no camera with Location {location}")


def _mode_camera(
    entry: dict[str, Any], mode: SensorMode, source: str, colour: bool
) -> tuple[CameraCalibration, np.ndarray]:
    """The camera in one mode (identity extrinsics) and its ``Rt`` (calibration frame to
    camera, metres)."""
    where = f"{source}: {entry.get('Location')}"
    intrinsics = entry.get("Intrinsics")
    if not isinstance(intrinsics, dict):
        raise InputError(f"{where}: missing Intrinsics")
    model = intrinsics.get("ModelType")
    if model != "CALIBRATION_LensDistortionModelBrownConrady":
        raise InputError(f"{where}: lens model {model!r} unsupported (expected BrownConrady)")
    p = _numbers(intrinsics.get("ModelParameters"), 14, f"{where} ModelParameters")
    cx, cy, fx, fy = p[:4]
    sensor_w, sensor_h = (int(entry.get(k, 0)) for k in ("SensorWidth", "SensorHeight"))
    if colour and sensor_w * 9 // 16 == sensor_h:  # legacy 16:9 calibration, as the SDK
        cy, fy = (cy * 2304 + 384) / 3072, fy * 2304 / 3072
    elif colour and sensor_w * 3 // 4 != sensor_h:
        raise InputError(f"{where}: colour sensor {sensor_w}x{sensor_h} is neither 4:3 nor 16:9")
    if not colour and (sensor_w, sensor_h) != (1024, 1024):
        raise InputError(f"{where}: depth sensor is {sensor_w}x{sensor_h}, expected 1024x1024")
    (bw, bh), (ox, oy) = mode.binned, mode.crop
    k = np.array(
        [[fx * bw, 0.0, cx * bw - ox - 0.5], [0.0, fy * bh, cy * bh - oy - 0.5], [0, 0, 1.0]]
    )
    rt = entry.get("Rt")
    if not isinstance(rt, dict):
        raise InputError(f"{where}: missing Rt")
    rigid = np.eye(4)
    rigid[:3, :3] = _numbers(rt.get("Rotation"), 9, f"{where} Rt.Rotation").reshape(3, 3)
    rigid[:3, 3] = _numbers(rt.get("Translation"), 3, f"{where} Rt.Translation")
    radius = float(entry.get("MetricRadius") or 0.0)
    camera = CameraCalibration(
        intrinsics=k,
        width=mode.output[0],
        height=mode.output[1],
        # OpenCV order (k1, k2, p1, p2, k3, k4, k5, k6) from [.., k1..k6, codx, cody, p2, p1]
        distortion=np.array([p[4], p[5], p[13], p[12], p[6], p[7], p[8], p[9]]),
        metadata={"metric_radius": radius if radius > 1e-4 else DEFAULT_METRIC_RADIUS},
    )
    return camera, rigid


def parse_k4a_calibration(
    data: str | bytes | dict[str, Any],
    depth_mode: str,
    colour_mode: str,
    serial: str = "",
    source: str = "calibration.json",
) -> KinectCalibration:
    """Mode-specific pixel calibration from a device's ``calibration.json``.

    Args:
        data: the file's text or parsed JSON.
        depth_mode: a key of :data:`DEPTH_MODES`.
        colour_mode: a key of :data:`COLOUR_MODES` (``1080P``; a ``MJPG_1080P`` style
            ``K4A_COLOR_MODE`` value works too).
        serial: the device serial number, stored in both cameras.
        source: name used in error messages.
    """
    colour_mode = colour_mode.rsplit("_", 1)[-1].upper()
    if depth_mode not in DEPTH_MODES:
        raise InputError(f"{source}: depth mode {depth_mode!r} unknown ({', '.join(DEPTH_MODES)})")
    if colour_mode not in COLOUR_MODES:
        raise InputError(
            f"{source}: colour mode {colour_mode!r} unknown ({', '.join(COLOUR_MODES)})"
        )
    if not isinstance(data, dict):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{source}: not valid JSON ({exc})") from None
    info = data.get("CalibrationInformation") if isinstance(data, dict) else None
    cameras = info.get("Cameras") if isinstance(info, dict) else None
    if not isinstance(cameras, list):
        raise InputError(f"{source}: expected CalibrationInformation.Cameras[]")
    depth_entry = _camera_entry(cameras, "CALIBRATION_CameraLocationD0", source)
    colour_entry = _camera_entry(cameras, "CALIBRATION_CameraLocationPV0", source)
    depth, depth_rt = _mode_camera(depth_entry, DEPTH_MODES[depth_mode], source, colour=False)
    colour, colour_rt = _mode_camera(colour_entry, COLOUR_MODES[colour_mode], source, colour=True)
    colour = replace(colour, serial=serial, metadata={**colour.metadata, "mode": colour_mode})
    depth = replace(
        depth,
        serial=serial,
        metadata={**depth.metadata, "mode": depth_mode},
        # Rt maps the calibration frame into each camera: colour_from_depth = Rt_c @ Rt_d^-1
        extrinsics=colour_rt @ np.linalg.inv(depth_rt),
    )
    return KinectCalibration(colour, depth, depth_mode, colour_mode)


# ---------------------------------------------------------------------- registration
class DepthRegistration:
    """Maps depth images of a depth camera into a colour camera's pixels.

    The undistorted ray of every depth pixel is computed once; each image is then unprojected
    (``z * ray``), moved into the colour camera, projected through the colour lens and splatted
    over the colour pixels its footprint covers, nearest surface winning.

    Args:
        depth_camera: the depth camera (size of the depth images).
        colour_camera: the colour camera (size of the output); both calibrations' extrinsics
            must share one reference frame (for one device: :class:`KinectCalibration`).
        splat: cover each depth pixel's whole footprint (no holes when the colour image is
            finer); False writes only the pixel nearest to each projected centre.
    """

    def __init__(
        self, depth_camera: CameraCalibration, colour_camera: CameraCalibration, splat: bool = True
    ) -> None:
        self.depth_camera, self.colour_camera, self.splat = depth_camera, colour_camera, splat
        h, w = depth_camera.height, depth_camera.width
        rows, cols = np.mgrid[0:h, 0:w]
        pixels = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
        rays, converged = depth_camera.pixel_rays(pixels)
        radius = depth_camera.metadata.get("metric_radius")
        if radius is not None:
            converged &= (rays[:, :2] ** 2).sum(axis=1) <= float(radius) ** 2
        self._rays = rays
        self._usable = converged
        grid = rays.reshape(h, w, 3)
        # size of one depth pixel in normalised depth-camera units, along x and y
        self.splat = splat and w > 1 and h > 1
        if self.splat:
            self._pitch_x = np.abs(np.gradient(grid[..., 0], axis=1)).ravel()
            self._pitch_y = np.abs(np.gradient(grid[..., 1], axis=0)).ravel()
        colour_from_depth = colour_camera.camera_from_reference @ depth_camera.extrinsics
        self._rotation = colour_from_depth[:3, :3]
        self._translation_mm = colour_from_depth[:3, 3] * MM_PER_M

    def _footprint(
        self, keep: np.ndarray, u: np.ndarray, v: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Half-widths (u, v) in colour pixels of the boxes bounding the depth pixels ``keep``.

        A depth pixel spans half-way to its projected neighbours: per image direction the
        spacing to the neighbour on either side (the larger one, so neighbouring boxes always
        meet; the smaller one across a depth edge, where they differ by more than 1.5x, so
        surfaces are not smeared across it). Pixels without neighbours use the spacing of the
        depth rays at their own depth.
        """
        h, w = self.depth_camera.height, self.depth_camera.width
        grids = []
        for values in (u, v):
            grid = np.full(h * w, np.nan)
            grid[keep] = values
            grids.append(grid.reshape(h, w))
        # lone pixels: the ray spacing, depth-camera units scaled to the colour camera
        alone_u = self.colour_camera.fx * self._pitch_x[keep] * scale
        alone_v = self.colour_camera.fy * self._pitch_y[keep] * scale
        du_col, du_row = (_neighbour_spacing(grids[0], a).ravel()[keep] for a in (1, 0))
        dv_col, dv_row = (_neighbour_spacing(grids[1], a).ravel()[keep] for a in (1, 0))
        spans = (
            np.where(np.isnan(du_col), alone_u, du_col) + np.nan_to_num(du_row),
            np.where(np.isnan(dv_row), alone_v, dv_row) + np.nan_to_num(dv_col),
        )
        return 0.5 * spans[0] + 1e-3, 0.5 * spans[1] + 1e-3

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        """Register one depth image.

        Args:
            depth: (h, w) uint16 millimetres in the depth camera (0 = none).

        Returns:
            (H, W) uint16 colour-camera z in millimetres (0 = none).
        """
        d_cam, c_cam = self.depth_camera, self.colour_camera
        depth = np.asarray(depth)
        if depth.shape != (d_cam.height, d_cam.width) or depth.dtype.kind not in "ui":
            raise InputError(
                f"depth: expected ({d_cam.height}, {d_cam.width}) integer millimetres, got "
                f"{depth.shape} {depth.dtype}"
            )
        z = depth.ravel().astype(np.float64)
        keep = np.flatnonzero((z > 0) & self._usable)
        points = self._rays[keep] * z[keep, None] @ self._rotation.T + self._translation_mm
        pixels, valid = c_cam.project(points, c_cam.metadata.get("metric_radius"))
        z_colour = points[:, 2]
        out = np.full(c_cam.height * c_cam.width, np.iinfo(np.uint16).max, dtype=np.uint16)
        if not valid.any():
            return np.zeros((c_cam.height, c_cam.width), np.uint16)
        keep, pixels, z_colour = keep[valid], pixels[valid], z_colour[valid]
        value = np.clip(np.rint(z_colour), 1, np.iinfo(np.uint16).max - 1).astype(np.uint16)
        u, v = pixels[:, 0], pixels[:, 1]
        if not self.splat:
            col, row = np.rint(u), np.rint(v)
            hit = (col >= 0) & (col < c_cam.width) & (row >= 0) & (row < c_cam.height)
            index = row[hit].astype(np.int64) * c_cam.width + col[hit].astype(np.int64)
            np.minimum.at(out, index, value[hit])
        else:
            half_u, half_v = self._footprint(keep, u, v, z[keep] / z_colour)
            reach = int(min(math.ceil(max(half_u.max(), half_v.max())), 16))
            first_u, first_v = np.ceil(u - half_u), np.ceil(v - half_v)
            for dv in range(2 * reach + 1):
                row = first_v + dv
                in_v = (row <= v + half_v) & (row >= 0) & (row < c_cam.height)
                if not in_v.any():
                    continue
                for du in range(2 * reach + 1):
                    col = first_u + du
                    hit = in_v & (col <= u + half_u) & (col >= 0) & (col < c_cam.width)
                    index = row[hit].astype(np.int64) * c_cam.width + col[hit].astype(np.int64)
                    np.minimum.at(out, index, value[hit])
        out[out == np.iinfo(np.uint16).max] = 0
        return out.reshape(c_cam.height, c_cam.width)


def _neighbour_spacing(grid: np.ndarray, axis: int) -> np.ndarray:
    """|difference| to the neighbours along ``axis``: the larger of the two sides unless they
    differ by more than 1.5x (a depth edge), then the smaller; NaN without neighbours."""
    step = np.abs(np.diff(grid, axis=axis))
    pad = np.full_like(np.take(grid, [0], axis=axis), np.nan)
    before = np.concatenate([pad, step], axis=axis)
    after = np.concatenate([step, pad], axis=axis)
    low, high = np.fmin(before, after), np.fmax(before, after)
    return np.where(high <= 1.5 * low, high, low)


def register_depth(
    depth: np.ndarray, depth_camera: CameraCalibration, colour_camera: CameraCalibration
) -> np.ndarray:
    """Register one (h, w) uint16 mm depth image into the colour camera: (H, W) uint16 mm.

    For many images build one :class:`DepthRegistration` and call it (the rays are cached).
    """
    return DepthRegistration(depth_camera, colour_camera)(depth)


# ---------------------------------------------------------------------- recordings
@dataclass(frozen=True)
class MkvFrame:
    """One synchronised capture of a recording.

    Attributes:
        index: position among the recording's synchronised captures.
        timestamp_s: the colour image's timestamp in seconds.
        colour: (H, W, 3) uint8 RGB.
        depth: (H, W) uint16 mm registered to the colour camera, or (h, w) raw depth-camera
            millimetres when read with ``registered=False``.
    """

    index: int
    timestamp_s: float
    colour: np.ndarray
    depth: np.ndarray


def _tag(container: av.container.InputContainer, name: str) -> str | None:
    """A tag, global or on any stream, matched case-insensitively."""
    for metadata in [container.metadata, *(s.metadata for s in container.streams)]:
        for key, value in metadata.items():
            if key.upper() == name:
                return value
    return None


def _is_grey16(stream: av.video.stream.VideoStream) -> bool:
    context = stream.codec_context
    return context.codec_tag == "b16g" or context.pix_fmt in ("gray16be", "gray16le")


class MkvRecording:
    """One Azure Kinect / Orbbec MKV file: its calibration and synchronised RGB-D frames.

    Opening reads the tags and the calibration attachment only; :func:`len` demuxes the file
    once (no decoding) to pair colour and depth images by timestamp (within half a frame,
    after removing ``K4A_DEPTH_DELAY_NS``); captures missing either image are skipped.

    Args:
        path: the ``.mkv`` file.

    Raises:
        InputError: no COLOR or DEPTH track, no calibration attachment, or a depth track whose
            size is not that of its depth mode (each message names the file).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: MKV recording not found")
        try:
            with av.open(str(self.path)) as container:
                self._inspect(container)
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: not a readable MKV file ({exc})") from exc

    def _inspect(self, container: av.container.InputContainer) -> None:
        path = self.path
        video = list(container.streams.video)
        titled = {str(s.metadata.get("title", "")).upper(): s for s in video}
        depth = titled.get("DEPTH") or next((s for s in video if _is_grey16(s)), None)
        colour = titled.get("COLOR") or next((s for s in video if not _is_grey16(s)), None)
        if depth is None:
            raise InputError(f"{path}: no DEPTH track (a video track named DEPTH or tagged b16g)")
        if colour is None:
            raise InputError(f"{path}: no COLOR track (a video track named COLOR)")
        if depth.codec_context.pix_fmt not in ("gray16be", "gray16le"):
            raise InputError(
                f"{path}: DEPTH track decodes as {depth.codec_context.pix_fmt}, expected 16-bit "
                "grey (fourcc b16g)"
            )
        name = _tag(container, CALIBRATION_TAG) or "calibration.json"
        attachment = next((a for a in container.streams.attachments if a.name == name), None)
        if attachment is None:
            raise InputError(
                f"{path}: no calibration attachment {name!r} ({CALIBRATION_TAG}); the device "
                "calibration is needed to register depth to colour"
            )
        depth_size = (depth.codec_context.width, depth.codec_context.height)
        depth_mode = _tag(container, "K4A_DEPTH_MODE")
        if depth_mode is None:
            depth_mode = next((m for m, s in DEPTH_MODES.items() if s.output == depth_size), None)
        if depth_mode not in DEPTH_MODES:
            raise InputError(
                f"{path}: depth mode {depth_mode!r} unknown for a {depth_size[0]}x"
                f"{depth_size[1]} DEPTH track (expected one of {', '.join(DEPTH_MODES)})"
            )
        expected = DEPTH_MODES[depth_mode].output
        if depth_size != expected:
            raise InputError(
                f"{path}: DEPTH track is {depth_size[0]}x{depth_size[1]} but K4A_DEPTH_MODE is "
                f"{depth_mode} ({expected[0]}x{expected[1]})"
            )
        colour_size = (colour.codec_context.width, colour.codec_context.height)
        colour_mode = next((m for m, s in COLOUR_MODES.items() if s.output == colour_size), None)
        tagged = _tag(container, "K4A_COLOR_MODE")
        if colour_mode is None or (tagged and tagged.rsplit("_", 1)[-1].upper() != colour_mode):
            raise InputError(
                f"{path}: COLOR track is {colour_size[0]}x{colour_size[1]}, which is not the "
                f"colour resolution of K4A_COLOR_MODE {tagged!r} (or of any K4A mode)"
            )
        self.serial = _tag(container, "K4A_DEVICE_SERIAL_NUMBER") or ""
        self.calibration = parse_k4a_calibration(
            attachment.data, depth_mode, colour_mode, self.serial, f"{path}: {name}"
        )
        rate = colour.average_rate or colour.guessed_rate or depth.average_rate
        self.fps = float(rate) if rate else 30.0
        self.depth_delay_s = float(_tag(container, "K4A_DEPTH_DELAY_NS") or 0) * 1e-9
        self._colour_index, self._depth_index = colour.index, depth.index

    @cached_property
    def registration(self) -> DepthRegistration:
        """The depth-to-colour mapping of this device (rays computed on first use)."""
        return DepthRegistration(self.calibration.depth, self.calibration.colour)

    @cached_property
    def _pairs(self) -> list[tuple[int, int, float]]:
        """(colour pts, depth pts, colour time s) of every synchronised capture."""
        times: dict[int, list[tuple[float, int]]] = {self._colour_index: [], self._depth_index: []}
        try:
            with av.open(str(self.path)) as container:
                streams = [
                    container.streams[self._colour_index],
                    container.streams[self._depth_index],
                ]
                for packet in container.demux(streams):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    seconds = float(packet.pts * packet.time_base)
                    times[packet.stream.index].append((seconds, int(packet.pts)))
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: cannot read packets ({exc})") from exc
        colour = sorted(times[self._colour_index])
        depth = sorted((t - self.depth_delay_s, pts) for t, pts in times[self._depth_index])
        tolerance = 0.5 / self.fps
        pairs, i, j = [], 0, 0
        while i < len(colour) and j < len(depth):
            gap = depth[j][0] - colour[i][0]
            if abs(gap) <= tolerance:
                pairs.append((colour[i][1], depth[j][1], colour[i][0]))
                i, j = i + 1, j + 1
            elif gap < 0:
                j += 1
            else:
                i += 1
        return pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def frames(
        self, start: int = 0, stop: int | None = None, registered: bool = True
    ) -> Iterator[MkvFrame]:
        """Stream synchronised captures ``start..stop-1``.

        Args:
            start, stop: capture range (Python slice semantics, no negative indices).
            registered: register depth to the colour camera (else raw depth-camera images).
        """
        if start < 0 or (stop is not None and stop < start):
            raise InputError(f"frame range: expected 0 <= start <= stop, got {start}..{stop}")
        pairs = self._pairs[start:stop]
        if not pairs:
            return
        wanted = {
            self._colour_index: {c: k for k, (c, _, _) in enumerate(pairs)},
            self._depth_index: {d: k for k, (_, d, _) in enumerate(pairs)},
        }
        decoded: dict[int, dict[int, np.ndarray]] = {i: {} for i in wanted}
        last = {i: max(w) for i, w in wanted.items()}
        done = {i: False for i in wanted}
        next_k = 0
        try:
            with av.open(str(self.path)) as container:
                streams = [container.streams[i] for i in wanted]
                for packet in container.demux(streams):
                    index = packet.stream.index
                    if done[index]:
                        continue
                    codec = packet.stream.codec_context.codec
                    if packet.pts is not None and packet.pts not in wanted[index]:
                        if codec.intra_only:
                            continue  # no need to decode a skipped intra-only frame
                    for frame in packet.decode():
                        k = wanted[index].get(frame.pts)
                        if k is None:
                            continue
                        if index == self._colour_index:
                            decoded[index][k] = frame.to_ndarray(format="rgb24")
                        else:
                            decoded[index][k] = frame.to_ndarray().astype(np.uint16, copy=False)
                        done[index] = frame.pts == last[index]
                    while (
                        next_k in decoded[self._colour_index]
                        and next_k in decoded[self._depth_index]
                    ):
                        colour = decoded[self._colour_index].pop(next_k)
                        depth = decoded[self._depth_index].pop(next_k)
                        if registered:
                            depth = self.registration(depth)
                        yield MkvFrame(start + next_k, pairs[next_k][2], colour, depth)
                        next_k += 1
                    if next_k == len(pairs):
                        return
        except av.FFmpegError as exc:
            raise InputError(
                f"{self.path}: cannot decode capture {start + next_k} ({exc})"
            ) from exc
        raise InputError(
            f"{self.path}: capture {start + next_k} could not be decoded (file changed or corrupt)"
        )

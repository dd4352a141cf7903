"""The MMFace4D raw capture layout: reading and (streaming) writing of one recording.

One recording ``<rec>`` (one sentence by one actor) in one folder, per camera ``c``
(``0, 1, 2``; camera :data:`~mmface4d.capture.cameras.CENTRE_CAMERA` is the centre one):

- ``<rec>_<c>.mp4``: colour video (H.264; written as yuv420p, crf 18).
- ``<rec>_<c>.nut``: depth video, FFV1 lossless gray16le in a NUT container, millimetres (0 = no
  measurement), already registered to the colour camera (same size, same pixels). This is a
  plain video file, not the mesh codec of :mod:`mmface4d.data.nut` (which stores one axis of a
  vertex sequence per file in square frames).
- ``<rec>_<c>.json``: intrinsics (see :func:`~mmface4d.capture.cameras.read_mmface4d_json`).
- ``<rec>_<c>.pkl``: facial landmarks, a pickled (T, 98, 2 or 3) array, pixels (HRNetv2 98).
- ``<rec>.wav``: the speech, 16 kHz mono.

All video I/O is PyAV; frames stream (a whole video is never held in memory).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import pickle
import re
import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio, write_wav
from mmface4d.capture.cameras import CameraCalibration, read_mmface4d_json, write_mmface4d_json
from mmface4d.errors import InputError

LANDMARK_POINTS = 98
# a recording's camera is known by its intrinsics file (a mesh sequence's <prefix>_0.nut axis
# files would look like depth videos otherwise)
_CAMERA_FILE = re.compile(r"^(?P<rec>.+)_(?P<cam>\d+)\.json$")


# ---------------------------------------------------------------------- video reading
def _open_video(path: Path, kind: str) -> av.container.InputContainer:
    if not path.is_file():
        raise InputError(f"{path}: {kind} video not found")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable {kind} video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: no video stream (expected the {kind} video)")
    return container


def video_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of a file's first video stream."""
    with _open_video(Path(path), "") as container:
        context = container.streams.video[0].codec_context
        return int(context.width), int(context.height)


def count_frames(path: str | os.PathLike[str]) -> int:
    """Frames in a file's first video stream: the container's count when it stores one (mp4),
    otherwise its packets counted without decoding (nut)."""
    path = Path(path)
    with _open_video(path, "") as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        try:
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: cannot read packets ({exc})") from exc


def _decode(path: Path, kind: str, start: int, stop: int | None) -> Iterator[av.VideoFrame]:
    if start < 0 or (stop is not None and stop < start):
        raise InputError(f"frame range: expected 0 <= start <= stop, got {start}..{stop}")
    index = 0
    with _open_video(path, kind) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    return
                if index >= start:
                    yield frame
                index += 1
        except av.FFmpegError as exc:
            raise InputError(f"{path}: cannot decode {kind} frame {index} ({exc})") from exc


def read_colour_frames(
    path: str | os.PathLike[str], start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Stream colour frames ``start..stop-1`` of a video as (H, W, 3) uint8 RGB."""
    for frame in _decode(Path(path), "colour", start, stop):
        yield frame.to_ndarray(format="rgb24")


def read_depth_frames(
    path: str | os.PathLike[str], start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Stream depth frames ``start..stop-1`` of a 16-bit grey video as (H, W) uint16 mm."""
    path = Path(path)
    for frame in _decode(path, "depth", start, stop):
        if frame.format.name not in ("gray16le", "gray16be"):
            raise InputError(
                f"{path}: depth frames are {frame.format.name}, expected 16-bit grey (gray16le)"
            )
        yield frame.to_ndarray().astype(np.uint16, copy=False)


# ---------------------------------------------------------------------- landmarks
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
# what a corrupt or foreign pickle can raise while loading
_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    ImportError,
    IndexError,
    KeyError,
    struct.error,
)


class _ArrayUnpickler(pickle.Unpickler):
    """Loads numpy arrays, scalars and plain containers of them, and nothing else (a pickle can
    run arbitrary code: every other global is refused before it is built)."""

    def find_class(self, module: str, name: str) -> object:
        # numpy 1.x pickles name numpy.core, numpy 2 numpy._core (numpy.core is a deprecated alias)
        if module in _NUMPY_CORE and name in ("_reconstruct", "scalar"):
            return getattr(importlib.import_module("numpy._core.multiarray"), name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "numpy.dtypes" and name.endswith("DType") and hasattr(np.dtypes, name):
            return getattr(np.dtypes, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays)")


def load_numpy_pickle(path: str | os.PathLike[str], what: str = "pickled numpy array") -> object:
    """Unpickle a file that may hold only numpy arrays (and lists, tuples, numbers, None).

    Args:
        path: the pickle.
        what: what the file should hold, for the error messages.

    Raises:
        InputError: the file is missing, not a pickle, or refers to any other Python object.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with open(path, "rb") as file:
            return _ArrayUnpickler(file).load()
    except _UNPICKLE_ERRORS as exc:
        raise InputError(f"{path}: not a {what} ({exc})") from None


def _check_landmarks(landmarks: object, name: str, num_points: int = LANDMARK_POINTS) -> np.ndarray:
    array = np.asarray(landmarks)
    if (
        array.ndim != 3
        or array.shape[1] != num_points
        or array.shape[2] not in (2, 3)
        or array.dtype.kind not in "fiu"
    ):
        raise InputError(
            f"{name}: expected (T, {num_points}, 2 or 3) landmark pixels, got shape "
            f"{array.shape} dtype {array.dtype}"
        )
    if np.isinf(array).any():
        raise InputError(f"{name}: landmarks hold infinite values")
    return array


def read_landmarks(path: str | os.PathLike[str], num_points: int = LANDMARK_POINTS) -> np.ndarray:
    """Read a ``<rec>_<cam>.pkl`` landmark file: (T, 98, 2 or 3) float64 pixels.

    Only numpy arrays are accepted; any other pickled object is refused unloaded.

    Args:
        path: the pickle: a (T, N, 2 or 3) array (the dataset's files), or a list of T
            (N, 2 or 3) arrays with None for a frame without landmarks.
        num_points: N, the scheme's size (98 for the dataset's HRNetv2 landmarks).

    Returns:
        (T, N, 2 or 3) float64 pixels; NaN rows for frames stored as None (or NaN).
    """
    path = Path(path)
    data = load_numpy_pickle(path, "pickled landmark array")
    if isinstance(data, list | tuple):
        frames = [np.asarray(f) for f in data if f is not None]
        if not frames:
            raise InputError(f"{path}: holds no landmark frames")
        width = frames[0].shape[-1] if frames[0].ndim == 2 else 2
        try:
            data = np.stack(
                [
                    np.full((num_points, width), np.nan)
                    if f is None
                    else np.asarray(f, dtype=np.float64)
                    for f in data
                ]
            )
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: landmark frames differ in shape or type ({exc})") from None
    return _check_landmarks(data, str(path), num_points).astype(np.float64, copy=False)


def write_landmarks(path: str | os.PathLike[str], landmarks: np.ndarray) -> Path:
    """Write (T, 98, 2 or 3) landmark pixels as the dataset's pickled float64 array."""
    array = _check_landmarks(landmarks, "landmarks").astype(np.float64)
    path = Path(path)
    with atomic_path(path) as temp, open(temp, "wb") as file:
        pickle.dump(array, file, protocol=4)
    return path


# ---------------------------------------------------------------------- reading a recording
def _check_recording_id(recording: object) -> str:
    if not isinstance(recording, str) or not recording or re.search(r"[/\\]", recording):
        raise InputError(
            f"recording: expected a file-name prefix such as '000337', got {recording!r}"
        )
    return recording


def find_recordings(folder: str | os.PathLike[str]) -> list[str]:
    """Recording ids with at least one ``<rec>_<cam>.json`` intrinsics file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: recording folder not found")
    found = {m["rec"] for p in folder.iterdir() if (m := _CAMERA_FILE.match(p.name))}
    return sorted(found)


@dataclass(frozen=True)
class RawRecording:
    """One recording of the MMFace4D raw layout: the paths of its files and their readers.

    Attributes:
        folder: the folder holding the files.
        recording: the id, the file-name prefix (``000337``).
        cameras: the camera indices present, sorted.
    """

    folder: Path
    recording: str
    cameras: tuple[int, ...]

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike[str],
        recording: str,
        cameras: Sequence[int] | None = None,
    ) -> RawRecording:
        """Find a recording's cameras, the ``<rec>_<cam>.json`` files (or check the given ones)."""
        folder = Path(folder)
        recording = _check_recording_id(recording)
        if not folder.is_dir():
            raise InputError(f"{folder}: recording folder not found")
        if cameras is None:
            found = set()
            for path in folder.iterdir():
                match = _CAMERA_FILE.match(path.name)
                if match and match["rec"] == recording:
                    found.add(int(match["cam"]))
            if not found:
                raise InputError(
                    f"{folder}: no camera of recording {recording!r} (expected "
                    f"{recording}_<camera>.json intrinsics files)"
                )
            cameras = sorted(found)
        result = cls(folder, recording, tuple(int(c) for c in cameras))
        for camera in result.cameras:
            if not result.intrinsics_path(camera).is_file():
                raise InputError(f"{result.intrinsics_path(camera)}: camera intrinsics not found")
        return result

    def _path(self, camera: int, suffix: str) -> Path:
        return self.folder / f"{self.recording}_{camera}{suffix}"

    def colour_path(self, camera: int) -> Path:
        return self._path(camera, ".mp4")

    def depth_path(self, camera: int) -> Path:
        return self._path(camera, ".nut")

    def intrinsics_path(self, camera: int) -> Path:
        return self._path(camera, ".json")

    def landmarks_path(self, camera: int) -> Path:
        return self._path(camera, ".pkl")

    @property
    def audio_path(self) -> Path:
        return self.folder / f"{self.recording}.wav"

    def calibration(self, camera: int) -> CameraCalibration:
        """The camera's calibration (extrinsics: identity unless the json holds them)."""
        return read_mmface4d_json(self.intrinsics_path(camera))

    def landmarks(self, camera: int) -> np.ndarray | None:
        """(T, 98, 2 or 3) landmark pixels, or None without a ``.pkl`` file."""
        path = self.landmarks_path(camera)
        return read_landmarks(path) if path.is_file() else None

    def audio(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray | None:
        """(N,) float32 mono speech at ``sample_rate``, or None without ``<rec>.wav``."""
        return load_audio(self.audio_path, sample_rate) if self.audio_path.is_file() else None

    def frame_count(self, camera: int) -> int:
        """Frames of the camera's colour and depth videos (checked equal)."""
        colour, depth = self.colour_path(camera), self.depth_path(camera)
        colour_frames, depth_frames = count_frames(colour), count_frames(depth)
        if colour_frames != depth_frames:
            raise InputError(
                f"{depth}: {depth_frames} depth frames, {colour.name} has {colour_frames}"
            )
        return colour_frames

    def colour_frames(
        self, camera: int, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Stream (H, W, 3) uint8 colour frames ``start..stop-1``."""
        return read_colour_frames(self.colour_path(camera), start, stop)

    def depth_frames(
        self, camera: int, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Stream (H, W) uint16 millimetre depth frames (colour-registered) ``start..stop-1``."""
        return read_depth_frames(self.depth_path(camera), start, stop)


# ---------------------------------------------------------------------- writing
class RawRecordingWriter:
    """Streams one recording into the raw layout, one time step (every camera) per call.

    Usage::

        with RawRecordingWriter(folder, "000001", calibrations, fps=30) as writer:
            for colours, depths in frames:        # C colour and C depth images per step
                writer.write(colours, depths)
            writer.finish(audio=speech, sample_rate=DEFAULT_SAMPLE_RATE)

    Videos are encoded as they arrive (memory stays one frame per camera) under temporary
    names; :meth:`finish` verifies their frame counts, renames them and writes the json,
    landmark and wav files. Leaving the ``with`` block by an exception (or :meth:`abort`)
    removes every temporary file; leaving it normally without :meth:`finish` finishes without
    audio.

    Args:
        folder: output folder (created if missing).
        recording: the recording id, the files' prefix.
        calibrations: one per camera, in camera order; the colour and depth images of camera
            ``c`` must be ``calibrations[c].height x width`` (both even: yuv420p).
        fps: frame rate.
        crf: H.264 quality of the colour videos (18: visually lossless).
        preset: x264 speed preset (``ultrafast`` .. ``veryslow``).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        recording: str,
        calibrations: Sequence[CameraCalibration],
        *,
        fps: float = 30.0,
        crf: int = 18,
        preset: str = "fast",
    ) -> None:
        self.folder = Path(folder)
        self.recording = _check_recording_id(recording)
        self.calibrations = tuple(calibrations)
        if not self.calibrations or not all(
            isinstance(c, CameraCalibration) for c in self.calibrations
        ):
            raise InputError("calibrations: expected one CameraCalibration per camera")
        for camera, calibration in enumerate(self.calibrations):
            if calibration.width % 2 or calibration.height % 2:
                raise InputError(
                    f"calibrations[{camera}]: image size must be even for yuv420p video, got "
                    f"{calibration.width}x{calibration.height}"
                )
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps: expected a positive frame rate, got {fps!r}")
        self.fps = float(fps)
        self.frames = 0
        self._layout = RawRecording(self.folder, self.recording, tuple(range(len(calibrations))))
        self._landmarks: list[list[np.ndarray] | None] = [[] for _ in self.calibrations]
        self._stack = ExitStack()
        self._containers: list[av.container.OutputContainer] = []
        self._streams: list[tuple[av.VideoStream, av.VideoStream]] = []
        self._temps: list[tuple[Path, Path]] = []
        self._done = False
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            for camera, calibration in enumerate(self.calibrations):
                colour_temp = self._stack.enter_context(
                    atomic_path(self._layout.colour_path(camera))
                )
                depth_temp = self._stack.enter_context(atomic_path(self._layout.depth_path(camera)))
                colour = av.open(str(colour_temp), "w", format="mp4")
                self._containers.append(colour)
                depth = av.open(str(depth_temp), "w", format="nut")
                self._containers.append(depth)
                colour_stream = colour.add_stream("libx264", rate=rate)
                colour_stream.width, colour_stream.height = calibration.width, calibration.height
                colour_stream.pix_fmt = "yuv420p"
                colour_stream.options = {"crf": str(int(crf)), "preset": str(preset)}
                depth_stream = depth.add_stream("ffv1", rate=rate)
                depth_stream.width, depth_stream.height = calibration.width, calibration.height
                depth_stream.pix_fmt = "gray16le"
                self._streams.append((colour_stream, depth_stream))
                self._temps.append((colour_temp, depth_temp))
        except BaseException:
            self._close(*sys.exc_info())
            raise

    def __enter__(self) -> RawRecordingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:
            return
        if exc_type is None:
            self.finish()
        else:
            self._close(exc_type, exc, tb)

    def _close(self, exc_type=None, exc=None, tb=None) -> None:
        self._done = True
        for container in self._containers:
            with contextlib.suppress(av.FFmpegError):  # the original error is what matters
                container.close()
        self._stack.__exit__(exc_type, exc, tb)

    def abort(self) -> None:
        """Stop and remove every temporary file; nothing appears under the final names."""
        if not self._done:
            self._close(InputError, InputError("aborted"), None)

    def write(
        self,
        colour: Sequence[np.ndarray],
        depth: Sequence[np.ndarray],
        landmarks: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Append one time step.

        Args:
            colour: per camera an (H, W, 3) uint8 RGB image.
            depth: per camera an (H, W) uint16 depth image in millimetres, registered to the
                colour camera (0 = no measurement).
            landmarks: per camera a (98, 2 or 3) pixel array or None; a camera gets a ``.pkl``
                file only if every step gives it landmarks.
        """
        if self._done:
            raise InputError(f"{self.recording}: writer is already finished")
        cameras = len(self.calibrations)
        if len(colour) != cameras or len(depth) != cameras:
            raise InputError(
                f"frame {self.frames}: expected {cameras} colour and depth images, got "
                f"{len(colour)} and {len(depth)}"
            )
        if landmarks is not None and len(landmarks) != cameras:
            raise InputError(f"frame {self.frames}: expected {cameras} landmark arrays")
        try:
            for camera, calibration in enumerate(self.calibrations):
                size = (calibration.height, calibration.width)
                image = np.ascontiguousarray(colour[camera])
                if image.shape != (*size, 3) or image.dtype != np.uint8:
                    raise InputError(
                        f"camera {camera} frame {self.frames}: colour must be {(*size, 3)} uint8, "
                        f"got {image.shape} {image.dtype}"
                    )
                z = np.ascontiguousarray(depth[camera])
                if z.shape != size or z.dtype != np.uint16:
                    raise InputError(
                        f"camera {camera} frame {self.frames}: depth must be {size} uint16 "
                        f"millimetres, got {z.shape} {z.dtype}"
                    )
                points = None if landmarks is None else landmarks[camera]
                if self.frames == 0 and points is None:
                    self._landmarks[camera] = None
                if (points is None) != (self._landmarks[camera] is None):
                    raise InputError(
                        f"camera {camera} frame {self.frames}: landmarks must be given for every "
                        "frame of a camera or for none"
                    )
                if points is not None:
                    points = _check_landmarks(np.asarray(points)[None], f"landmarks[{camera}]")
                    self._landmarks[camera].append(points[0])
                colour_stream, depth_stream = self._streams[camera]
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = self.frames
                self._containers[2 * camera].mux(colour_stream.encode(frame))
                frame = av.VideoFrame.from_ndarray(z.astype("<u2", copy=False), format="gray16le")
                frame.pts = self.frames
                self._containers[2 * camera + 1].mux(depth_stream.encode(frame))
        except BaseException:
            self._close(*sys.exc_info())
            raise
        self.frames += 1

    def finish(
        self, audio: np.ndarray | None = None, sample_rate: int = DEFAULT_SAMPLE_RATE
    ) -> RawRecording:
        """Flush, verify and rename the videos; write json, landmark and wav files.

        Args:
            audio: (N,) mono speech in [-1, 1] written as ``<rec>.wav`` (float32; MMFace4D
                ships 16 kHz), or None.
            sample_rate: rate of ``audio`` in Hz.

        Returns:
            The written :class:`RawRecording`.
        """
        if self._done:
            raise InputError(f"{self.recording}: writer is already finished")
        try:
            if self.frames == 0:
                raise InputError(f"{self.recording}: no frames were written")
            for camera, (colour_stream, depth_stream) in enumerate(self._streams):
                self._containers[2 * camera].mux(colour_stream.encode(None))
                self._containers[2 * camera + 1].mux(depth_stream.encode(None))
            for container in self._containers:
                container.close()
            for temps in self._temps:
                for temp in temps:
                    if (found := count_frames(temp)) != self.frames:
                        raise InputError(f"{temp}: encoded {found} frames, expected {self.frames}")
            if audio is not None:  # before the videos get their names: bad audio aborts all
                write_wav(self._layout.audio_path, audio, sample_rate, encoding="float32")
        except BaseException:
            self._close(*sys.exc_info())
            raise
        self._close()
        length_usec = round(self.frames / self.fps * 1e6)
        for camera, calibration in enumerate(self.calibrations):
            write_mmface4d_json(
                self._layout.intrinsics_path(camera), calibration, stream_length_usec=length_usec
            )
            if self._landmarks[camera]:
                write_landmarks(
                    self._layout.landmarks_path(camera), np.stack(self._landmarks[camera])
                )
        return self._layout


def _frame_source(source: np.ndarray | Iterable[np.ndarray], name: str) -> Iterator[np.ndarray]:
    if isinstance(source, np.ndarray):
        if source.ndim < 3:
            raise InputError(f"{name}: expected frames (T, H, W[, 3]), got shape {source.shape}")
        return iter(source)
    try:
        return iter(source)
    except TypeError:
        raise InputError(f"{name}: expected an array of frames or an iterable of frames") from None


def write_raw_recording(
    folder: str | os.PathLike[str],
    recording: str,
    calibrations: Sequence[CameraCalibration],
    colour: Sequence[np.ndarray | Iterable[np.ndarray]],
    depth: Sequence[np.ndarray | Iterable[np.ndarray]],
    *,
    landmarks: Sequence[np.ndarray | None] | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    fps: float = 30.0,
    crf: int = 18,
    preset: str = "fast",
) -> RawRecording:
    """Write one recording in the MMFace4D raw layout (atomically per file).

    The per-camera frame sources are consumed in lockstep, one frame of every camera at a time,
    so generators that render frames lazily keep memory at one frame per camera. For a source
    that yields all cameras of a time step together use :class:`RawRecordingWriter` directly.

    Args:
        folder: output folder.
        recording: the recording id (file prefix, e.g. ``"000337"``).
        calibrations: C calibrations, in camera order (C = 3 for MMFace4D, centre camera 1).
        colour: per camera a (T, H, W, 3) uint8 array or an iterable of (H, W, 3) uint8 frames.
        depth: per camera a (T, H, W) uint16 millimetre array or an iterable of (H, W) frames,
            registered to that camera's colour image.
        landmarks: optional, per camera a (T, 98, 2 or 3) pixel array or None.
        audio: optional (N,) mono speech in [-1, 1], written as ``<rec>.wav``.
        sample_rate: rate of ``audio`` (MMFace4D: 16 kHz).
        fps: video frame rate.
        crf, preset: H.264 quality and speed of the colour videos.

    Returns:
        The written :class:`RawRecording`.

    Raises:
        InputError: wrong counts, shapes or dtypes, or cameras with different frame counts
            (naming the camera); nothing is left under the final names of the videos then.
    """
    cameras = len(calibrations)
    if len(colour) != cameras or len(depth) != cameras:
        raise InputError(
            f"expected colour and depth sources for {cameras} cameras, got {len(colour)} and "
            f"{len(depth)}"
        )
    if landmarks is not None and len(landmarks) != cameras:
        raise InputError(f"landmarks: expected {cameras} arrays (or None), got {len(landmarks)}")
    points = [
        None if lm is None else _check_landmarks(lm, f"landmarks[{camera}]")
        for camera, lm in enumerate(landmarks if landmarks is not None else [None] * cameras)
    ]
    sources = [_frame_source(colour[c], f"colour[{c}]") for c in range(cameras)]
    sources += [_frame_source(depth[c], f"depth[{c}]") for c in range(cameras)]
    names = [f"colour[{c}]" for c in range(cameras)] + [f"depth[{c}]" for c in range(cameras)]
    _missing = object()
    with RawRecordingWriter(
        folder, recording, calibrations, fps=fps, crf=crf, preset=preset
    ) as writer:
        while True:
            step = [next(source, _missing) for source in sources]
            ended = [name for name, item in zip(names, step, strict=True) if item is _missing]
            if len(ended) == len(step):
                break
            if ended:
                longer = next(n for n, i in zip(names, step, strict=True) if i is not _missing)
                raise InputError(
                    f"{ended[0]}: {writer.frames} frames, {longer} has more (every camera needs "
                    "the same number of colour and depth frames)"
                )
            frame_points = None
            if any(p is not None for p in points):
                t = writer.frames
                for camera, p in enumerate(points):
                    if p is not None and t >= len(p):
                        raise InputError(
                            f"landmarks[{camera}]: {len(p)} frames, the videos have more"
                        )
                frame_points = [None if p is None else p[t] for p in points]
            writer.write(step[:cameras], step[cameras:], frame_points)
        for camera, p in enumerate(points):
            if p is not None and len(p) != writer.frames:
                raise InputError(
                    f"landmarks[{camera}]: {len(p)} frames, the videos have {writer.frames}"
                )
        return writer.finish(audio, sample_rate)

"""One multi-camera RGB-D recording as frame-synchronised colour + registered depth.

:class:`Capture` opens either an MMFace4D raw folder (:mod:`mmface4d.capture.layout`) or one
Azure Kinect / Orbbec MKV file per camera (:mod:`mmface4d.capture.mkv`) and streams, frame by
frame, every camera's (H, W, 3) uint8 colour and (H, W) uint16 millimetre depth in that colour
camera's pixels, with the calibrations. Videos are decoded as they are read, never loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio
from mmface4d.capture.cameras import CENTRE_CAMERA, CameraCalibration
from mmface4d.capture.layout import RawRecording, video_size
from mmface4d.capture.mkv import MkvRecording
from mmface4d.errors import InputError

# (start, stop) -> iterator of (colour (H, W, 3) uint8, depth (H, W) uint16 mm)
_FrameReader = Callable[[int, int | None], Iterator[tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class CaptureFrame:
    """One time step of every camera.

    Attributes:
        index: the frame index.
        colour: C images (H, W, 3) uint8 RGB, in camera order.
        depth: C images (H, W) uint16 millimetres in the colour camera's pixels (0 = none).
    """

    index: int
    colour: tuple[np.ndarray, ...]
    depth: tuple[np.ndarray, ...]


class Capture:
    """A synchronised multi-camera RGB-D recording.

    Build it with :meth:`from_raw` or :meth:`from_mkv`. ``len(capture)`` is the frame count
    (every camera has it, checked on opening); :meth:`frames` streams :class:`CaptureFrame`.

    Attributes:
        calibrations: C colour-camera calibrations (the depth is in their pixels); extrinsics are
            reference-from-camera (identity until known, see :meth:`with_extrinsics`).
        sources: C names (files) of the cameras, for messages.
        fps: frame rate.
        audio_path: the speech file, or None.
        ends: per camera, the frame where its file ends (``len(capture)`` unless opened with
            ``allow_dropouts``); later frames of that camera are blank (black, no depth).
    """

    def __init__(
        self,
        readers: Sequence[_FrameReader],
        calibrations: Sequence[CameraCalibration],
        sources: Sequence[str],
        frames: int,
        fps: float,
        audio_path: Path | None = None,
        raw: RawRecording | None = None,
        ends: Sequence[int] | None = None,
    ) -> None:
        self._readers = tuple(readers)
        self.ends = tuple(ends) if ends is not None else (frames,) * len(self._readers)
        self.calibrations = tuple(calibrations)
        self.sources = tuple(sources)
        self._frames = frames
        self.fps = fps
        self.audio_path = audio_path
        self._raw = raw

    # ------------------------------------------------------------------ opening
    @classmethod
    def from_raw(
        cls,
        folder: str | os.PathLike[str],
        recording: str,
        cameras: Sequence[int] | None = None,
        allow_dropouts: bool = False,
    ) -> Capture:
        """Open ``<folder>/<recording>_<cam>.{mp4,nut,json}`` (+ ``<recording>.wav``).

        With ``allow_dropouts`` cameras may hold fewer frames than the longest one (a camera
        that stopped mid-recording): the recording is as long as the longest camera, and a
        shorter camera's missing frames are blank (black colour, no depth; see :attr:`ends`).

        Raises:
            InputError: a missing file, a video whose size differs from its json, or cameras
                (or a camera's colour and depth) with different frame counts.
        """
        raw = RawRecording.open(folder, recording, cameras)
        calibrations, counts = [], []
        for camera in raw.cameras:
            calibration = raw.calibration(camera)
            expected = (calibration.width, calibration.height)
            for path in (raw.colour_path(camera), raw.depth_path(camera)):
                if not path.is_file():
                    kind = "colour" if path.suffix == ".mp4" else "depth"
                    raise InputError(f"{path}: {kind} video not found")
                if (size := video_size(path)) != expected:
                    raise InputError(
                        f"{path}: video is {size[0]}x{size[1]}, "
                        f"{raw.intrinsics_path(camera).name} says {expected[0]}x{expected[1]}"
                    )
            calibrations.append(calibration)
            counts.append(raw.frame_count(camera))
        paths = [raw.colour_path(c) for c in raw.cameras]
        if allow_dropouts:
            if max(counts) == 0:
                raise InputError(f"{paths[0]}: no frames")
        else:
            _check_counts(counts, paths, raw.cameras)
        with av.open(str(raw.colour_path(raw.cameras[0]))) as container:
            rate = container.streams.video[0].average_rate
        readers = [_raw_reader(raw, camera) for camera in raw.cameras]
        audio = raw.audio_path if raw.audio_path.is_file() else None
        sources = [str(raw.colour_path(c)) for c in raw.cameras]
        fps = float(rate) if rate else 30.0
        return cls(readers, calibrations, sources, max(counts), fps, audio, raw, counts)

    @classmethod
    def from_mkv(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        audio: str | os.PathLike[str] | None = None,
    ) -> Capture:
        """Open one Azure Kinect / Orbbec MKV file per camera, in camera order.

        Each device's depth is registered to its colour camera with its own factory
        calibration. The devices' relative poses are not in the files: the calibrations come
        with identity extrinsics (set them with :meth:`with_extrinsics`).

        Args:
            paths: C ``.mkv`` files, one per camera.
            audio: optional speech file (any format :func:`~mmface4d.audio.io.load_audio` reads).
        """
        if isinstance(paths, str | os.PathLike) or not paths:
            raise InputError("paths: expected a list of .mkv files, one per camera")
        recordings = [MkvRecording(path) for path in paths]
        counts = [len(recording) for recording in recordings]
        _check_counts(counts, [r.path for r in recordings], range(len(recordings)))
        audio_path = None if audio is None else Path(audio)
        if audio_path is not None and not audio_path.is_file():
            raise InputError(f"{audio_path}: audio file not found")
        readers = [_mkv_reader(recording) for recording in recordings]
        calibrations = [recording.calibration.colour for recording in recordings]
        sources = [str(recording.path) for recording in recordings]
        return cls(readers, calibrations, sources, counts[0], recordings[0].fps, audio_path)

    def with_extrinsics(self, extrinsics: Sequence[np.ndarray]) -> Capture:
        """The same capture with C (4, 4) reference-from-camera transforms (metres)."""
        if len(extrinsics) != len(self.calibrations):
            raise InputError(
                f"extrinsics: expected {len(self.calibrations)} (4, 4) matrices, got "
                f"{len(extrinsics)}"
            )
        calibrations = [
            c.with_extrinsics(e) for c, e in zip(self.calibrations, extrinsics, strict=True)
        ]
        return Capture(
            self._readers,
            calibrations,
            self.sources,
            self._frames,
            self.fps,
            self.audio_path,
            self._raw,
            self.ends,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._frames

    @property
    def num_cameras(self) -> int:
        return len(self.calibrations)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[CaptureFrame]:
        """Stream frames ``start..stop-1`` of every camera (``stop`` None: to the end)."""
        stop = self._frames if stop is None else stop
        if not 0 <= start <= stop <= self._frames:
            raise InputError(
                f"frame range: expected 0 <= start <= stop <= {self._frames}, got {start}..{stop}"
            )
        with ExitStack() as stack:
            streams = [stack.enter_context(closing(read(start, stop))) for read in self._readers]
            for offset in range(stop - start):
                colours, depths = [], []
                for camera, stream in enumerate(streams):
                    item = next(stream, None)
                    if item is None and start + offset >= self.ends[camera]:  # dropped out
                        calibration = self.calibrations[camera]
                        size = (calibration.height, calibration.width)
                        item = (np.zeros((*size, 3), np.uint8), np.zeros(size, np.uint16))
                    if item is None:
                        raise InputError(
                            f"{self.sources[camera]}: ended at frame {start + offset}, expected "
                            f"{self._frames} frames"
                        )
                    colours.append(item[0])
                    depths.append(item[1])
                yield CaptureFrame(start + offset, tuple(colours), tuple(depths))

    def __iter__(self) -> Iterator[CaptureFrame]:
        return self.frames()

    def audio(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray | None:
        """(N,) float32 mono speech at ``sample_rate`` (16 kHz), or None without audio."""
        return None if self.audio_path is None else load_audio(self.audio_path, sample_rate)

    def landmarks(self, camera: int) -> np.ndarray | None:
        """The dataset's (T, 98, 2 or 3) landmark pixels of camera position ``camera`` (raw
        layout with ``.pkl`` files only), else None."""
        if not 0 <= camera < self.num_cameras:
            raise InputError(f"camera: expected 0..{self.num_cameras - 1}, got {camera}")
        return None if self._raw is None else self._raw.landmarks(self._raw.cameras[camera])

    @property
    def reference_camera(self) -> int:
        """Position of the MMFace4D centre camera among the cameras (0 if absent)."""
        if self._raw is not None and CENTRE_CAMERA in self._raw.cameras:
            return self._raw.cameras.index(CENTRE_CAMERA)
        return 0


def _check_counts(counts: Sequence[int], paths: Sequence[Path], cameras: Sequence[int]) -> None:
    for path, count in zip(paths, counts, strict=True):
        if count != counts[0]:
            raise InputError(f"{path}: {count} frames, camera {cameras[0]} has {counts[0]}")
    if counts[0] == 0:
        raise InputError(f"{paths[0]}: no frames")


def _raw_reader(raw: RawRecording, camera: int) -> _FrameReader:
    def read(start: int, stop: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        colour = raw.colour_frames(camera, start, stop)
        depth = raw.depth_frames(camera, start, stop)
        with closing(colour), closing(depth):
            for image in colour:
                z = next(depth, None)
                if z is None:
                    raise InputError(
                        f"{raw.depth_path(camera)}: fewer frames than the colour video"
                    )
                yield image, z

    return read


def _mkv_reader(recording: MkvRecording) -> _FrameReader:
    def read(start: int, stop: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        frames = recording.frames(start, stop)
        with closing(frames):
            for frame in frames:
                yield frame.colour, frame.depth

    return read

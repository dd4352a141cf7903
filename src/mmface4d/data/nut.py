"""The MMFace4D ``.nut`` mesh-sequence codec, bit-compatible with the official release.

A sequence of T frames of V vertices is three files ``<prefix>_0.nut``, ``_1.nut``, ``_2.nut``,
one per axis x, y, z: FFV1 video, pixel format gray16le, 30 fps, in a NUT container, each frame
a square image holding that axis's float32 min/max and 16-bit quantised coordinates (the layout
is in :mod:`mmface4d.data.nut_frames`; decoding reproduces the official float32 formula bit for
bit).

The number of vertices is not stored: a side-S image holds any V with ``ceil(sqrt(V + 4)) == S``
(35,341..35,717 for S = 189). Decoders default to 35,709 (the BFM front face) when S is 189 and
otherwise need ``num_vertices``; a V too small for the file shows as non-zero slots after it and
is refused, a V too large within the same side cannot be told apart.

All video I/O goes through PyAV (no ffmpeg binary). The official files use an FFV1 version
without checksums; current FFmpeg writes FFV1 version 3 with per-slice CRCs, which FFmpeg has
decoded since 2013 (the images are identical either way). Decoding refuses a file whose NUT
index is missing from its end (cut short), whose slice CRC fails (FFmpeg would silently conceal
it) or whose frames break the layout (bounds not finite or min > max, non-zero tail).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.data.nut_defaults import BFM_FRONT_VERTICES, DEFAULT_FPS
from mmface4d.data.nut_frames import (
    DEFAULT_PADDING,
    HEADER_SLOTS,
    axis_to_images,
    image_side,
    images_to_axis,
)
from mmface4d.errors import InputError
from mmface4d.geometry.checks import check_vertices

_NUT_SIGNATURE = b"nut/multimedia container\0"
_NUT_INDEX_STARTCODE = bytes.fromhex("4E58DD672F23E64E")


@dataclass(frozen=True)
class NutInfo:
    """A sequence as its containers describe it, read without decoding: the x, y, z axis
    ``paths``, T ``frames``, the frame rate ``fps`` and the side S of the square frame images
    (``S*S - 4`` vertex slots)."""

    paths: tuple[Path, Path, Path]
    frames: int
    fps: Fraction
    side: int


def axis_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """The three axis files of a sequence: ``<prefix>_0.nut``, ``_1.nut``, ``_2.nut``."""
    base = os.fspath(prefix)
    return Path(f"{base}_0.nut"), Path(f"{base}_1.nut"), Path(f"{base}_2.nut")


def _check_container(path: Path) -> None:
    """Raise unless ``path`` is a NUT file that ends with FFmpeg's index (it is cut short if
    not: FFmpeg, which wrote the official release and writes ours, always ends with one)."""
    if not path.is_file():
        raise InputError(f"{path}: .nut axis file not found")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(len(_NUT_SIGNATURE))
        if head != _NUT_SIGNATURE:
            raise InputError(f"{path}: not a NUT file (expected signature 'nut/multimedia ...')")
        index_start = -1
        if size >= len(_NUT_SIGNATURE) + 12:
            file.seek(size - 12)
            index_start = size - int.from_bytes(file.read(8), "big")
        if index_start >= len(_NUT_SIGNATURE):
            file.seek(index_start)
            if file.read(8) == _NUT_INDEX_STARTCODE:
                return
    raise InputError(f"{path}: truncated .nut file (no index at its end; {size} bytes)")


def _open_axis(path: Path) -> av.container.InputContainer:
    _check_container(path)
    try:
        container = av.open(str(path), format="nut")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: cannot open .nut file ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: no video stream in .nut file")
    codec = container.streams.video[0].codec_context.name
    if codec != "ffv1":
        container.close()
        raise InputError(f"{path}: expected an FFV1 video stream, found {codec}")
    return container


@contextlib.contextmanager
def _ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Collect FFmpeg's error-level log lines from this thread. FFV1 conceals a slice whose CRC
    fails (it copies the previous frame) and says so only in the log. Raises PyAV's global
    log level to ERROR meanwhile, if it was lower."""
    previous = av.logging.get_level()
    raise_level = previous is None or previous < av.logging.ERROR
    if raise_level:
        av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        if raise_level:
            av.logging.set_level(previous)


def read_axis_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode the raw frame images of one axis file.

    Returns:
        (T, S, S) uint16 images.
    """
    path = Path(path)
    images: list[np.ndarray] = []
    with _open_axis(path) as container, _ffmpeg_errors() as logs:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # so that the decoder logs on this thread
        try:
            for packet in container.demux(stream):
                frames = packet.decode()
                errors = [line for level, _, line in logs if level <= av.logging.ERROR]
                if packet.is_corrupt or errors:
                    found = errors[0].strip() if errors else "corrupt packet"
                    raise InputError(f"{path}: corrupt at frame {len(images)} ({found})")
                for frame in frames:
                    if frame.format.name != "gray16le" or frame.width != frame.height:
                        raise InputError(
                            f"{path}: expected square gray16le frames, found "
                            f"{frame.width}x{frame.height} {frame.format.name}"
                        )
                    if images and frame.width != images[0].shape[0]:
                        raise InputError(f"{path}: frame {len(images)} changes the image size")
                    images.append(frame.to_ndarray())
        except av.FFmpegError as exc:
            raise InputError(f"{path}: corrupt at frame {len(images)} ({exc})") from exc
    if not images:
        raise InputError(f"{path}: .nut file holds no frames")
    return np.stack(images)


def _resolve_vertices(num_vertices: int | None, side: int, source: str) -> int:
    if num_vertices is None:
        if side == image_side(BFM_FRONT_VERTICES):
            return BFM_FRONT_VERTICES
        raise InputError(
            f"{source}: {side}x{side} frames are not the {BFM_FRONT_VERTICES}-vertex BFM front "
            f"face; pass the vertex count (at most {side * side - HEADER_SLOTS})"
        )
    if isinstance(num_vertices, bool) or not isinstance(num_vertices, int | np.integer):
        raise InputError(f"num_vertices: expected an integer, found {num_vertices!r}")
    if num_vertices < 1:
        raise InputError(f"num_vertices: expected >= 1, found {num_vertices}")
    return int(num_vertices)


def decode_nut_axis(path: str | os.PathLike[str], num_vertices: int | None = None) -> np.ndarray:
    """Decode one axis file.

    Args:
        path: an axis file, e.g. ``reconstruct_filt_0.nut``.
        num_vertices: V; default 35,709 when the frames are 189x189, otherwise required.

    Returns:
        (T, V) float32 coordinates of that axis.
    """
    images = read_axis_images(path)
    count = _resolve_vertices(num_vertices, images.shape[1], str(path))
    return images_to_axis(images, count, source=str(path))


def decode_nut(prefix: str | os.PathLike[str], num_vertices: int | None = None) -> np.ndarray:
    """Decode a sequence from ``<prefix>_0.nut``, ``_1.nut``, ``_2.nut``.

    Args:
        prefix: the path without ``_<axis>.nut``, e.g. ``.../reconstruct_filt``.
        num_vertices: V; default 35,709 when the frames are 189x189, otherwise required.

    Returns:
        (T, V, 3) float32 vertices (metres in the official release).
    """
    paths = axis_paths(prefix)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        hint = " (give the prefix without _<axis>.nut)" if str(prefix).endswith(".nut") else ""
        raise InputError(f"{prefix}: missing axis file(s) {', '.join(missing)}{hint}")
    axes = [decode_nut_axis(path, num_vertices) for path in paths]
    counts = [axis.shape[0] for axis in axes]
    if len(set(counts)) != 1:
        raise InputError(
            f"{prefix}: axis files hold different frame counts "
            f"(x {counts[0]}, y {counts[1]}, z {counts[2]}; expected equal)"
        )
    return np.stack(axes, axis=-1)


def nut_info(prefix: str | os.PathLike[str]) -> NutInfo:
    """Frame count, frame rate and image side of a sequence, by demuxing without decoding."""
    paths = axis_paths(prefix)
    found = []
    for path in paths:
        with _open_axis(path) as container:
            stream = container.streams.video[0]
            frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
            fps = stream.average_rate or stream.guessed_rate or Fraction(0)
            found.append((frames, Fraction(fps), stream.codec_context.width))
    if len(set(found)) != 1:
        raise InputError(f"{prefix}: axis files disagree (frames, fps, side): {found}")
    return NutInfo(paths=paths, frames=found[0][0], fps=found[0][1], side=found[0][2])


def encode_nut(
    vertices: np.ndarray,
    prefix: str | os.PathLike[str],
    fps: float | Fraction = DEFAULT_FPS,
    padding: float = DEFAULT_PADDING,
) -> tuple[Path, Path, Path]:
    """Encode a sequence as ``<prefix>_0.nut``, ``_1.nut``, ``_2.nut`` (all three or none).

    Args:
        vertices: (T, V, 3) finite coordinates (metres for the official padding to make sense).
        prefix: output path without ``_<axis>.nut``.
        fps: frame rate (the release uses 30).
        padding: added below/above each frame's per-axis min/max; keep > 0 so that
            ``max`` itself is never quantised (its 65536 would not fit a uint16).

    Returns:
        The three paths written.
    """
    array = check_vertices(vertices)
    if not (isinstance(padding, numbers.Real) and math.isfinite(padding) and padding >= 0):
        raise InputError(f"padding: expected a finite number >= 0, found {padding!r}")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps: expected a positive number, found {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    images = [axis_to_images(array[:, :, axis], padding) for axis in range(3)]
    paths = axis_paths(prefix)
    with ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(path)) for path in paths]
        for temp, axis_images in zip(temps, images, strict=True):
            _write_axis_images(axis_images, temp, rate)
    return paths


def _write_axis_images(images: np.ndarray, path: Path, rate: Fraction) -> None:
    with av.open(str(path), "w", format="nut") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width = stream.height = images.shape[1]
        stream.pix_fmt = "gray16le"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="gray16le")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode(
    prefix: str | os.PathLike[str], output: str | os.PathLike[str], num_vertices: int | None = None
) -> Path:
    """Decode a ``.nut`` sequence to a (T, V, 3) float32 ``.npy`` file, written atomically."""
    vertices = decode_nut(prefix, num_vertices)
    with atomic_path(output) as temp, open(temp, "wb") as file:
        np.save(file, vertices)
    return Path(output)


def encode(
    input: str | os.PathLike[str], prefix: str | os.PathLike[str], fps: float = DEFAULT_FPS
) -> tuple[Path, Path, Path]:
    """Encode a (T, V, 3) ``.npy`` file as ``<prefix>_{0,1,2}.nut``."""
    source = Path(input)
    if not source.is_file():
        raise InputError(f"{source}: vertex file not found (expected a (T, V, 3) .npy)")
    try:
        vertices = np.load(source, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise InputError(f"{source}: not a readable .npy array ({exc})") from exc
    if not isinstance(vertices, np.ndarray):
        vertices.close()
        raise InputError(f"{source}: expected one (T, V, 3) array in a .npy, found an .npz")
    check_vertices(vertices, name=str(source))
    return encode_nut(vertices, prefix, fps=fps)

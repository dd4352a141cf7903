"""The MMFace4D .nut codec against the real sample and an independent decoder of the format."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmface4d.data import nut, nut_frames
from mmface4d.data.nut import axis_paths, decode_nut, decode_nut_axis, encode_nut, nut_info
from mmface4d.errors import InputError

SAMPLE_FRAMES, SAMPLE_VERTICES = 67, 35_709


def reference_decode(prefix: Path | str, num_vertices: int) -> np.ndarray:
    """The format's formula written out plainly: raw gray16le bytes per frame (honouring the
    plane's row padding), min/max unpacked with struct as in the official decoder, then
    ``q / 65536 * (max - min) + min`` in float32. Returns (T, V, 3)."""
    axes = []
    for axis in range(3):
        rows = []
        with av.open(f"{prefix}_{axis}.nut") as container:
            for frame in container.decode(video=0):
                plane = frame.planes[0]
                raw = np.frombuffer(bytes(plane), dtype="<u2").reshape(frame.height, -1)
                flat = raw[:, : frame.width].reshape(-1)
                low = struct.unpack("<f", struct.pack("<HH", flat[0], flat[1]))[0]
                high = struct.unpack("<f", struct.pack("<HH", flat[2], flat[3]))[0]
                q = flat[4 : 4 + num_vertices].astype(np.float32)
                low32, high32 = np.float32(low), np.float32(high)
                rows.append(q / np.float32(2**16) * (high32 - low32) + low32)
        axes.append(np.stack(rows))
    return np.stack(axes, axis=-1)


def quantisation_step(
    vertices: np.ndarray, padding: float = nut_frames.DEFAULT_PADDING
) -> np.ndarray:
    """(T, 1, 3) size of one quantisation step, (max - min) / 65536 with the stored bounds."""
    low = (vertices.min(axis=1, keepdims=True) - padding).astype(np.float32)
    high = (vertices.max(axis=1, keepdims=True) + padding).astype(np.float32)
    return (high.astype(np.float64) - low.astype(np.float64)) / 65536


def random_sequence(frames: int = 4, vertices: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(frames, vertices, 3)) * 0.05 + [0.0, 0.03, 0.72]).astype(np.float32)


@pytest.fixture(scope="module")
def sample_prefix(shared_data: Path) -> Path:
    prefix = shared_data / "mmface4d_sample" / "reconstruct_filt"
    if not prefix.with_name("reconstruct_filt_0.nut").is_file():
        pytest.skip(f"{prefix}_0.nut not found")
    return prefix


@pytest.fixture(scope="module")
def sample_vertices(sample_prefix: Path) -> np.ndarray:
    return decode_nut(sample_prefix)


def test_image_side_known_values() -> None:
    assert nut_frames.image_side(SAMPLE_VERTICES) == 189
    assert nut_frames.image_side(5) == 3  # 9 slots hold 4 header values + 5 vertices exactly
    assert nut_frames.image_side(6) == 4
    assert nut_frames.image_side(189 * 189 - 4) == 189
    assert nut_frames.image_side(189 * 189 - 3) == 190


def test_axis_paths() -> None:
    assert [p.name for p in axis_paths("/d/reconstruct_filt")] == [
        "reconstruct_filt_0.nut",
        "reconstruct_filt_1.nut",
        "reconstruct_filt_2.nut",
    ]


def test_real_sample_decodes_exactly_as_the_formula(
    sample_prefix: Path, sample_vertices: np.ndarray
) -> None:
    assert sample_vertices.shape == (SAMPLE_FRAMES, SAMPLE_VERTICES, 3)
    assert sample_vertices.dtype == np.float32
    reference = reference_decode(sample_prefix, SAMPLE_VERTICES)
    np.testing.assert_array_equal(sample_vertices, reference)


def test_real_sample_geometry_is_a_face_in_metres(sample_vertices: np.ndarray) -> None:
    z = sample_vertices[..., 2]
    assert 0.64 < z.min() and z.max() < 0.80  # face about 0.66-0.78 m from the camera
    extent = sample_vertices.max(axis=1) - sample_vertices.min(axis=1)  # (T, 3)
    assert np.all((extent[:, :2] > 0.12) & (extent[:, :2] < 0.25))  # a face is ~17 x 19 cm
    assert np.all((extent[:, 2] > 0.05) & (extent[:, 2] < 0.2))
    per_frame_motion = np.abs(np.diff(sample_vertices, axis=0)).max()
    assert 0 < per_frame_motion < 0.01  # filtered speech motion: under 1 cm per frame


def test_real_sample_info(sample_prefix: Path) -> None:
    info = nut_info(sample_prefix)
    assert (info.frames, info.fps, info.side) == (SAMPLE_FRAMES, 30, 189)


def test_real_sample_axis_decoder_matches_sequence_decoder(
    sample_prefix: Path, sample_vertices: np.ndarray
) -> None:
    y = decode_nut_axis(f"{sample_prefix}_1.nut", SAMPLE_VERTICES)
    np.testing.assert_array_equal(y, sample_vertices[..., 1])


def test_reencoding_the_sample_reproduces_its_images(
    sample_prefix: Path, sample_vertices: np.ndarray, tmp_path: Path
) -> None:
    encode_nut(sample_vertices, tmp_path / "re")
    for ours, theirs in zip(axis_paths(tmp_path / "re"), axis_paths(sample_prefix), strict=True):
        a = nut.read_axis_images(ours).reshape(SAMPLE_FRAMES, -1).astype(np.int64)
        b = nut.read_axis_images(theirs).reshape(SAMPLE_FRAMES, -1).astype(np.int64)
        bounds_a = a[:, :4].astype("<u2").view("<f4")
        bounds_b = b[:, :4].astype("<u2").view("<f4")
        np.testing.assert_allclose(bounds_a, bounds_b, rtol=0, atol=1e-5)
        assert np.abs(a[:, 4:] - b[:, 4:]).max() <= 1
        assert (a[:, 4:] == b[:, 4:]).mean() > 0.95


def test_round_trip_within_one_step_and_official_formula(tmp_path: Path) -> None:
    vertices = random_sequence(frames=6, vertices=300)
    paths = encode_nut(vertices, tmp_path / "seq")
    assert all(p.is_file() for p in paths)
    decoded = decode_nut(tmp_path / "seq", num_vertices=300)
    assert decoded.shape == vertices.shape and decoded.dtype == np.float32
    step = quantisation_step(vertices)
    assert np.all(np.abs(decoded - vertices) <= step)
    np.testing.assert_array_equal(decoded, reference_decode(tmp_path / "seq", 300))
    info = nut_info(tmp_path / "seq")
    assert (info.frames, info.fps, info.side) == (6, 30, nut_frames.image_side(300))
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no temps


@settings(max_examples=12, deadline=None)
@given(
    frames=st.integers(1, 4),
    vertices=st.integers(1, 200),
    scale=st.floats(1e-6, 100.0),
    offset=st.floats(-100.0, 100.0),
    padding=st.sampled_from([0.0, 0.001, 0.05]),
    fps=st.sampled_from([25, 30, 60]),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(
    frames: int, vertices: int, scale: float, offset: float, padding: float, fps: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    sequence = rng.uniform(-1, 1, size=(frames, vertices, 3)) * scale + offset
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "seq"
        encode_nut(sequence, prefix, fps=fps, padding=padding)
        decoded = decode_nut(prefix, num_vertices=vertices)
        reference = reference_decode(prefix, vertices)
        assert nut_info(prefix).fps == fps
    np.testing.assert_array_equal(decoded, reference)
    # one step, plus float32 rounding of the stored bounds and of the float32 decode
    ulp = np.spacing(np.float32(abs(offset) + scale + padding), dtype=np.float32)
    assert np.all(np.abs(decoded - sequence) <= quantisation_step(sequence, padding) + 4 * ulp)


def test_axis_maximum_never_wraps_without_padding(tmp_path: Path) -> None:
    vertices = np.zeros((1, 3, 3))
    vertices[0, :, :] = [[0.0], [0.5], [1.0]]  # x == max at the last vertex
    images = nut_frames.axis_to_images(vertices[:, :, 0], padding=0.0)
    assert images.reshape(-1)[4:7].tolist() == [0, 32768, 65535]
    encode_nut(vertices, tmp_path / "s", padding=0.0)
    decoded = decode_nut(tmp_path / "s", num_vertices=3)
    assert abs(decoded[0, 2, 0] - 1.0) <= 1 / 65536


def test_constant_axis_without_padding(tmp_path: Path) -> None:
    vertices = np.full((2, 4, 3), 0.25)
    encode_nut(vertices, tmp_path / "s", padding=0.0)
    np.testing.assert_array_equal(decode_nut(tmp_path / "s", num_vertices=4), vertices)


# ---- vertex count ------------------------------------------------------------------------


def test_vertex_count_default_needs_bfm_side(tmp_path: Path) -> None:
    encode_nut(random_sequence(vertices=100), tmp_path / "s")  # 11x11 frames
    with pytest.raises(InputError, match="pass the vertex count"):
        decode_nut(tmp_path / "s")


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (200, "200 vertices need 15x15 frames, found 11x11"),  # more than the image holds
        (40, "40 vertices need 7x7 frames, found 11x11"),
        (97, "frame 0 holds non-zero values after 97 vertices"),  # same side, too few
        (0, "expected >= 1"),
        (True, "expected an integer"),
    ],
)
def test_wrong_vertex_count(tmp_path: Path, count: int, message: str) -> None:
    encode_nut(random_sequence(vertices=100), tmp_path / "s")
    with pytest.raises(InputError, match=message) as info:
        decode_nut(tmp_path / "s", num_vertices=count)
    assert "\n" not in str(info.value)


# ---- corrupt and inconsistent files ------------------------------------------------------


@pytest.fixture()
def written(tmp_path: Path) -> Path:
    prefix = tmp_path / "s"
    encode_nut(random_sequence(frames=8, vertices=2000), prefix)
    return prefix


def test_missing_axis_file_is_named(written: Path) -> None:
    os.remove(f"{written}_1.nut")
    with pytest.raises(InputError, match=r"missing axis file\(s\) .*s_1\.nut$"):
        decode_nut(written, num_vertices=2000)


def test_missing_prefix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope_0.nut, .*nope_1.nut, .*nope_2.nut"):
        decode_nut(tmp_path / "nope")


def test_axis_files_with_different_frame_counts(written: Path, tmp_path: Path) -> None:
    encode_nut(random_sequence(frames=5, vertices=2000), tmp_path / "short")
    shutil.copy(f"{tmp_path / 'short'}_2.nut", f"{written}_2.nut")
    with pytest.raises(InputError, match=r"different frame counts \(x 8, y 8, z 5"):
        decode_nut(written, num_vertices=2000)
    with pytest.raises(InputError, match="axis files disagree"):
        nut_info(written)


def test_file_cut_in_half(written: Path) -> None:
    path = Path(f"{written}_0.nut")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"s_0\.nut: truncated"):
        decode_nut(written, num_vertices=2000)


@pytest.mark.parametrize("with_signature", [False, True])
def test_garbage_bytes(written: Path, with_signature: bool) -> None:
    path = Path(f"{written}_2.nut")
    garbage = np.random.default_rng(1).bytes(5000)
    path.write_bytes((b"nut/multimedia container\0" if with_signature else b"") + garbage)
    with pytest.raises(InputError, match=r"s_2\.nut: (not a NUT file|truncated|cannot open)"):
        decode_nut(written, num_vertices=2000)


def test_corrupt_payload_fails_the_slice_crc(written: Path) -> None:
    path = Path(f"{written}_1.nut")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = np.random.default_rng(2).bytes(64)  # index at the end intact
    path.write_bytes(bytes(data))
    level = av.logging.get_level()
    with pytest.raises(InputError, match=r"s_1\.nut: corrupt at frame \d+ \(slice CRC mismatch"):
        decode_nut(written, num_vertices=2000)
    assert av.logging.get_level() == level  # the log level is restored


def test_corrupt_payload_of_an_official_file_breaks_the_layout(
    sample_prefix: Path, tmp_path: Path
) -> None:
    # the official files carry no checksum: the frame layout checks catch this corruption
    for axis in range(3):
        shutil.copy(f"{sample_prefix}_{axis}.nut", tmp_path / f"s_{axis}.nut")
    path = tmp_path / "s_0.nut"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = np.random.default_rng(3).bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"s_0\.nut: frame \d+ (is corrupt|holds non-zero)"):
        decode_nut(tmp_path / "s")


# ---- encoder input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vertices", "message"),
    [
        (np.zeros((4, 3)), r"expected shape \(T, V, 3\).*found \(4, 3\)"),
        (np.zeros((2, 4, 2)), r"found \(2, 4, 2\)"),
        (np.zeros((0, 4, 3)), r"found \(0, 4, 3\)"),
        (np.array([[["a", "b", "c"]]]), "expected real numbers"),
        (np.full((1, 1, 3), 1e39), "must fit float32"),
    ],
)
def test_encode_rejects_bad_arrays(tmp_path: Path, vertices: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        encode_nut(vertices, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_rejects_non_finite(tmp_path: Path, bad: float) -> None:
    vertices = random_sequence()
    vertices[2, 7, 1] = bad
    with pytest.raises(InputError, match="at frame 2, vertex 7, axis y"):
        encode_nut(vertices, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("fps", "padding"), [(0, 0.05), (-30, 0.05), (30, -0.1), (30, np.nan)])
def test_encode_rejects_bad_options(tmp_path: Path, fps: float, padding: float) -> None:
    with pytest.raises(InputError, match="fps|padding"):
        encode_nut(random_sequence(), tmp_path / "s", fps=fps, padding=padding)


def test_encode_writes_all_three_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "s"
    old = encode_nut(random_sequence(frames=3), prefix)
    before = [p.read_bytes() for p in old]
    real_write, calls = nut._write_axis_images, []

    def fail_on_second_axis(*args: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(*args)

    monkeypatch.setattr(nut, "_write_axis_images", fail_on_second_axis)
    with pytest.raises(OSError, match="disk full"):
        encode_nut(random_sequence(frames=5), prefix)
    assert [p.read_bytes() for p in old] == before  # the old triple is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in old]  # no temps

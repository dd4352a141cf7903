import numpy as np
import pytest
import trimesh

from mmface4d.errors import InputError
from mmface4d.export.meshes import read_animation_npz, write_animation_npz, write_mesh_sequence


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    vertices = rng.normal(0, 0.05, (4, 30, 3)).astype(np.float32)
    first = np.concatenate([np.arange(30), rng.integers(0, 30, 10)])  # every vertex used
    faces = (first[:, None] + np.arange(3)[None, :]) % 30
    return vertices, faces


def test_npz_round_trip(tmp_path, clip):
    vertices, faces = clip
    metadata = {"model": "synth", "subject": "s01", "nested": {"a": [1, 2]}}
    path = write_animation_npz(
        tmp_path / "clip.npz",
        vertices.astype(np.float64),
        faces.astype(np.int32),
        30.0,
        16000,
        metadata,
    )
    read = read_animation_npz(path)
    np.testing.assert_array_equal(read.vertices, vertices)
    assert read.vertices.dtype == np.float32 and read.faces.dtype == np.int64
    np.testing.assert_array_equal(read.faces, faces)
    assert (read.fps, read.sample_rate, read.metadata) == (30.0, 16000, metadata)
    assert read.num_frames == 4
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickle needed
        assert sorted(data.files) == ["faces", "fps", "metadata", "sample_rate", "vertices"]


def test_npz_exact_path_without_suffix(tmp_path, clip):
    path = write_animation_npz(tmp_path / "clip.bin", *clip, fps=25, sample_rate=16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.bin"]
    assert read_animation_npz(path).metadata == {}


def test_npz_rejects_bad_input(tmp_path, clip):
    vertices, faces = clip
    bad = vertices.copy()
    bad[1, 2, 0] = np.inf
    with pytest.raises(InputError, match="finite"):
        write_animation_npz(tmp_path / "a.npz", bad, faces, 30, 16000)
    with pytest.raises(InputError, match=r"\(T, V, 3\)"):
        write_animation_npz(tmp_path / "a.npz", vertices[0], faces, 30, 16000)
    with pytest.raises(InputError, match="faces index"):
        write_animation_npz(tmp_path / "a.npz", vertices, faces + 30, 30, 16000)
    with pytest.raises(InputError, match="JSON"):
        write_animation_npz(tmp_path / "a.npz", vertices, faces, 30, 16000, {"x": object()})
    assert not (tmp_path / "a.npz").exists()
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="other.npz"):
        read_animation_npz(tmp_path / "other.npz")


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_mesh_sequence_reads_back_with_trimesh(tmp_path, clip, fmt):
    vertices, faces = clip
    paths = write_mesh_sequence(tmp_path / "seq", vertices, faces, fmt=fmt, progress=False)
    assert [p.name for p in paths] == [f"frame_{t:05d}.{fmt}" for t in range(4)]
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == [p.name for p in paths]
    for t, path in enumerate(paths):
        mesh = trimesh.load(path, process=False, maintain_order=True)
        np.testing.assert_array_equal(np.asarray(mesh.faces), faces)
        np.testing.assert_array_equal(np.asarray(mesh.vertices, dtype=np.float32), vertices[t])


def test_ply_is_binary_little_endian(tmp_path, clip):
    vertices, faces = clip
    (path,) = write_mesh_sequence(tmp_path, vertices[:1], faces, stem="shot", progress=False)
    data = path.read_bytes()
    assert path.name == "shot_00000.ply"
    assert data.startswith(b"ply\nformat binary_little_endian 1.0\n")
    body = len(data) - data.index(b"end_header\n") - len(b"end_header\n")
    assert body == 30 * 12 + 40 * 13
    # overwrite an existing sequence in place
    (again,) = write_mesh_sequence(tmp_path, vertices[1:2], faces, stem="shot", progress=False)
    read = trimesh.load(again, process=False)
    np.testing.assert_array_equal(np.asarray(read.vertices, np.float32), vertices[1])


def test_mesh_sequence_rejects_bad_input(tmp_path, clip):
    vertices, faces = clip
    with pytest.raises(InputError, match="fmt"):
        write_mesh_sequence(tmp_path, vertices, faces, fmt="stl", progress=False)
    with pytest.raises(InputError, match="stem"):
        write_mesh_sequence(tmp_path, vertices, faces, stem="a/b", progress=False)
    nan = vertices.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        write_mesh_sequence(tmp_path, nan, faces, progress=False)
    assert list(tmp_path.iterdir()) == []

import numpy as np
import pytest

from mmface4d.data.sequence import (
    MeshSequence,
    load_faces,
    load_sequence,
    read_sequence_npz,
    save_sequence,
)
from mmface4d.errors import InputError


def small(T: int = 4) -> MeshSequence:
    rng = np.random.default_rng(0)
    return MeshSequence(rng.normal(size=(T, 5, 3)), np.array([[0, 1, 2], [2, 3, 4]]), 30.0)


def test_npz_round_trip(tmp_path):
    seq = small()
    save_sequence(seq, tmp_path / "s.npz", sample_rate=np.int64(16000))
    back = load_sequence(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.vertices, seq.vertices.astype(np.float32))
    np.testing.assert_array_equal(back.faces, seq.faces)
    assert back.fps == 30.0 and back.frame == "model" and back.duration_s == pytest.approx(4 / 30)
    assert load_sequence(tmp_path / "s.npz", fps=25).fps == 25


def test_animation_fields_round_trip_and_optional_keys_stay_out(tmp_path):
    seq = small()
    animation = MeshSequence(
        seq.vertices,
        seq.faces,
        30.0,
        audio=np.zeros(16_000),
        sample_rate=16_000,
        template=seq.vertices[0],
        metadata={"model": "tiny"},
    )
    path = save_sequence(animation, tmp_path / "clip.bin")  # written at exactly that name
    with np.load(path) as data:
        assert sorted(data.files) == ["faces", "fps", "metadata", "sample_rate", "vertices"]
    back = read_sequence_npz(path)
    assert (back.sample_rate, back.metadata, back.frame) == (16_000, {"model": "tiny"}, "model")
    assert back.audio is None and back.template is None  # speech and template are not stored
    camera = save_sequence(
        MeshSequence(seq.vertices, seq.faces, 30.0, frame="camera"), tmp_path / "camera.npz"
    )
    with np.load(camera) as data:
        assert sorted(data.files) == ["faces", "fps", "frame", "vertices"]
    assert load_sequence(camera).frame == "camera"


def test_points_without_triangles_are_a_sequence():
    seq = MeshSequence(np.zeros((2, 4, 3)), np.zeros((0, 3), np.int64), 30.0)
    assert seq.faces.shape == (0, 3) and seq.num_vertices == 4


def test_camera_frame_flip():
    seq = MeshSequence(np.ones((1, 3, 3)), np.array([[0, 1, 2]]), 30.0, frame="camera")
    np.testing.assert_array_equal(seq.in_model_frame()[0, 0], [1, -1, -1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vertices": np.zeros((0, 5, 3))}, "T >= 1"),
        ({"vertices": np.full((2, 5, 3), np.nan)}, "NaN"),
        ({"faces": np.array([[0, 1, 9]])}, "faces index"),
        ({"fps": 0.0}, "fps"),
        ({"frame": "world"}, "frame"),
        ({"template": np.zeros((4, 3))}, r"template must be \(5, 3\)"),
        ({"audio": np.zeros(10)}, "sample_rate"),
        ({"sample_rate": 16000.5}, "sample_rate"),
    ],
)
def test_validation(kwargs, message):
    base = {"vertices": np.zeros((2, 5, 3)), "faces": np.array([[0, 1, 2]]), "fps": 30.0}
    with pytest.raises(InputError, match=message):
        MeshSequence(**{**base, **kwargs})


def test_real_sample_nut_with_bfm_faces(shared_data):
    tri = load_faces(shared_data / "bfm_aux" / "facemodel_info.mat")
    assert tri.shape == (70789, 3) and tri.min() == 0 and tri.max() == 35708
    seq = load_sequence(
        shared_data / "mmface4d_sample" / "reconstruct_filt",
        faces=shared_data / "bfm_aux" / "facemodel_info.mat",
    )
    assert seq.vertices.shape == (67, 35709, 3) and seq.fps == 30 and seq.frame == "camera"
    assert 0.6 < seq.vertices[..., 2].mean() < 0.8  # metres in front of the camera


def test_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_sequence(tmp_path / "none.npz")
    with pytest.raises(InputError, match="faces"):
        load_sequence(tmp_path / "prefix")
    np.savez(tmp_path / "bad.npz", vertices=np.zeros((1, 3, 3)))
    with pytest.raises(InputError, match="missing"):
        load_sequence(tmp_path / "bad.npz")

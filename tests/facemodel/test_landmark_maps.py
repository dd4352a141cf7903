import json

import numpy as np
import pytest
import scipy.io

from mmface4d.capture.layout import read_landmarks
from mmface4d.data.nut import decode_nut
from mmface4d.errors import InputError
from mmface4d.facemodel import FaceModel, load_face_model
from mmface4d.facemodel.landmark_maps import (
    HRNET98_OF_IBUG68,
    IBUG68_PARTS,
    MEDIAPIPE468_OF_IBUG68,
    LandmarkMap,
    landmark_vertices,
    read_landmark_mapping,
    to_ibug68,
)
from mmface4d.render.camera import PinholeCamera

SAMPLE = "mmface4d_sample"
INNER = np.arange(17, 68)  # brows, nose, eyes, mouth (no face contour)


@pytest.fixture(scope="module")
def synth() -> FaceModel:
    return load_face_model("synth")


@pytest.fixture(scope="module")
def real_mesh(shared_data):
    """Frame 0 of the real reconstruction (BFM front, camera 1 space) and its 68 keypoints."""
    vertices = decode_nut(shared_data / SAMPLE / "reconstruct_filt")[0]
    info = scipy.io.loadmat(shared_data / "bfm_aux" / "facemodel_info.mat")
    keypoints = info["keypoints"].ravel().astype(np.int64) - 1
    faces = info["tri"].astype(np.int64) - 1
    return vertices, faces, keypoints


@pytest.fixture(scope="module")
def bfm_front(real_mesh) -> FaceModel:
    """A stand-in model of the BFM-front topology (the licensed BFM is not in shared data)."""
    vertices, faces, keypoints = real_mesh
    v = len(vertices)
    zeros = np.zeros((1, v, 3), dtype=np.float32)
    return FaceModel(
        name="bfm",
        mean=vertices,
        faces=faces,
        identity_basis=zeros,
        expression_basis=zeros,
        expression_names=["e0"],
        albedo_mean=np.full((v, 3), 0.5, dtype=np.float32),
        albedo_basis=zeros,
        landmarks=keypoints,
        regions={"face": np.arange(v)},
    )


# ---------------------------------------------------------------------- tables
def test_table_sizes_and_ranges():
    for table, size in ((HRNET98_OF_IBUG68, 98), (MEDIAPIPE468_OF_IBUG68, 468)):
        assert table.shape == (68,) and table.dtype == np.int64
        assert table.min() >= 0 and table.max() < size
        assert len(np.unique(table)) == 68
    rows = np.concatenate(list(IBUG68_PARTS.values()))
    np.testing.assert_array_equal(np.sort(rows), np.arange(68))
    # WFLW layout facts: every other jaw point, both mouths whole, the pupils unused
    np.testing.assert_array_equal(HRNET98_OF_IBUG68[:17], np.arange(0, 33, 2))
    np.testing.assert_array_equal(HRNET98_OF_IBUG68[48:], np.arange(76, 96))
    assert 96 not in HRNET98_OF_IBUG68 and 97 not in HRNET98_OF_IBUG68
    # MediaPipe: outer eye corners 33 / 263, nose tip 4, inner-lip centres 13 / 14
    assert MEDIAPIPE468_OF_IBUG68[[36, 45, 30, 62, 66]].tolist() == [33, 263, 4, 13, 14]


def test_to_ibug68_shapes():
    points = np.random.default_rng(0).normal(size=(2, 98, 3))
    out = to_ibug68(points, "hrnet98")
    assert out.shape == (2, 68, 3)
    np.testing.assert_array_equal(out[1, 5], points[1, 10])
    refined = np.zeros((478, 2))
    assert to_ibug68(refined, "mediapipe468").shape == (68, 2)
    with pytest.raises(InputError, match="hrnet98"):
        to_ibug68(np.zeros((68, 2)), "hrnet98")
    with pytest.raises(InputError, match="scheme"):
        to_ibug68(points, "dlib5")


def test_synth_maps_every_scheme(synth):
    for scheme, size in (("ibug68", 68), ("hrnet98", 98), ("mediapipe468", 468)):
        lmap = landmark_vertices(synth, scheme)
        assert isinstance(lmap, LandmarkMap) and len(lmap) == 68 and lmap.scheme == scheme
        np.testing.assert_array_equal(lmap.vertex_index, synth.landmarks)
        assert lmap.vertex_index.max() < synth.num_vertices
        assert lmap.landmark_index.min() >= 0 and lmap.landmark_index.max() < size
        assert set(lmap.parts) == set(IBUG68_PARTS)
        detected = np.zeros((3, size, 2))
        assert lmap.select(detected).shape == (3, 68, 2)
        assert lmap.model_points(synth.mean).shape == (68, 3)
    with pytest.raises(InputError, match="scheme"):
        landmark_vertices(synth, "ibug5")
    with pytest.raises(InputError, match=r"468"):
        landmark_vertices(synth, "mediapipe468").select(np.zeros((68, 2)))


def test_synth_mapped_vertices_are_face_shaped(synth):
    """The 68 MediaPipe-equivalent vertices of the synth face sit where their parts belong."""
    lm = landmark_vertices(synth, "mediapipe468").model_points(synth.mean)
    right_eye = lm[IBUG68_PARTS["right_eye"]].mean(0)
    left_eye = lm[IBUG68_PARTS["left_eye"]].mean(0)
    mouth = lm[IBUG68_PARTS["outer_lip"]].mean(0)
    assert right_eye[0] < 0 < left_eye[0]  # x: subject's left
    assert mouth[1] < lm[30, 1] < min(right_eye[1], left_eye[1])  # y: up


# ---------------------------------------------------------------------- real data
def test_hrnet98_to_68_on_a_real_frame(shared_data, real_mesh):
    """The 98 -> 68 table applied to the dataset's camera-1 landmarks lands on the projected
    BFM keypoints of the real reconstruction (the mesh is in camera 1's space)."""
    vertices, _, keypoints = real_mesh
    camera = PinholeCamera.from_mmface4d_json(shared_data / SAMPLE / "000337_1.json")
    lm98 = read_landmarks(shared_data / SAMPLE / "000337_1.pkl")[0]
    lm68 = to_ibug68(lm98, "hrnet98")
    # geometric sanity: mouth corners between the outer eye corners, eyes above the mouth
    assert lm68[36, 0] < lm68[48, 0] < lm68[54, 0] < lm68[45, 0]
    assert lm68[36:48, 1].max() < lm68[48:68, 1].min()
    projected = camera.project(vertices[keypoints]).numpy()
    interocular = np.linalg.norm(lm68[36] - lm68[45])
    error = np.linalg.norm(projected - lm68, axis=1)
    assert error[INNER].mean() < 0.05 * interocular  # measured ~0.03
    naive = np.linalg.norm(projected - lm98[:68], axis=1)  # control: a wrong table
    assert naive[INNER].mean() > 4 * error[INNER].mean()


def test_mapping_file_on_bfm_front(shared_data, bfm_front):
    path = shared_data / SAMPLE / "landmark_mapping2.json"
    lmap = landmark_vertices(bfm_front, "mediapipe468", mapping_file=path)
    assert len(lmap) == 67 and lmap.source == str(path)
    assert lmap.landmark_index.max() < 468 and lmap.vertex_index.max() < bfm_front.num_vertices
    assert set(lmap.parts) == set(json.loads(path.read_text()))
    assert len(lmap.parts["boundary"]) == 19 and len(lmap.parts["inner_lip"]) == 8
    # The 68-point construction agrees with the dataset's own mapping on the real mesh
    # wherever both name the same MediaPipe point (eyes, nose, mouth, brows).
    own = dict(zip(lmap.landmark_index.tolist(), lmap.vertex_index.tolist(), strict=True))
    ours = landmark_vertices(bfm_front, "mediapipe468")
    shared = [
        (own[m], v)
        for row, (m, v) in enumerate(zip(ours.landmark_index, ours.vertex_index, strict=True))
        if row >= 17 and int(m) in own
    ]
    assert len(shared) >= 20
    a, b = np.array(shared).T
    distance_mm = 1000 * np.linalg.norm(bfm_front.mean[a] - bfm_front.mean[b], axis=1)
    assert distance_mm.max() < 6.0  # measured at most ~4.7 mm


def test_mapping_file_errors(shared_data, synth, tmp_path):
    with pytest.raises(InputError, match="another topology"):
        landmark_vertices(synth, "mediapipe468", shared_data / SAMPLE / "landmark_mapping2.json")
    with pytest.raises(InputError, match="not found"):
        read_landmark_mapping(tmp_path / "missing.json")
    cases = {
        "not json": "{",
        "not an object": "[1, 2]",
        "pairs": '{"lip": [[1, 2, 3]]}',
        "range": '{"lip": [[500, 2]]}',
        "twice": '{"lip": [[1, 2]], "eye": [[1, 3]]}',
        "negative": '{"lip": [[1, -2]]}',
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(InputError, match=str(path).replace(".", r"\.")):
            read_landmark_mapping(path)

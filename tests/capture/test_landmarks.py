import os
import pickle

import numpy as np
import pytest
from PIL import Image

from mmface4d.capture.landmarks import (
    DetectedLandmarks,
    LandmarkDetector,
    detect_landmarks,
    read_mediapipe_triangles,
    stack_detections,
)
from mmface4d.errors import InputError
from mmface4d.facemodel.landmark_maps import IBUG68_PARTS

SAMPLE = "mmface4d_sample"


@pytest.fixture(scope="module")
def mediapipe():
    return pytest.importorskip(
        "mediapipe",
        reason="mediapipe not importable (pip install 'mmface4d[mediapipe]')",
        exc_type=ImportError,
    )


@pytest.fixture(scope="module")
def detector(mediapipe):
    with LandmarkDetector("image") as det:
        yield det


def load_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def check_face_layout(lm68: np.ndarray) -> None:
    """Eyes above the nose tip above the mouth; subject's right eye on the image's left."""
    right_eye = lm68[IBUG68_PARTS["right_eye"]].mean(0)
    left_eye = lm68[IBUG68_PARTS["left_eye"]].mean(0)
    mouth = lm68[IBUG68_PARTS["outer_lip"]].mean(0)
    nose_tip = lm68[30]
    assert right_eye[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1]
    assert lm68[48, 0] < lm68[54, 0]  # mouth corners
    assert lm68[36, 0] < lm68[39, 0] < lm68[42, 0] < lm68[45, 0]  # eye corners in a row


# ---------------------------------------------------------------------- detection
def test_detects_real_photos(shared_data, detector):
    paths = sorted((shared_data / "face_images").glob("*.jpg"))
    assert len(paths) == 17
    found = 0
    for path in paths:
        image = load_rgb(path)
        det = detector.detect(image)
        if det is None:
            continue
        found += 1
        height, width = image.shape[:2]
        assert isinstance(det, DetectedLandmarks) and det.image_size == (height, width)
        assert det.points.shape == (468, 3) and det.points.dtype == np.float32
        lm68 = det.ibug68()
        assert lm68.shape == (68, 2)
        assert (lm68 >= -0.5).all() and (lm68[:, 0] <= width - 0.5).all()
        assert (lm68[:, 1] <= height - 0.5).all()
        check_face_layout(lm68)
    # all 17 with mediapipe 0.10.14; leave room for another detector version
    assert found >= 15


def test_detect_landmarks_function_and_no_face(shared_data, mediapipe):
    image = load_rgb(shared_data / "face_images" / "000002.jpg")
    det = detect_landmarks(image)
    assert det is not None and det.xy.shape == (468, 2)
    assert detect_landmarks(np.full((96, 128, 3), 40, dtype=np.uint8)) is None


def test_video_mode_records_failures(shared_data, mediapipe):
    image = load_rgb(shared_data / "face_images" / "000006.jpg")
    frames = np.stack([image, np.zeros_like(image), image, image])
    with LandmarkDetector("video") as det:
        results = det.detect_frames(frames)
    assert [r is not None for r in results] == [True, False, True, True]
    points, found = stack_detections(results)
    assert points.shape == (4, 468, 3) and found.tolist() == [True, False, True, True]
    assert np.isnan(points[1]).all() and np.isfinite(points[found]).all()
    # tracking the same still image stays about put (a few pixels of jitter at most)
    assert np.linalg.norm(points[3, :, :2] - points[2, :, :2], axis=1).mean() < 2.0


def test_synth_render_is_detected(mediapipe):
    from mmface4d.facemodel import load_face_model
    from mmface4d.render.camera import frame_mesh
    from mmface4d.render.shade import render_preview

    model = load_face_model("synth")
    image = render_preview(model.mean, model.faces, colors=model.albedo_mean, width=512, height=512)
    det = detect_landmarks(image)
    assert det is not None
    projected = frame_mesh(model.mean, width=512, height=512).project(model.mean[model.landmarks])
    projected = projected.numpy()
    error = np.linalg.norm(det.ibug68() - projected, axis=1)
    interocular = np.linalg.norm(projected[36] - projected[45])
    # eyes ~0.02, nose ~0.03, mouth ~0.04 of the inter-ocular distance (contour and brows differ
    # by design: MediaPipe's are mesh points, the synth's sit elsewhere)
    for part in ("right_eye", "left_eye", "nose_bottom", "outer_lip", "inner_lip"):
        assert error[IBUG68_PARTS[part]].mean() < 0.07 * interocular, part


def test_image_validation():
    with pytest.raises(InputError, match="uint8"):
        detect_landmarks(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        detect_landmarks(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(InputError, match="numpy array"):
        detect_landmarks([[0, 0, 0]])
    with pytest.raises(InputError, match="mode"):
        LandmarkDetector("stream")
    with pytest.raises(InputError, match="min_detection_confidence"):
        LandmarkDetector(min_detection_confidence=1.5)


def test_closed_detector_refuses(mediapipe):
    det = LandmarkDetector()
    det.close()
    det.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        det.detect(np.zeros((32, 32, 3), dtype=np.uint8))


def test_stack_detections_empty():
    points, found = stack_detections([])
    assert points.shape == (0, 468, 3) and found.shape == (0,)


# ---------------------------------------------------------------------- dataset files
def test_read_real_mediapipe_triangles(shared_data):
    faces = read_mediapipe_triangles(shared_data / SAMPLE / "faces.pkl")
    assert faces.shape == (854, 3) and faces.dtype == np.int64
    assert faces.min() == 0 and faces.max() == 467


class _Malicious:
    def __reduce__(self):
        return (os.getcwd, ())


def test_read_mediapipe_triangles_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_mediapipe_triangles(tmp_path / "missing.pkl")
    code = tmp_path / "code.pkl"
    code.write_bytes(pickle.dumps(_Malicious()))
    with pytest.raises(InputError, match="refusing"):
        read_mediapipe_triangles(code)
    bad_faces = tmp_path / "faces.pkl"
    bad_faces.write_bytes(pickle.dumps([(0, 1, 500)]))
    with pytest.raises(InputError, match="0..467"):
        read_mediapipe_triangles(bad_faces)

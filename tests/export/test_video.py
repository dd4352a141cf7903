import numpy as np
import pytest

from mmface4d.audio.io import write_wav
from mmface4d.data.sequence import MeshSequence, save_sequence
from mmface4d.errors import InputError
from mmface4d.export.video import video

FPS = 10


def _tetrahedron_sequence(tmp_path, frames: int = 6, frame: str = "model"):
    base = np.array([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0], [0, 0, 0.05]], np.float32)
    wobble = 0.005 * np.sin(np.arange(frames))[:, None, None]
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int64)
    sequence = MeshSequence(base[None] + wobble, faces, FPS, frame=frame)
    return save_sequence(sequence, tmp_path / "seq.npz")


def test_a_sequence_file_and_its_speech_become_a_verified_video(tmp_path):
    seconds = 6 / FPS
    speech = write_wav(tmp_path / "speech.wav", np.zeros(int(16000 * seconds), np.float32) + 0.1)
    path = _tetrahedron_sequence(tmp_path)
    info = video(path, tmp_path / "out.mp4", audio=speech, size=(32, 32), progress=False)
    assert info.frames == 6 and info.fps == pytest.approx(FPS)
    assert info.audio_duration_s == pytest.approx(seconds, abs=1 / FPS + 0.025)


def test_a_camera_frame_sequence_renders_without_audio(tmp_path):
    path = _tetrahedron_sequence(tmp_path, frame="camera")
    info = video(path, tmp_path / "out.mp4", size=(32, 32), progress=False)
    assert info.frames == 6 and info.audio_duration_s is None


def test_user_mistakes_name_the_argument(tmp_path):
    path = _tetrahedron_sequence(tmp_path)
    with pytest.raises(InputError, match="--size 31x32"):
        video(path, tmp_path / "out.mp4", size=(31, 32), progress=False)
    long = write_wav(tmp_path / "long.wav", np.full(16000 * 3, 0.1, np.float32))
    with pytest.raises(InputError, match="check --fps"):
        video(path, tmp_path / "out.mp4", audio=long, size=(32, 32), progress=False)
    assert not (tmp_path / "out.mp4").exists()

import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.render.video import encode_video, probe_video

FPS = 30


def frames(count: int, size: int = 64):
    for i in range(count):
        yield np.full((size, size, 3), (i * 7) % 256, np.uint8)


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_frames_and_audio_verified(tmp_path):
    info = encode_video(frames(45), tmp_path / "a.mp4", FPS, 45, tone(1.5), 16000)
    assert info.frames == 45 and info.width == 64
    assert info.audio_duration_s == pytest.approx(1.5, abs=1 / FPS)
    again = probe_video(tmp_path / "a.mp4")
    assert again.frames == 45 and again.audio_duration_s is not None


def test_frames_change_over_time(tmp_path):
    import av

    encode_video(frames(10), tmp_path / "b.mp4", FPS, 10)
    with av.open(str(tmp_path / "b.mp4")) as c:
        means = [f.to_ndarray(format="rgb24").mean() for f in c.decode(video=0)]
    assert means[0] < 10 and means[-1] > 50  # the content really is the frames we gave
    assert probe_video(tmp_path / "b.mp4").audio_duration_s is None


def test_interrupted_write_leaves_nothing(tmp_path):
    def broken():
        yield from frames(5)
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        encode_video(broken(), tmp_path / "c.mp4", FPS, 10, tone(0.4), 16000)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="expected 10 frames"):
        encode_video(frames(5), tmp_path / "d.mp4", FPS, 10)
    with pytest.raises(InputError, match="even"):
        encode_video(frames(3, size=63), tmp_path / "d.mp4", FPS, 3)
    with pytest.raises(InputError, match=".mp4"):
        encode_video(frames(3), tmp_path / "d.avi", FPS, 3)
    assert not (tmp_path / "d.mp4").exists()

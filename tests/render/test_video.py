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


def test_rendered_ahead_keeps_the_order_and_raises_where_asked():
    import threading

    from mmface4d.render.video import rendered_ahead

    threads = set()

    def render(batch: int) -> np.ndarray:
        threads.add(threading.current_thread().name)
        if batch == 5:
            raise RuntimeError("render 5 failed")
        return np.full((2, 4, 4, 3), batch, np.uint8)

    got = [int(frame[0, 0, 0]) for frame in rendered_ahead(range(5), render, ahead=2)]
    assert got == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert all(name.startswith("mmface4d-render") for name in threads)
    frames = rendered_ahead(range(7), render, ahead=1)
    with pytest.raises(RuntimeError, match="render 5 failed"):
        for _ in frames:
            pass


def test_render_video_writes_the_preview_frames(tmp_path):
    import av
    import torch

    from mmface4d.render import frame_mesh, render_preview
    from mmface4d.render.video import render_video

    from .conftest import icosphere

    verts, faces = icosphere(2, radius=0.1)
    moving = np.stack([verts * (1 + 0.05 * k) for k in range(11)]).astype(np.float32)
    info = render_video(moving, faces, FPS, tmp_path / "s.mp4", tone(11 / FPS), size=(48, 32),
                        progress=False, batch=3)  # fmt: skip
    assert info.frames == 11 and info.audio_duration_s == pytest.approx(11 / FPS, abs=0.06)
    camera = frame_mesh(torch.as_tensor(moving).mean(0), width=48, height=32)
    expected = render_preview(moving, faces, camera=camera, supersample=1,
                              colors=np.tile((0.78, 0.62, 0.54), (len(verts), 1)))  # fmt: skip
    with av.open(str(tmp_path / "s.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    # H.264 at CRF 18 in yuv420p: close to the rendered frames, in order
    error = np.abs(decoded.astype(int) - expected.astype(int)).mean(axis=(1, 2, 3))
    assert error.max() < 6
    assert error[5] < np.abs(decoded[5].astype(int) - expected[0].astype(int)).mean()

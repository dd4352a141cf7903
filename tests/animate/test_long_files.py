"""Long files: animate_to_files streams the speech into every format, giving the files of
write_animation(animate(...)) without holding the animation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mmface4d.animate.api import animate, animate_to_files, load_animator
from mmface4d.animate.outputs import write_animation, write_animation_frames
from mmface4d.errors import InputError
from mmface4d.export import read_animation_npz, read_arkit_csv, read_glb_animation
from mmface4d.export.meshes import AnimationNpzWriter
from mmface4d.render.video import probe_video

RATE = 16_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    from mmface4d.synth.speech import EspeakEngine

    said = EspeakEngine(sample_rate=RATE).synthesize("Bob made maple bread.", "en").audio
    return np.asarray(said, np.float32)


def test_streamed_files_equal_the_in_memory_ones(speech: np.ndarray, tmp_path: Path) -> None:
    kwargs = dict(sample_rate=RATE)
    result = animate(speech, **kwargs)
    expected = write_animation(result, tmp_path / "a", ("npz", "csv", "glb"), progress=False)
    written = animate_to_files(
        speech, tmp_path / "b", ("npz", "csv", "glb", "mp4"), size=64, **kwargs
    )
    assert set(written) == {"npz", "csv", "glb", "wav", "mp4"}
    a, b = read_animation_npz(expected["npz"]), read_animation_npz(written["npz"])
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert a.fps == b.fps and a.sample_rate == b.sample_rate
    for key in ("liveliness", "lip_closure", "style", "model"):
        assert a.metadata[key] == b.metadata[key]
    assert expected["csv"].read_text() == written["csv"].read_text()
    glb_a, glb_b = read_glb_animation(expected["glb"]), read_glb_animation(written["glb"])
    np.testing.assert_array_equal(glb_a.weights, glb_b.weights)
    assert expected["wav"].read_bytes() == written["wav"].read_bytes()
    assert probe_video(written["mp4"]).frames == len(a.vertices)
    weights, _, _ = read_arkit_csv(written["csv"])
    assert weights.shape == (len(a.vertices), 52)
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]


def test_the_writers_memory_does_not_grow_with_the_length(tmp_path: Path) -> None:
    fm = load_animator().face_model

    def peak_writing(T: int) -> float:
        rng = np.random.default_rng(0)

        def frames():
            for _ in range(0, T, 100):
                motion = rng.standard_normal((100, 1, 1)).astype(np.float32) * 1e-3
                yield fm.mean[None] + motion * fm.expression_basis[:1]

        tracemalloc.start()
        written = write_animation_frames(
            frames(),
            tmp_path / str(T),
            ("npz", "csv", "glb"),
            name="long",
            num_frames=T,
            fps=30.0,
            faces=fm.faces,
            template=fm.mean,
            face_model=fm,
            metadata={"note": "test"},
            progress=False,
        )
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        saved = read_animation_npz(written["npz"])
        assert saved.vertices.shape == (T, fm.num_vertices, 3)
        assert saved.metadata == {"note": "test"}
        assert read_glb_animation(written["glb"]).weights.shape == (T, 52)
        return peak / 2**20

    short, long = peak_writing(300), peak_writing(1500)  # 39 and 194 MB of vertices
    assert long < short + 5, (short, long)  # the glTF's weights: 0.2 kB a frame
    assert long < 80


def test_an_unfinished_npz_leaves_no_file(tmp_path: Path) -> None:
    writer = AnimationNpzWriter(tmp_path / "a.npz", 5, np.array([[0, 1, 2]]), 30.0, RATE)
    writer.write(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(InputError, match="3 frames of the 5"):
        writer.close()
    with pytest.raises(InputError, match="more than"):
        write_animation_frames(
            iter([np.zeros((4, 3, 3), np.float32)] * 2),
            tmp_path,
            ("npz",),
            name="b",
            num_frames=5,
            fps=30.0,
            faces=np.array([[0, 1, 2]]),
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []

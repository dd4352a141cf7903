"""Fabricated source folders for the store, importer, split and dataset tests (small V, few
frames): a FaceFormer layout and an MMFace4D layout written with the project's own codecs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmface4d.audio.io import write_wav
from mmface4d.audio.sync import frames_to_samples
from mmface4d.data.manifest import SequenceRecord
from mmface4d.data.nut import encode_nut

SMALL_V = 100


def motion(template: np.ndarray, frames: int, phase: float) -> np.ndarray:
    """(T, V, 3) float32: the template plus a smooth millimetre-scale motion."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    ramp = np.linspace(0.0, 1.0, template.shape[0])[None, :, None]
    wave = 0.004 * np.sin(0.3 * t + phase + 6.0 * ramp) * np.array([1.0, 0.5, 0.25])
    return (template[None] + wave).astype(np.float32)


def speech(frames: int, fps: float, seed: int, extra_samples: int = 0) -> np.ndarray:
    n = frames_to_samples(frames, fps, 16_000) + extra_samples
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


def make_faceformer(
    root: Path,
    subjects: tuple[str, ...] = ("SubjA", "SubjB", "SubjC"),
    sentences: int = 2,
    fps: float = 30.0,
) -> Path:
    """``root/wav``, ``root/vertices_npy`` (T x V*3), ``root/templates.pkl``; T = 40 + 7k."""
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    rng = np.random.default_rng(0)
    templates = {}
    for s, subject in enumerate(subjects):
        templates[subject] = (0.1 * rng.standard_normal((SMALL_V, 3))).astype(np.float32)
        for k in range(1, sentences + 1):
            frames = 40 + 7 * (s * sentences + k)
            name = f"{subject}_sentence{k:02d}"
            vertices = motion(templates[subject], frames, phase=s + 0.1 * k)
            np.save(root / "vertices_npy" / f"{name}.npy", vertices.reshape(frames, -1))
            write_wav(root / "wav" / f"{name}.wav", speech(frames, fps, seed=10 * s + k))
    with open(root / "templates.pkl", "wb") as file:
        pickle.dump(templates, file)
    return root


def make_mmface4d_recording(
    folder: Path, name: str, frames: int, seed: int, audio_frames: int | None = None
) -> np.ndarray:
    """``folder/<name>.wav`` + ``folder/<name>_{0,1,2}.nut``; returns the (T, V, 3) encoded."""
    folder.mkdir(parents=True, exist_ok=True)
    base = np.random.default_rng(seed).uniform(-0.1, 0.1, (SMALL_V, 3)) + [0, 0, 0.7]
    vertices = motion(base, frames, phase=seed)
    encode_nut(vertices, folder / name)
    write_wav(folder / f"{name}.wav", speech(audio_frames or frames, 30.0, seed))
    return vertices


@pytest.fixture
def faceformer_src(tmp_path: Path) -> Path:
    return make_faceformer(tmp_path / "faceformer")


@pytest.fixture
def mmface4d_recording():  # type: ignore[no-untyped-def]
    """The factory :func:`make_mmface4d_recording` (folder, name, frames, seed, audio_frames)."""
    return make_mmface4d_recording


@pytest.fixture
def faceformer_factory():  # type: ignore[no-untyped-def]
    """The factory :func:`make_faceformer` (root, subjects, sentences, fps)."""
    return make_faceformer


@pytest.fixture
def make_record():
    """Factory of manifest rows: ``make_record(subject, sentence, **fields)``."""

    def make(subject: str = "s", sentence: str | None = "a", **fields: object) -> SequenceRecord:
        row = {
            "sequence_id": f"{subject}_{sentence}",
            "subject": subject,
            "age": None,
            "gender": None,
            "emotion": None,
            "emotion_code": None,
            "sentence": sentence,
            "language": None,
            "duration_s": 1.0,
            "fps": 30.0,
            "num_frames": 30,
            "num_vertices": 5,
            "num_samples": 16_000,
            "sample_rate": 16_000,
            "layout": "faceformer",
            "source": "x",
            "quant_step_m": 1e-6,
            "trimmed_frames": 0,
            "trimmed_samples": 0,
            "checksum": "",
        }
        return SequenceRecord(**{**row, **fields})

    return make

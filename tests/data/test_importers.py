"""Importers: MMFace4D and FaceFormer layouts, metadata, and bad input naming the sequence."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmface4d.audio.io import load_audio
from mmface4d.data.importers import detect_layout, load_sequence, scan_sources
from mmface4d.errors import InputError

SMALL_V = 100  # conftest's fabricated vertex count


def test_faceformer_scan(faceformer_src: Path) -> None:
    assert detect_layout(faceformer_src) == "faceformer"
    scan = scan_sources(faceformer_src, fps=60, subsample=2)
    assert scan.layout == "faceformer" and len(scan.sources) == 6
    first = scan.sources[0]
    assert first.sequence_id == "SubjA_sentence01" and first.metadata["subject"] == "SubjA"
    assert first.metadata["sentence"] == "sentence01" and first.metadata["emotion"] is None
    assert first.fps == 30 and first.num_vertices == SMALL_V
    assert sorted(scan.templates) == ["SubjA", "SubjB", "SubjC"]
    loaded = load_sequence(first)
    raw = np.load(faceformer_src / "vertices_npy" / "SubjA_sentence01.npy")
    np.testing.assert_array_equal(loaded.vertices, raw.reshape(47, SMALL_V, 3)[::2])


def test_faceformer_needs_fps_and_templates(faceformer_src: Path) -> None:
    with pytest.raises(InputError, match="give fps"):
        scan_sources(faceformer_src)
    with open(faceformer_src / "templates.pkl", "wb") as file:
        pickle.dump({"SubjA": np.zeros((SMALL_V, 3))}, file)
    with pytest.raises(InputError, match="SubjB_sentence01.npy: subject 'SubjB' has no template"):
        scan_sources(faceformer_src, fps=30)


def test_faceformer_unpaired_files_are_reported(faceformer_src: Path) -> None:
    (faceformer_src / "vertices_npy" / "SubjC_sentence02.npy").unlink()
    scan = scan_sources(faceformer_src, fps=30)
    assert scan.unmatched == ["wav/SubjC_sentence02.wav"] and len(scan.sources) == 5


def test_faceformer_wrong_vertex_count_and_nan(faceformer_src: Path) -> None:
    np.save(faceformer_src / "vertices_npy" / "SubjA_sentence02.npy", np.zeros((54, 3 * 99)))
    bad = np.load(faceformer_src / "vertices_npy" / "SubjB_sentence01.npy")
    bad[7, 5] = np.nan
    np.save(faceformer_src / "vertices_npy" / "SubjB_sentence01.npy", bad)
    sources = {s.sequence_id: s for s in scan_sources(faceformer_src, fps=30).sources}
    with pytest.raises(InputError, match=r"SubjA_sentence02: .* shape \(54, 297\), expected"):
        load_sequence(sources["SubjA_sentence02"])
    with pytest.raises(InputError, match="SubjB_sentence01: non-finite vertex 1 .* at frame 7"):
        load_sequence(sources["SubjB_sentence01"])


def test_mmface4d_both_styles_and_emotion(tmp_path: Path, mmface4d_recording) -> None:
    src = tmp_path / "src"
    expected = mmface4d_recording(src / "actor1", "210001", 30, seed=1)
    # one recording per folder, official sample style: subject = parent of the folder
    folder = src / "actor2" / "take"
    mmface4d_recording(folder, "tmp", 25, seed=2)
    for axis in range(3):
        (folder / f"tmp_{axis}.nut").rename(folder / f"reconstruct_filt_{axis}.nut")
    (folder / "tmp.wav").rename(folder / "230002.wav")
    scan = scan_sources(src, num_vertices=SMALL_V)
    assert scan.layout == "mmface4d"
    ids = {s.sequence_id: s for s in scan.sources}
    assert sorted(ids) == ["actor1_210001", "actor2_230002"]
    assert ids["actor1_210001"].metadata["emotion"] == "happy"
    assert ids["actor2_230002"].metadata["emotion"] == "sad"
    assert ids["actor2_230002"].metadata["emotion_code"] == 23
    assert ids["actor2_230002"].source == "actor2/take/reconstruct_filt"
    loaded = load_sequence(ids["actor1_210001"])
    assert np.abs(loaded.vertices - expected).max() < 5e-6  # one .nut quantisation step
    assert loaded.audio.size == 16_000 and loaded.trimmed_frames == 0


def test_mmface4d_manifest_csv(tmp_path: Path, mmface4d_recording) -> None:
    src = tmp_path / "src"
    mmface4d_recording(src / "folder1", "000001", 20, seed=1)
    (src / "manifest.csv").write_text(
        "recording,subject,age,gender,emotion,language,extra\n"
        "folder1/000001,P017,31,female,Angry,zh,ignored\n"
    )
    (source,) = scan_sources(src, num_vertices=SMALL_V).sources
    assert source.sequence_id == "P017_000001"
    assert source.metadata == {
        "subject": "P017",
        "age": 31,
        "gender": "female",
        "emotion": "angry",
        "emotion_code": 22,
        "sentence": "000001",
        "language": "zh",
    }
    (src / "manifest.csv").write_text("recording,subject\n000001,P017\n")
    with pytest.raises(InputError, match=r"manifest.csv:2: recording '000001' matches no"):
        scan_sources(src, num_vertices=SMALL_V)


def test_real_sample_layout(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "S001" / "000337"
    folder.mkdir(parents=True)
    for name in ["000337.wav"] + [f"reconstruct_filt_{a}.nut" for a in range(3)]:
        (folder / name).symlink_to(shared_data / "mmface4d_sample" / name)
    (source,) = scan_sources(tmp_path).sources
    assert source.sequence_id == "S001_000337" and source.metadata["emotion"] == "neutral"
    loaded = load_sequence(source)
    assert loaded.vertices.shape == (67, 35_709, 3)
    np.testing.assert_array_equal(loaded.audio, load_audio(folder / "000337.wav"))


def test_mmface4d_bad_input_names_the_sequence(tmp_path: Path, mmface4d_recording) -> None:
    src = tmp_path / "src"
    mmface4d_recording(src / "a", "000001", 20, seed=1)
    mmface4d_recording(src / "b", "000002", 20, seed=2)
    mmface4d_recording(src / "c", "000003", 20, seed=3)
    mmface4d_recording(src / "d", "000004", 30, seed=4, audio_frames=20)
    first = (src / "a" / "000001_1.nut").read_bytes()
    (src / "a" / "000001_1.nut").write_bytes(first[: len(first) // 2])  # truncated
    mmface4d_recording(tmp_path / "other", "000002", 25, seed=5)
    for axis in (0, 1):  # axis files of different lengths
        (tmp_path / "other" / f"000002_{axis}.nut").replace(src / "b" / f"000002_{axis}.nut")
    sources = {s.sequence_id: s for s in scan_sources(src, num_vertices=SMALL_V).sources}
    with pytest.raises(InputError, match=r"a_000001: .*000001_1.nut: truncated"):
        load_sequence(sources["a_000001"])
    with pytest.raises(InputError, match=r"b_000002: .*different frame counts"):
        load_sequence(sources["b_000002"])
    with pytest.raises(InputError, match=r"c_000003: .*pass the vertex count"):
        load_sequence(scan_sources(src).sources[2])
    with pytest.raises(InputError, match=r"d_000004: audio .* shorter than the mesh .* by 10"):
        load_sequence(sources["d_000004"])
    assert load_sequence(sources["d_000004"], max_trim_frames=10).vertices.shape[0] == 20


def test_duplicate_ids(tmp_path: Path, mmface4d_recording) -> None:
    src = tmp_path / "src"
    mmface4d_recording(src / "S1", "000001", 20, seed=1)
    folder = src / "S1" / "again"
    mmface4d_recording(folder, "x", 20, seed=2)
    for axis in range(3):
        (folder / f"x_{axis}.nut").rename(folder / f"reconstruct_filt_{axis}.nut")
    (folder / "x.wav").rename(folder / "000001.wav")
    with pytest.raises(InputError, match="duplicate sequence id 'S1_000001'"):
        scan_sources(src, num_vertices=SMALL_V)


def test_no_recordings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no MMFace4D recordings found"):
        scan_sources(tmp_path)
    with pytest.raises(InputError, match="source folder not found"):
        scan_sources(tmp_path / "missing")

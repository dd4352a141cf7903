"""pack / info: FaceFormer fixture and the real sample round trip, resuming, templates."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmface4d.audio.io import load_audio
from mmface4d.data import packing as pack_module
from mmface4d.data.nut import decode_nut
from mmface4d.data.packing import info, pack
from mmface4d.data.store import Store
from mmface4d.errors import InputError

SMALL_V = 100  # conftest's fabricated vertex count
ATOL = 0.5e-6 + 1e-7  # half the 1 um step, plus float32 rounding near 1 m


def file_times(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_pack_faceformer_and_read_back(faceformer_src: Path, tmp_path: Path) -> None:
    result = pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    assert result.layout == "faceformer" and len(result.packed) == 6 and not result.skipped
    store = Store(tmp_path / "store")
    with open(faceformer_src / "templates.pkl", "rb") as file:
        templates = pickle.load(file)
    for sequence_id in store.sequence_ids:
        record = store.record(sequence_id)
        raw = np.load(faceformer_src / "vertices_npy" / f"{sequence_id}.npy")
        expected = raw.reshape(-1, SMALL_V, 3)
        assert record.num_frames == expected.shape[0] and record.trimmed_frames == 0
        np.testing.assert_allclose(store.read_vertices(sequence_id), expected, atol=ATOL, rtol=0)
        audio = load_audio(faceformer_src / "wav" / f"{sequence_id}.wav")
        np.testing.assert_array_equal(store.read_audio(sequence_id), audio)
    for subject, template in templates.items():
        np.testing.assert_array_equal(store.read_template(subject), template)
        assert store.template_info()[subject]["source"] == "templates.pkl"
    summary = info(tmp_path / "store")
    assert (summary.sequences, summary.subjects) == (6, 3)
    assert summary.frames == sum(40 + 7 * k for k in range(1, 7))
    assert summary.hours == pytest.approx(summary.frames / 30 / 3600)
    assert summary.bytes_on_disk > 0 and summary.unfinalised == 0 and summary.split is None
    assert store.verify().ok


def test_real_sample_pack_read_back(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "src" / "S001" / "000337"
    folder.mkdir(parents=True)
    for name in ["000337.wav"] + [f"reconstruct_filt_{a}.nut" for a in range(3)]:
        (folder / name).symlink_to(shared_data / "mmface4d_sample" / name)
    pack(tmp_path / "src", tmp_path / "store", progress=False)
    store = Store(tmp_path / "store")
    expected = decode_nut(shared_data / "mmface4d_sample" / "reconstruct_filt")
    window = store.read_window("S001_000337", 3, 64)
    assert window.shape == (64, 35_709, 3)
    assert np.abs(window - expected[3:67]).max() <= ATOL
    np.testing.assert_array_equal(
        store.read_audio("S001_000337"), load_audio(folder / "000337.wav")
    )
    np.testing.assert_allclose(
        store.read_template("S001"), expected.mean(axis=0, dtype=np.float64), atol=1e-6
    )
    size = info(store).bytes_on_disk
    nut_size = sum(
        (shared_data / "mmface4d_sample" / f"reconstruct_filt_{a}.nut").stat().st_size
        for a in range(3)
    )
    assert size < 1.5 * nut_size


def test_interrupted_pack_resumes_without_rewriting(
    faceformer_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_load = pack_module.load_sequence

    def interrupt_second(source, max_trim_frames):  # type: ignore[no-untyped-def]
        calls.append(source.sequence_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_load(source, max_trim_frames)

    monkeypatch.setattr(pack_module, "load_sequence", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    store = Store(tmp_path / "store")
    assert list(store.finished_records()) == ["SubjA_sentence01"]
    with pytest.raises(InputError, match="no manifest.parquet"):
        _ = store.records
    first = file_times(tmp_path / "store" / "sequences" / "SubjA_sentence01")
    first |= file_times(tmp_path / "store" / "records")
    monkeypatch.setattr(pack_module, "load_sequence", real_load)
    result = pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    assert result.skipped == ["SubjA_sentence01"] and len(result.packed) == 5
    after = file_times(tmp_path / "store")
    assert all(after[path] == time for path, time in first.items())
    assert len(Store(tmp_path / "store").sequence_ids) == 6
    assert Store(tmp_path / "store").verify().ok


def test_half_written_sequence_is_invisible_then_rewritten(
    faceformer_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = Store.put_file

    def crash_on_second_record(self, key, data):  # type: ignore[no-untyped-def]
        if key == "records/SubjA_sentence02.json":
            raise OSError("disk full")
        real_put(self, key, data)

    monkeypatch.setattr(Store, "put_file", crash_on_second_record)
    with pytest.raises(OSError, match="disk full"):
        pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    monkeypatch.setattr(Store, "put_file", real_put)
    store = Store(tmp_path / "store")
    assert (tmp_path / "store" / "sequences" / "SubjA_sentence02" / "vertices").is_dir()
    assert "SubjA_sentence02" not in store.finished_records()
    pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    store = Store(tmp_path / "store")
    assert len(store.sequence_ids) == 6 and store.verify().ok and not store.verify().incomplete


def test_bad_sequence_does_not_stop_the_others(faceformer_src: Path, tmp_path: Path) -> None:
    bad = faceformer_src / "vertices_npy" / "SubjB_sentence02.npy"
    good = bad.read_bytes()
    bad.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"1 of 6 sequences failed.*SubjB_sentence02: unreadable"):
        pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    assert len(Store(tmp_path / "store").sequence_ids) == 5  # the manifest lists the others
    bad.write_bytes(good)
    result = pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    assert result.packed == ["SubjB_sentence02"] and len(result.skipped) == 5


def test_workers_give_the_same_store(faceformer_src: Path, tmp_path: Path) -> None:
    pack(faceformer_src, tmp_path / "one", fps=30, progress=False)
    pack(faceformer_src, tmp_path / "two", fps=30, workers=2, progress=False)
    one, two = Store(tmp_path / "one").records, Store(tmp_path / "two").records
    assert {k: r.checksum for k, r in one.items()} == {k: r.checksum for k, r in two.items()}


def test_mmface4d_template_is_the_mean_of_all_frames(tmp_path: Path, mmface4d_recording) -> None:
    a = mmface4d_recording(tmp_path / "src" / "P1", "000001", 20, seed=1)
    b = mmface4d_recording(tmp_path / "src" / "P1", "000002", 35, seed=2)
    pack(tmp_path / "src", tmp_path / "store", num_vertices=SMALL_V, progress=False)
    store = Store(tmp_path / "store")
    expected = np.concatenate([a, b]).mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(store.read_template("P1"), expected, atol=6e-6)
    assert store.template_info()["P1"]["source"] == "mean of 55 frames of 2 sequences"


def test_a_neutral_templates_file_beside_the_recordings_wins(tmp_path: Path, mmface4d_recording):
    mmface4d_recording(tmp_path / "src" / "P1", "000001", 20, seed=1)
    neutral = np.random.default_rng(9).uniform(-0.1, 0.1, (SMALL_V, 3)).astype(np.float32)
    np.savez(tmp_path / "src" / "templates.npz", P1=neutral)  # what `synth corpus` writes
    pack(tmp_path / "src", tmp_path / "store", num_vertices=SMALL_V, progress=False)
    store = Store(tmp_path / "store")
    np.testing.assert_array_equal(store.read_template("P1"), neutral)
    assert store.template_info()["P1"]["source"] == "templates.npz"
    (tmp_path / "src" / "templates.npz").write_bytes(b"broken")
    with pytest.raises(InputError, match="templates.npz: not a readable templates file"):
        pack(tmp_path / "src", tmp_path / "other", num_vertices=SMALL_V, progress=False)


def test_same_id_from_another_source_is_refused(tmp_path: Path, mmface4d_recording) -> None:
    mmface4d_recording(tmp_path / "src" / "P1", "000001", 20, seed=1)
    pack(tmp_path / "src", tmp_path / "store", num_vertices=SMALL_V, progress=False)
    folder = tmp_path / "src2" / "P1" / "take"
    mmface4d_recording(folder, "x", 20, seed=2)
    for axis in range(3):
        (folder / f"x_{axis}.nut").rename(folder / f"reconstruct_filt_{axis}.nut")
    (folder / "x.wav").rename(folder / "000001.wav")
    with pytest.raises(InputError, match="duplicate sequence id 'P1_000001': already packed from"):
        pack(tmp_path / "src2", tmp_path / "store", num_vertices=SMALL_V, progress=False)


def test_memory_store_and_argument_errors(faceformer_src: Path) -> None:
    result = pack(faceformer_src, "memory://pack-test", fps=30, progress=False)
    assert len(Store("memory://pack-test").sequence_ids) == 6 and result.frames_packed > 0
    with pytest.raises(InputError, match="memory:// store lives in one process"):
        pack(faceformer_src, "memory://pack-test-2", fps=30, workers=2, progress=False)
    with pytest.raises(InputError, match="workers"):
        pack(faceformer_src, "memory://pack-test-3", fps=30, workers=0, progress=False)


# ---------------------------------------------------------------------- the batch (mmface4d.batch)
def _pack_argv(src: Path, store: Path, *extra: str) -> list[str]:
    return ["data", "pack", str(src), "-o", str(store), "--fps", "30", *extra]


def test_cli_lists_a_failed_sequence_and_a_rerun_resumes(
    faceformer_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmface4d import cli

    bad = faceformer_src / "vertices_npy" / "SubjB_sentence02.npy"
    good = bad.read_bytes()
    bad.write_bytes(b"\x93NUMPY garbage")
    store = tmp_path / "store"
    capsys.readouterr()
    assert cli.main(_pack_argv(faceformer_src, store)) == 1  # the failure report, not a crash
    stdout = capsys.readouterr().out
    assert stdout.startswith("5 done, 0 skipped, 1 failed")
    assert "\n  SubjB_sentence02: InputError: " in stdout
    batch = json.loads((store / "manifest.json").read_text())  # beside manifest.parquet
    assert batch["desc"] == "data pack" and batch["jobs"]["SubjB_sentence02"]["status"] == "failed"
    assert len(Store(store).sequence_ids) == 5
    first = file_times(store / "sequences" / "SubjA_sentence01")
    bad.write_bytes(good)
    assert cli.main(_pack_argv(faceformer_src, store)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["packed"] == ["SubjB_sentence02"] and len(result["skipped"]) == 5
    assert file_times(store / "sequences" / "SubjA_sentence01") == first
    assert Store(store).verify().ok


@pytest.mark.slow  # starting Ray takes ~14 s on a busy core
def test_ray_executor_packs_the_same_store(
    faceformer_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray", exc_type=ImportError)
    from mmface4d import cli

    argv = _pack_argv(faceformer_src, tmp_path / "ray", "--executor", "ray", "--workers", "2")
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert len(json.loads(capsys.readouterr().out)["packed"]) == 6
    pack(faceformer_src, tmp_path / "local", fps=30, progress=False)
    mine, theirs = Store(tmp_path / "ray").records, Store(tmp_path / "local").records
    assert {k: r.checksum for k, r in mine.items()} == {k: r.checksum for k, r in theirs.items()}
    with pytest.raises(InputError, match="memory:// store lives in one process"):
        pack(faceformer_src, "memory://pack-ray", fps=30, executor="ray", progress=False)

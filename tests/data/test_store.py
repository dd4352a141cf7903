"""The packed store: encoding error, window reads, fsspec URLs, pickling, corruption."""

from __future__ import annotations

import pickle
from pathlib import Path

import fsspec
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore, WrapperStore

from mmface4d.audio.sync import frame_to_sample, frames_to_samples
from mmface4d.data.manifest import manifest_bytes, read_manifest_bytes
from mmface4d.data.store import Store
from mmface4d.errors import InputError

V = 50


def metadata(subject: str = "S1") -> dict:
    return dict(
        subject=subject,
        age=30,
        gender="female",
        emotion="happy",
        emotion_code=21,
        sentence="210001",
        language="zh",
        layout="mmface4d",
        source="x",
        trimmed_frames=0,
        trimmed_samples=0,
    )


def sequence(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.1, 0.1, (V, 3)) + [0.0, 0.0, 0.7]
    t = np.arange(frames)[:, None, None]
    vertices = (base + 0.01 * np.sin(0.2 * t + rng.uniform(0, 6, (1, V, 3)))).astype(np.float32)
    audio = rng.standard_normal(frames_to_samples(frames, 30, 16_000)).astype(np.float32)
    return vertices, audio


def write(store: Store, sequence_id: str, frames: int, seed: int = 0) -> tuple:
    vertices, audio = sequence(frames, seed)
    record = store.write_sequence(
        sequence_id, vertices, audio, fps=30, sample_rate=16_000, metadata=metadata()
    )
    return vertices, audio, record


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store(tmp_path / "store")
    st.initialise()
    return st


def test_write_read_round_trip(store: Store) -> None:
    vertices, audio, record = write(store, "S1_a", 37)
    store.write_manifest([record])
    assert store.sequence_ids == ["S1_a"] and store.subjects == ["S1"]
    assert store.record("S1_a") == record and record.num_samples == audio.size
    np.testing.assert_allclose(store.read_vertices("S1_a"), vertices, atol=6e-7, rtol=0)
    np.testing.assert_allclose(store.read_window("S1_a", 20, 17), vertices[20:], atol=6e-7)
    np.testing.assert_array_equal(store.read_audio("S1_a"), audio)
    start, count = frame_to_sample(5, 30, 16_000), frames_to_samples(8, 30, 16_000)
    np.testing.assert_array_equal(
        store.read_audio_window("S1_a", 5, 8), audio[start : start + count]
    )
    assert store.verify().ok


def test_audio_window_at_the_end_keeps_its_length(store: Store) -> None:
    _, audio, record = write(store, "S1_a", 37)
    store.write_manifest([record])
    for start in range(37):
        for length in (1, 37 - start):
            window = store.read_audio_window("S1_a", start, length)
            assert window.shape == (frames_to_samples(length, 30, 16_000),)
    # the last window shifts back by at most one sample to fit
    last = store.read_audio_window("S1_a", 1, 36)
    np.testing.assert_array_equal(last, audio[-last.size :])


class CountingStore(WrapperStore):
    """Counts the bytes the Zarr reader fetches."""

    fetched = 0

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        result = await self._store.get(key, prototype, byte_range)
        if result is not None and not key.endswith("zarr.json"):
            CountingStore.fetched += len(result)
        return result


def test_window_reads_only_its_chunks(store: Store) -> None:
    _, _, record = write(store, "S1_a", 160)  # 10 chunks of 16 frames
    store.write_manifest([record])
    reader = Store(store.url)
    reader._zarr = CountingStore(LocalStore(reader.path("")))
    reader.read_reference("S1_a")
    CountingStore.fetched = 0
    reader.read_window("S1_a", 32, 16)  # exactly one chunk
    one_chunk = CountingStore.fetched
    CountingStore.fetched = 0
    reader.read_vertices("S1_a")
    assert 0 < one_chunk < CountingStore.fetched / 5


def test_bad_windows_and_ids(store: Store) -> None:
    _, _, record = write(store, "S1_a", 20)
    store.write_manifest([record])
    for start, length in ((-1, 5), (0, 0), (16, 5), (0, 21)):
        with pytest.raises(InputError, match=r"S1_a: window .* does not fit 0..20"):
            store.read_window("S1_a", start, length)
    with pytest.raises(InputError, match="no sequence 'nope'"):
        store.read_window("nope", 0, 1)
    with pytest.raises(InputError, match="not a valid name"):
        write(store, "../evil", 5)
    with pytest.raises(InputError, match="must hold"):
        store.write_sequence(
            "S1_b",
            *sequence(5)[:1],
            np.zeros(7, np.float32),
            fps=30,
            sample_rate=16_000,
            metadata=metadata(),
        )


def test_unpacked_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no manifest.parquet"):
        _ = Store(tmp_path).records
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("hello")
    with pytest.raises(InputError, match="not an mmface4d store"):
        Store(tmp_path / "other").initialise()
    zarr.open_group(str(tmp_path / "zarr"), mode="w")
    with pytest.raises(InputError, match="not an mmface4d store"):
        Store(tmp_path / "zarr").initialise()


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_fsspec_urls(tmp_path: Path, scheme: str) -> None:
    url = f"memory://store-test-{id(tmp_path)}" if scheme == "memory" else tmp_path.as_uri()
    st = Store(url)
    st.initialise()
    vertices, _, record = write(st, "S1_a", 30)
    st.write_manifest([record])
    st.write_templates({"S1": (vertices[0], "first frame")})
    reader = pickle.loads(pickle.dumps(st))
    assert reader.url == url and reader._zarr is None
    np.testing.assert_allclose(reader.read_window("S1_a", 3, 20), vertices[3:23], atol=6e-7)
    np.testing.assert_array_equal(reader.read_template("S1"), vertices[0])
    assert reader.verify().ok
    if scheme == "memory":
        assert fsspec.filesystem("memory").exists(f"/store-test-{id(tmp_path)}/manifest.parquet")
        assert not reader.is_local
    else:
        assert (tmp_path / "manifest.parquet").is_file() and reader.is_local


def test_pickled_store_holds_no_handles(store: Store) -> None:
    _, _, record = write(store, "S1_a", 20)
    store.write_manifest([record])
    store.read_window("S1_a", 0, 4)
    assert store._arrays and store._zarr is not None
    state = pickle.loads(pickle.dumps(store)).__dict__
    assert state["_arrays"] == {} and state["_zarr"] is None and state["_records"] is None


def test_verify_detects_flipped_bytes(store: Store) -> None:
    _, _, first = write(store, "S1_a", 40, seed=1)
    _, _, second = write(store, "S1_b", 40, seed=2)
    store.write_manifest([first, second])
    shard = Path(store.path("sequences/S1_b/vertices/c/0/0/0"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = Store(store.url).verify()
    assert not report.ok and list(report.corrupt) == ["S1_b"]
    assert "unreadable" in report.corrupt["S1_b"]
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        Store(store.url).read_vertices("S1_b")


def test_verify_detects_valid_but_changed_data(store: Store) -> None:
    _, _, record = write(store, "S1_a", 40)
    store.write_manifest([record])
    array = zarr.open_array(LocalStore(store.path("")), path="sequences/S1_a/audio", mode="r+")
    array[100] = 0.5
    report = Store(store.url).verify()
    assert report.corrupt == {"S1_a": "checksum mismatch (stored data changed)"}


def test_verify_reports_interrupted_sequences(store: Store) -> None:
    _, _, record = write(store, "S1_a", 20)
    store.write_manifest([record])
    zarr.open_group(store.zarr_store, path="sequences/S1_half", mode="w")
    assert store.verify().incomplete == ["S1_half"]


def test_manifest_round_trip_keeps_nulls(make_record) -> None:
    row = make_record("s", None, sequence_id="a", checksum="0" * 64)
    assert read_manifest_bytes(manifest_bytes([row]), "m") == [row]
    with pytest.raises(InputError, match="unreadable manifest"):
        read_manifest_bytes(b"not parquet", "m")

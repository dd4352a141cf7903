"""The PyTorch dataset over a store, in a DataLoader with worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmface4d.audio.sync import frame_to_sample, frames_to_samples
from mmface4d.data.dataset import FaceSequenceDataset
from mmface4d.data.packing import pack
from mmface4d.data.splits import split
from mmface4d.data.store import Store
from mmface4d.errors import InputError

SMALL_V = 100


@pytest.fixture
def store(faceformer_src: Path, tmp_path: Path) -> Store:
    pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    st = Store(tmp_path / "store")
    split(st, seed=0, test_fraction=0.34)
    return Store(tmp_path / "store")


def test_items_are_aligned(store: Store) -> None:
    dataset = FaceSequenceDataset(store, split=None, window=24, seed=1)
    assert len(dataset) == 6 and dataset.excluded == []
    for index in range(len(dataset)):
        item = dataset[index]
        sid, start = item["sequence_id"], item["start_frame"]
        assert item["vertices"].shape == (24, SMALL_V, 3)
        assert item["audio"].shape == (frames_to_samples(24, 30, 16_000),)
        full_audio = store.read_audio(sid)
        first = frame_to_sample(start, 30, 16_000)
        np.testing.assert_array_equal(
            item["audio"].numpy(), full_audio[first : first + item["audio"].shape[0]]
        )
        np.testing.assert_array_equal(
            item["vertices"].numpy(), store.read_vertices(sid)[start : start + 24]
        )
        np.testing.assert_array_equal(
            item["template"].numpy(), store.read_template(item["subject"])
        )
        style = item["style_sequence_id"]
        assert style != sid and store.record(style).subject == item["subject"]
        s0 = item["style_start_frame"]
        np.testing.assert_array_equal(
            item["style_vertices"].numpy(), store.read_vertices(style)[s0 : s0 + 24]
        )


def test_windows_are_reproducible_and_change_per_epoch(store: Store) -> None:
    a, b = FaceSequenceDataset(store, None, 24, seed=5), FaceSequenceDataset(store, None, 24, 5)
    starts = [a[i]["start_frame"] for i in range(6)]
    assert starts == [b[i]["start_frame"] for i in range(6)]
    b.set_epoch(1)
    assert starts != [b[i]["start_frame"] for i in range(6)]


def test_single_sequence_subject_uses_another_window(store: Store) -> None:
    test = FaceSequenceDataset(store, split="test", window=10, seed=0)
    train = FaceSequenceDataset(store, split="train", window=10, seed=0)
    assert {r.subject for r in test.records}.isdisjoint({r.subject for r in train.records})
    dataset = FaceSequenceDataset(store, split="test", window=10)
    dataset.records = dataset.records[:1]  # one sequence left for its subject
    dataset._by_subject = {dataset.records[0].subject: [0]}
    for epoch in range(5):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert item["style_sequence_id"] == item["sequence_id"]
        assert item["style_start_frame"] != item["start_frame"]


def test_dataloader_with_two_workers(store: Store) -> None:
    dataset = FaceSequenceDataset(store.url, split="train", window=32, seed=0)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["sequence_id"]) for b in batches) == len(dataset) == 4
    batch = batches[0]
    assert (
        batch["vertices"].shape == (2, 32, SMALL_V, 3) and batch["vertices"].dtype == torch.float32
    )
    assert batch["audio"].shape == (2, frames_to_samples(32, 30, 16_000))
    assert batch["template"].shape == (2, SMALL_V, 3)
    assert batch["style_vertices"].shape == (2, 32, SMALL_V, 3)
    direct = dataset[0]
    torch.testing.assert_close(batch["vertices"][0], direct["vertices"])


def test_whole_sequences_and_bad_arguments(store: Store, tmp_path: Path) -> None:
    whole = FaceSequenceDataset(store, split=None, window=None)
    item = whole[0]
    record = store.record(item["sequence_id"])
    assert item["vertices"].shape[0] == record.num_frames
    assert item["audio"].shape == (record.num_samples,)
    long = FaceSequenceDataset(store, split=None, window=62)
    assert len(long) == 3 and len(long.excluded) == 3  # 47, 54, 61, 68, 75, 82 frames
    with pytest.raises(InputError, match="window"):
        FaceSequenceDataset(store, window=0)
    with pytest.raises(InputError, match="split"):
        FaceSequenceDataset(store, split="dev")
    with pytest.raises(InputError, match="at least 500 frames"):
        FaceSequenceDataset(store, split=None, window=500)
    with pytest.raises(IndexError):
        whole[6]


def test_speed_augmentation_keeps_speech_and_motion_in_sync(store: Store) -> None:
    from mmface4d.audio.augment import AugmentConfig, change_speed
    from mmface4d.audio.sync import resample_to_frames

    # speed only (every item sped up or slowed down), no waveform augmentation
    only_speed = AugmentConfig(
        speed=(1.2, 1.2),
        speed_probability=1.0,
        pitch_probability=0.0,
        noise_probability=0.0,
        reverb_probability=0.0,
        level_probability=0.0,
    )
    plain = FaceSequenceDataset(store, None, 24, seed=3)
    fast = FaceSequenceDataset(store, None, 24, seed=3, augment=only_speed)
    for index in range(len(fast)):
        item, reference = fast[index], plain[index]
        assert item["vertices"].shape == (24, SMALL_V, 3)
        assert item["audio"].shape == (frames_to_samples(24, 30, 16_000),)
        sid, start = item["sequence_id"], item["start_frame"]
        assert start <= reference["start_frame"]  # moved back only when 29 frames do not fit
        source = store.read_vertices(sid)[start : start + 29]  # round(24 * 1.2) frames
        expected = resample_to_frames(source.reshape(29, -1), 36.0, 30.0, 24)
        np.testing.assert_allclose(item["vertices"].numpy().reshape(24, -1), expected, atol=1e-6)
        audio = store.read_audio_window(sid, start, 29)
        sped = change_speed(audio, 1.2)[: item["audio"].shape[0]]
        np.testing.assert_allclose(item["audio"].numpy()[: len(sped)], sped, atol=1e-6)
        torch.testing.assert_close(item["style_vertices"], reference["style_vertices"])


def test_waveform_augmentation_changes_only_the_audio(store: Store) -> None:
    from mmface4d.audio.augment import AugmentConfig

    noisy = AugmentConfig(speed_probability=0.0, noise_probability=1.0)
    plain = FaceSequenceDataset(store, None, 24, seed=3)
    augmented = FaceSequenceDataset(store, None, 24, seed=3, augment=noisy)
    again = FaceSequenceDataset(store, None, 24, seed=3, augment=noisy)
    a, b, c = plain[0], augmented[0], again[0]
    torch.testing.assert_close(a["vertices"], b["vertices"])
    assert a["start_frame"] == b["start_frame"]
    assert not torch.equal(a["audio"], b["audio"])
    torch.testing.assert_close(b["audio"], c["audio"])  # reproducible
    with pytest.raises(InputError, match="augment"):
        FaceSequenceDataset(store, None, None, augment=noisy)

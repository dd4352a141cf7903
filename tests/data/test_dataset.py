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

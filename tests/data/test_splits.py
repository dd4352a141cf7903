"""Identity splits: deterministic, disjoint by subject, paper proportion, FaceFormer presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmface4d.data.packing import info, pack
from mmface4d.data.split_protocols import BIWI_SUBJECTS, VOCASET_SUBJECTS
from mmface4d.data.splits import (
    load_splits,
    preset_assignment,
    split,
    split_subjects,
)
from mmface4d.data.store import Store
from mmface4d.errors import InputError


def test_paper_proportion_and_determinism() -> None:
    subjects = [f"actor{i:03d}" for i in range(431)]
    first = split_subjects(subjects, seed=7)
    assert sum(v == "test" for v in first.values()) == 31
    assert sum(v == "train" for v in first.values()) == 400
    assert split_subjects(list(reversed(subjects)), seed=7) == first  # order does not matter
    assert split_subjects(subjects, seed=8) != first


def test_validation_and_small_sets() -> None:
    assignment = split_subjects(["a", "b", "c", "d", "e"], seed=0, val_fraction=0.2)
    assert sorted(assignment.values()) == ["test", "train", "train", "train", "val"]
    with pytest.raises(InputError, match="2 subjects cannot give 1 test and 1 val"):
        split_subjects(["a", "b"], val_fraction=0.1)
    with pytest.raises(InputError, match="test_fraction"):
        split_subjects(["a", "b"], test_fraction=1.0)


def test_split_is_saved_and_disjoint_by_identity(faceformer_src: Path, tmp_path: Path) -> None:
    pack(faceformer_src, tmp_path / "store", fps=30, progress=False)
    store = Store(tmp_path / "store")
    result = split(store, seed=3, test_fraction=0.34)
    assert load_splits(Store(tmp_path / "store")) == result
    for subject, names in result.subjects.items():
        assert len(names) == 1, subject  # no subject in two splits
    for sequence_id, name in result.sequences.items():
        assert name in result.subjects[store.record(sequence_id).subject]
    assert len(result.ids("test")) == 2 and len(result.ids("train")) == 4
    assert split(store, seed=3, test_fraction=0.34) == result
    counts = info(store).splits
    assert counts["test"] == {"sequences": 2, "subjects": 1, "frames": counts["test"]["frames"]}
    assert counts["train"]["subjects"] == 2
    saved = json.loads((tmp_path / "store" / "splits.json").read_text())
    assert saved["name"] == "random" and saved["seed"] == 3


def test_vocaset_preset_follows_faceformer(make_record) -> None:
    rows = [
        make_record(s, f"sentence{k:02d}")
        for names in VOCASET_SUBJECTS.values()
        for s in names
        for k in (1, 20, 21, 40)
    ] + [make_record("Someone_else", "sentence01")]
    assignment = preset_assignment(rows, "vocaset")
    assert assignment["FaceTalk_170728_03272_TA_sentence01"] == "train"
    assert assignment["FaceTalk_170728_03272_TA_sentence40"] == "train"
    assert assignment["FaceTalk_170811_03275_TA_sentence20"] == "unused"  # val uses 21-40
    assert assignment["FaceTalk_170811_03275_TA_sentence21"] == "val"
    assert assignment["FaceTalk_170731_00024_TA_sentence40"] == "test"
    assert assignment["Someone_else_sentence01"] == "unused"


def test_biwi_preset_follows_faceformer(make_record) -> None:
    rows = [
        make_record(s, f"e{k:02d}") for s in ("F1", "F2", "M6") for k in (1, 32, 33, 36, 37, 40)
    ]
    assignment = preset_assignment(rows, "biwi")
    assert [assignment[f"F2_e{k:02d}"] for k in (1, 32, 33, 36, 37, 40)] == [
        "train",
        "train",
        "val",
        "val",
        "unused",
        "unused",
    ]
    assert [assignment[f"F1_e{k:02d}"] for k in (1, 36, 37, 40)] == [
        "unused",
        "unused",
        "test",
        "test",
    ]
    assert set(BIWI_SUBJECTS["train"]).isdisjoint(BIWI_SUBJECTS["test"])
    with pytest.raises(InputError, match="none of its subjects"):
        preset_assignment([make_record("X", "e01")], "biwi")
    with pytest.raises(InputError, match="no sentence number"):
        preset_assignment([make_record("F1", "intro")], "biwi")

"""Train/val/test splits by identity, stored in the store as ``splits.json``.

- ``random`` (default): subjects are shuffled with ``numpy.random.default_rng(seed)`` and the
  first ``round(n * test_fraction)`` become test, the next ``round(n * val_fraction)`` val, the
  rest train (at least one subject per requested split). The default test fraction is the
  paper's 31 of 431 actors. The same seed and the same subject set give the same split; adding
  subjects reshuffles. No subject is in two splits.
- ``vocaset`` / ``biwi``: FaceFormer's fixed protocols, subject lists AND sentence ranges as in
  its code (EvelynFan/FaceFormer, ``main.py`` and ``data_loader.py`` for VOCASET,
  ``biwi/main.py`` and ``biwi/data_loader.py`` for BIWI). VOCASET: 8 train subjects with
  sentences 1-40, 2 val and 2 test subjects with sentences 21-40. BIWI: subjects F2 F3 F4 M3 M4
  M5 give train (sentences 1-32) AND val (33-36), subjects F1 F5 F6 F7 F8 M1 M2 M6 give test
  (37-40): FaceFormer's BIWI validation is NOT identity-disjoint from training. Sequences outside
  these ranges, and subjects not listed, are ``unused``. The sentence number is the trailing
  digits of the manifest's ``sentence`` (``sentence01`` -> 1, ``e01`` -> 1).

The protocols' tables and the paper's fraction live in :mod:`mmface4d.data.split_protocols`.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from mmface4d.data.split_protocols import PAPER_TEST_FRACTION, PRESETS
from mmface4d.data.store import Store
from mmface4d.errors import InputError

SPLIT_NAMES = ("train", "val", "test")
UNUSED = "unused"


@dataclass(frozen=True)
class Splits:
    """A split of a store's sequences.

    Attributes:
        name: ``random``, ``vocaset`` or ``biwi``.
        seed: the shuffling seed (random splits).
        test_fraction, val_fraction: requested fractions of subjects (random splits).
        sequences: sequence id -> ``train``, ``val``, ``test`` or ``unused``.
        subjects: subject -> the splits its sequences are in (one, except for BIWI's preset).
    """

    name: str
    seed: int | None
    test_fraction: float | None
    val_fraction: float | None
    sequences: dict[str, str]
    subjects: dict[str, list[str]]

    def ids(self, split: str) -> list[str]:
        """Sequence ids of one split, sorted."""
        return sorted(s for s, name in self.sequences.items() if name == split)


def split_subjects(
    subjects: list[str],
    seed: int = 0,
    test_fraction: float = PAPER_TEST_FRACTION,
    val_fraction: float = 0.0,
) -> dict[str, str]:
    """Assign each subject to ``train``, ``val`` or ``test``, deterministically from ``seed``.

    Returns:
        subject -> split name.
    """
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
            raise InputError(f"{name}: expected a number in [0, 1), found {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"seed: expected an integer, found {seed!r}")
    names = sorted(set(subjects))
    count = len(names)

    def size(fraction: float) -> int:
        return max(1, round(count * fraction)) if fraction > 0 else 0

    n_test, n_val = size(test_fraction), size(val_fraction)
    if n_test + n_val >= count:
        raise InputError(
            f"{count} subjects cannot give {n_test} test and {n_val} val subjects and keep at "
            f"least one for training (test_fraction {test_fraction:.4f}, val_fraction "
            f"{val_fraction:.4f})"
        )
    order = np.random.default_rng(int(seed)).permutation(count)
    assignment = {}
    for rank, index in enumerate(order):
        assignment[names[index]] = (
            "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        )
    return assignment


def _sentence_number(sentence: str | None, sequence_id: str) -> int:
    match = re.search(r"(\d+)$", sentence or sequence_id)
    if match is None:
        raise InputError(
            f"{sequence_id}: no sentence number in {sentence!r} (the preset needs a trailing "
            "number, e.g. sentence01 or e01)"
        )
    return int(match.group(1))


def preset_assignment(records: list, preset: str) -> dict[str, str]:
    """FaceFormer's VOCASET or BIWI protocol over a store's records (see the module doc).

    Args:
        records: :class:`~mmface4d.data.manifest.SequenceRecord` rows.
        preset: ``vocaset`` or ``biwi``.

    Returns:
        sequence id -> split name or ``unused``.
    """
    if preset not in PRESETS:
        raise InputError(f"preset: expected one of {', '.join(PRESETS)}, found {preset!r}")
    subjects, sentences = PRESETS[preset]
    listed = {s for names in subjects.values() for s in names}
    if not listed & {r.subject for r in records}:
        raise InputError(
            f"preset {preset}: none of its subjects ({', '.join(sorted(listed)[:3])}, ...) is in "
            "the store"
        )
    assignment = {}
    for record in records:
        assignment[record.sequence_id] = UNUSED
        if record.subject not in listed:
            continue
        number = _sentence_number(record.sentence, record.sequence_id)
        for name in SPLIT_NAMES:
            if record.subject in subjects[name] and number in sentences[name]:
                assignment[record.sequence_id] = name
                break
    return assignment


def split(
    store: str | os.PathLike[str] | Store,
    *,
    seed: int = 0,
    test_fraction: float = PAPER_TEST_FRACTION,
    val_fraction: float = 0.0,
    preset: str | None = None,
    storage_options: dict | None = None,
) -> Splits:
    """Split a store's sequences by identity (or a FaceFormer preset) and save ``splits.json``.

    Args:
        store: the store or its URL.
        seed: shuffling seed for the random split.
        test_fraction: fraction of subjects for test (default 31/431, the paper's).
        val_fraction: fraction of subjects for validation (default none).
        preset: ``vocaset`` or ``biwi`` for FaceFormer's fixed splits instead.
        storage_options: fsspec options when ``store`` is a URL.

    Returns:
        The splits written.
    """
    st = store if isinstance(store, Store) else Store(store, storage_options)
    records = list(st.records.values())
    if preset is not None:
        sequences = preset_assignment(records, preset)
        result_name, seed_used, fractions = preset, None, (None, None)
    else:
        by_subject = split_subjects([r.subject for r in records], seed, test_fraction, val_fraction)
        sequences = {r.sequence_id: by_subject[r.subject] for r in records}
        result_name, seed_used, fractions = "random", int(seed), (test_fraction, val_fraction)
    subject_splits: dict[str, set[str]] = defaultdict(set)
    for record in records:
        subject_splits[record.subject].add(sequences[record.sequence_id])
    result = Splits(
        name=result_name,
        seed=seed_used,
        test_fraction=fractions[0],
        val_fraction=fractions[1],
        sequences=dict(sorted(sequences.items())),
        subjects={s: sorted(names) for s, names in sorted(subject_splits.items())},
    )
    st.put_file("splits.json", json.dumps(asdict(result), indent=1).encode())
    return result


def load_splits(store: Store) -> Splits | None:
    """The store's ``splits.json``, or None when it has not been split."""
    data = store.get_file("splits.json")
    if data is None:
        return None
    try:
        return Splits(**json.loads(data))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{store.url}/splits.json: not a splits file ({exc})") from exc

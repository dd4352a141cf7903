"""A PyTorch ``Dataset`` over a packed store: aligned speech and mesh windows for training.

One item per sequence and epoch. With a window of L frames, item ``i`` draws its start frame
from ``numpy.random.default_rng([seed, epoch, i])``: reproducible, different every epoch (call
:meth:`FaceSequenceDataset.set_epoch` before each epoch; with ``persistent_workers=True`` the
workers keep the epoch they were started with). The audio of frames ``[s, s + L)`` comes from
:meth:`Store.read_audio_window` (the project's one sync rule: ``frames_to_samples(L)`` samples
from ``frame_to_sample(s)``), so every item of a store at one frame rate has the same number of
samples. Sequences shorter than L are left out (listed in ``excluded``).

The style reference is a window of the same length from ANOTHER sequence of the same subject
in the same split, drawn with the same generator. A subject with a single sequence gets a
different window of the same sequence (the same window only when the sequence is exactly L
frames long). With ``window=None`` items are whole sequences (use ``batch_size=1``) and the
style reference is another whole sequence of the subject (or the same one).

Augmentation (``augment``, training only, windows only): each item draws from its own
generator ``default_rng([seed, epoch, index, 1])`` (so the windows are the same with and without
it) a speed factor ``s``; the item then reads ``round(L * s)`` frames and their speech, plays the
speech ``s`` times faster and resamples the frames in time to L (speech and motion stay in sync),
then applies the waveform augmentation (:func:`mmface4d.audio.augment.augment`: pitch, reverb,
noise, level).

The store is opened lazily in each worker process: the dataset pickles to the store's URL.
"""

from __future__ import annotations

import os
from collections import OrderedDict, defaultdict
from typing import TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from mmface4d.audio.augment import AugmentConfig, augment, change_speed
from mmface4d.audio.sync import frames_to_samples, resample_to_frames
from mmface4d.data.manifest import SequenceRecord
from mmface4d.data.splits import SPLIT_NAMES, load_splits
from mmface4d.data.store import Store
from mmface4d.errors import InputError

_TEMPLATE_CACHE = 64


class FaceSample(TypedDict):
    """One item (a dict, so that the default ``collate_fn`` batches it).

    Keys: ``audio`` (n,) float32 16 kHz speech of the window; ``vertices`` (L, V, 3) float32
    metres; ``template`` (V, 3) the subject's template; ``style_vertices`` (L, V, 3) the style
    reference window; ``sequence_id``, ``subject``, ``style_sequence_id``; ``start_frame`` and
    ``style_start_frame``; ``fps``; ``emotion`` ("" when unknown) and ``emotion_code`` (-1 when
    unknown).
    """

    audio: torch.Tensor
    vertices: torch.Tensor
    template: torch.Tensor
    style_vertices: torch.Tensor
    sequence_id: str
    subject: str
    style_sequence_id: str
    start_frame: int
    style_start_frame: int
    fps: float
    emotion: str
    emotion_code: int


class FaceSequenceDataset(Dataset):
    """Aligned (audio, vertices, template, style reference, metadata) items from a store.

    Args:
        store: a :class:`Store` or its URL.
        split: ``train``, ``val``, ``test`` (needs ``splits.json``, see ``mmface4d data split``)
            or None for every sequence.
        window: L frames per item, or None for whole sequences.
        seed: base seed of the window and style draws.
        storage_options: fsspec options when ``store`` is a URL.
        augment: speech augmentation of the items (windows only), or None.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        split: str | None = "train",
        window: int | None = 64,
        seed: int = 0,
        storage_options: dict | None = None,
        augment: AugmentConfig | None = None,
    ):
        if augment is not None:
            if window is None:
                raise InputError("augment: needs windows (window=None gives whole sequences)")
            augment.validate()
        self.augment = augment if augment is not None and augment.enabled else None
        self.store = store if isinstance(store, Store) else Store(store, storage_options)
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int) or window < 1
        ):
            raise InputError(f"window: expected a positive integer or None, found {window!r}")
        records = list(self.store.records.values())
        if split is not None:
            if split not in SPLIT_NAMES:
                raise InputError(f"split: expected one of {SPLIT_NAMES} or None, found {split!r}")
            splits = load_splits(self.store)
            if splits is None:
                raise InputError(
                    f"{self.store.url}: no splits.json; run `mmface4d data split` or pass "
                    "split=None"
                )
            records = [r for r in records if splits.sequences.get(r.sequence_id) == split]
        self.window = window
        self.seed = int(seed)
        self.epoch = 0
        self.excluded = [
            r.sequence_id for r in records if window is not None and r.num_frames < window
        ]
        self.records: list[SequenceRecord] = [
            r for r in records if window is None or r.num_frames >= window
        ]
        if not self.records:
            raise InputError(
                f"{self.store.url}: no sequence in split {split!r} with at least {window} frames"
            )
        by_subject: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            by_subject[record.subject].append(index)
        self._by_subject = dict(by_subject)
        self._templates: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows: items depend on (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_templates"] = OrderedDict()
        return state

    def _template(self, subject: str) -> torch.Tensor:
        cached = self._templates.get(subject)
        if cached is None:
            cached = torch.from_numpy(self.store.read_template(subject))
            self._templates[subject] = cached
            if len(self._templates) > _TEMPLATE_CACHE:
                self._templates.popitem(last=False)
        return cached

    def _draw(self, index: int, rng: np.random.Generator) -> tuple[int, int, int]:
        """(start, style record index, style start)."""
        record = self.records[index]
        others = [i for i in self._by_subject[record.subject] if i != index]
        if self.window is None:
            return 0, (int(rng.choice(others)) if others else index), 0
        start = int(rng.integers(0, record.num_frames - self.window + 1))
        if others:
            style = int(rng.choice(others))
            span = self.records[style].num_frames - self.window + 1
            return start, style, int(rng.integers(0, span))
        span = record.num_frames - self.window  # starts other than `start`
        if span == 0:
            return start, index, start
        style_start = int(rng.integers(0, span))
        return start, index, style_start + (style_start >= start)

    def __getitem__(self, index: int) -> FaceSample:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} sequences")
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start, style_index, style_start = self._draw(index, rng)
        style = self.records[style_index]
        length = record.num_frames if self.window is None else self.window
        style_length = style.num_frames if self.window is None else self.window
        read = self.store.read_window
        if self.augment is None:
            audio = self.store.read_audio_window(record.sequence_id, start, length)
            vertices = read(record.sequence_id, start, length)
        else:
            audio, vertices, start = self._augmented(index, start)
        return FaceSample(
            audio=torch.from_numpy(audio),
            vertices=torch.from_numpy(vertices),
            template=self._template(record.subject),
            style_vertices=torch.from_numpy(read(style.sequence_id, style_start, style_length)),
            sequence_id=record.sequence_id,
            subject=record.subject,
            style_sequence_id=style.sequence_id,
            start_frame=start,
            style_start_frame=style_start,
            fps=record.fps,
            emotion=record.emotion or "",
            emotion_code=-1 if record.emotion_code is None else record.emotion_code,
        )

    def _augmented(self, index: int, start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The augmented window of item ``index`` near ``start``: (audio (n,), vertices (L, V, 3),
        the start frame actually read)."""
        assert self.augment is not None and self.window is not None
        record, length = self.records[index], self.window
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        speed = self.augment.draw_speed(rng)
        source_length = int(round(length * speed))
        if source_length > record.num_frames:
            speed, source_length = 1.0, length
        start = min(start, record.num_frames - source_length)
        audio = self.store.read_audio_window(record.sequence_id, start, source_length)
        vertices = self.store.read_window(record.sequence_id, start, source_length)
        if speed != 1.0:
            count = frames_to_samples(length, record.fps, record.sample_rate)
            audio = change_speed(audio, speed)[:count]
            audio = np.pad(audio, (0, count - len(audio)))
            flat = vertices.reshape(source_length, -1)
            flat = resample_to_frames(flat, record.fps * speed, record.fps, length)
            vertices = np.ascontiguousarray(flat.reshape(length, *vertices.shape[1:]))
        audio = augment(audio, record.sample_rate, self.augment, rng)
        return audio.astype(np.float32), vertices.astype(np.float32), start

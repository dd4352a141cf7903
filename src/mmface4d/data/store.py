"""The packed dataset store: many 4D face sequences with their speech, for training at scale.

Layout (a Zarr v3 hierarchy plus plain files, at a local path or any fsspec URL)::

    STORE/zarr.json                      root group, attributes {"format": "mmface4d-store"}
    STORE/sequences/<id>/vertices        int16 (T, V, 3): offsets from the reference, in steps
    STORE/sequences/<id>/reference       float32 (V, 3): the sequence's mean frame, metres
    STORE/sequences/<id>/audio           float32 (N,): speech at 16 kHz, N = T * 16000 / fps
    STORE/templates/<subject>            float32 (V, 3): the subject's template, metres
    STORE/records/<id>.json              completion record of one sequence (written last)
    STORE/manifest.parquet               one row per complete sequence (see manifest.py)
    STORE/templates.json, splits.json    template provenance and checksums; identity splits

The vertex encoding (int16 offsets at a 1 um step from each sequence's mean frame) and why it
was chosen are in :mod:`mmface4d.data.store_format`.

Writing is atomic per sequence: arrays are written, read back and checksummed, and only then is
``records/<id>.json`` written (one object PUT, or a rename on local disks). A sequence without a
record is invisible and is rewritten by the next pack; ``manifest.parquet`` is rebuilt from the
records when a pack finishes. Readers open nothing until first use and drop their handles when
pickled, so a :class:`Store` can be handed to DataLoader worker processes.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from fsspec.implementations.local import LocalFileSystem
from zarr.storage import FsspecStore, LocalStore

from mmface4d.audio.sync import frame_to_sample, frames_to_samples
from mmface4d.data.manifest import (
    SequenceRecord,
    check_name,
    manifest_bytes,
    read_manifest_bytes,
)
from mmface4d.data.store_format import (
    AUDIO_CHUNK,
    STORE_FORMAT,
    STORE_VERSION,
    TIME_CHUNK,
    chunk_codecs,
    decode_offsets,
    encode_offsets,
    sequence_checksum,
    template_checksum,
)
from mmface4d.errors import InputError

_REFERENCE_CACHE = 32


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Store.verify` found.

    Attributes:
        checked: sequences and templates checked.
        corrupt: sequence id (or ``template:<subject>``) -> what is wrong.
        incomplete: sequence folders without a completion record (an interrupted pack; the next
            pack rewrites them, readers never see them).
    """

    checked: int
    corrupt: dict[str, str]
    incomplete: list[str]

    @property
    def ok(self) -> bool:
        return not self.corrupt


class Store:
    """A packed store at a local path or fsspec URL (``s3://``, ``gs://``, ``memory://``, ...).

    Opening is lazy and the object pickles to its URL only, so it is safe to create in the main
    process and use in DataLoader workers.

    Args:
        url: the store's folder or URL.
        storage_options: passed to fsspec (credentials, endpoint, ...).
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: dict | None = None):
        self.url = os.fspath(url)
        self.storage_options = dict(storage_options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""
        self._zarr: Any = None
        self._records: dict[str, SequenceRecord] | None = None
        self._arrays: dict[str, Any] = {}
        self._references: OrderedDict[str, np.ndarray] = OrderedDict()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    # -- storage ------------------------------------------------------------------------------
    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            self._root = root.rstrip("/") or "/"
        return self._fs

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (a ``/``-separated name inside the store)."""
        _ = self.fs
        return posixpath.join(self._root, key)

    @property
    def zarr_store(self) -> Any:
        if self._zarr is None:
            if self.is_local:
                self._zarr = LocalStore(self._root)
            else:
                self._zarr = FsspecStore.from_url(self.url, storage_options=self.storage_options)
        return self._zarr

    def get_file(self, key: str) -> bytes | None:
        """The bytes of a plain file in the store, None when it does not exist."""
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            return None

    def put_file(self, key: str, data: bytes) -> None:
        """Write a plain file atomically: temporary file and rename on local disks, one PUT
        (atomic on object stores) elsewhere."""
        path = self.path(key)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(temp, path)
            finally:
                if os.path.exists(temp):
                    os.unlink(temp)
        else:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self.fs.pipe_file(path, data)

    def _listdir(self, key: str, kind: str | None = None) -> list[str]:
        """Names in a folder of the store; only ``kind`` ("file" or "directory") if given."""
        try:
            entries = self.fs.ls(self.path(key), detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            posixpath.basename(e["name"].rstrip("/"))
            for e in entries
            if kind is None or e["type"] == kind
        )

    def initialise(self) -> None:
        """Create the root group, or check that an existing folder is a store of this kind."""
        meta = self.get_file("zarr.json")
        if meta is None:
            if self.fs.exists(self.path("")) and self._listdir(""):
                raise InputError(
                    f"{self.url}: folder exists and is not an mmface4d store (expected an empty "
                    "or new folder)"
                )
            zarr.open_group(self.zarr_store, mode="w", attributes=self._root_attributes())
            return
        attributes = json.loads(meta).get("attributes", {})
        if attributes.get("format") != STORE_FORMAT:
            raise InputError(
                f"{self.url}: a Zarr hierarchy but not an mmface4d store "
                f"(format {attributes.get('format')!r}, expected {STORE_FORMAT!r})"
            )

    @staticmethod
    def _root_attributes() -> dict[str, Any]:
        return {"format": STORE_FORMAT, "version": STORE_VERSION}

    # -- manifest -----------------------------------------------------------------------------
    @property
    def records(self) -> dict[str, SequenceRecord]:
        """The manifest: sequence id -> record, sorted by id (read once per process)."""
        if self._records is None:
            data = self.get_file("manifest.parquet")
            if data is None:
                raise InputError(
                    f"{self.url}: no manifest.parquet (not a packed store, or its pack has not "
                    "finished: re-run `mmface4d data pack`)"
                )
            rows = read_manifest_bytes(data, f"{self.url}/manifest.parquet")
            self._records = {r.sequence_id: r for r in rows}
        return self._records

    @property
    def sequence_ids(self) -> list[str]:
        return list(self.records)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.records.values()})

    def record(self, sequence_id: str) -> SequenceRecord:
        """The manifest row of one sequence."""
        try:
            return self.records[sequence_id]
        except KeyError:
            raise InputError(f"{self.url}: no sequence {sequence_id!r} in the manifest") from None

    def finished_records(self) -> dict[str, SequenceRecord]:
        """Completion records on storage (including those not yet in the manifest)."""
        names = [n for n in self._listdir("records", "file") if n.endswith(".json")]
        paths = [self.path(f"records/{n}") for n in names]
        contents = self.fs.cat(paths) if paths else {}
        found = {}
        for path in paths:
            data = contents[path] if isinstance(contents, dict) else contents
            record = SequenceRecord.from_json(data, path)
            found[record.sequence_id] = record
        return dict(sorted(found.items()))

    def write_manifest(self, records: list[SequenceRecord]) -> None:
        """Replace ``manifest.parquet`` with ``records`` (atomically)."""
        self.put_file("manifest.parquet", manifest_bytes(records))
        self._records = None

    # -- reading ------------------------------------------------------------------------------
    def _array(self, key: str) -> Any:
        array = self._arrays.get(key)
        if array is None:
            try:
                array = zarr.open_array(self.zarr_store, path=key, mode="r")
            except FileNotFoundError as exc:
                raise InputError(f"{self.url}: array {key} is missing") from exc
            self._arrays[key] = array
        return array

    def read_reference(self, sequence_id: str) -> np.ndarray:
        """(V, 3) float32 reference frame (the sequence's mean) of a written sequence."""
        check_name(sequence_id, "sequence id", self.url)
        cached = self._references.get(sequence_id)
        if cached is None:
            cached = np.asarray(self._array(f"sequences/{sequence_id}/reference")[...])
            self._references[sequence_id] = cached
            if len(self._references) > _REFERENCE_CACHE:
                self._references.popitem(last=False)
        else:
            self._references.move_to_end(sequence_id)
        return cached

    def read_window(self, sequence_id: str, start: int, length: int) -> np.ndarray:
        """Frames ``[start, start + length)`` of a sequence, reading only their chunks.

        Returns:
            (length, V, 3) float32 vertices, metres.
        """
        record = self.record(sequence_id)
        _check_window(record, start, length)
        offsets = self._array(f"sequences/{sequence_id}/vertices")[start : start + length]
        return decode_offsets(offsets, self.read_reference(sequence_id), record.quant_step_m)

    def read_vertices(self, sequence_id: str) -> np.ndarray:
        """All frames of a sequence: (T, V, 3) float32 metres."""
        return self.read_window(sequence_id, 0, self.record(sequence_id).num_frames)

    def read_audio(self, sequence_id: str) -> np.ndarray:
        """The whole speech track: (N,) float32 at ``record.sample_rate``."""
        self.record(sequence_id)
        return np.asarray(self._array(f"sequences/{sequence_id}/audio")[...])

    def read_audio_window(self, sequence_id: str, start: int, length: int) -> np.ndarray:
        """The speech of frames ``[start, start + length)``.

        Returns:
            (frames_to_samples(length),) float32 samples starting at ``frame_to_sample(start)``
            (moved back by at most one sample at the very end, where the two roundings meet).
        """
        record = self.record(sequence_id)
        _check_window(record, start, length)
        count = frames_to_samples(length, record.fps, record.sample_rate)
        first = min(frame_to_sample(start, record.fps, record.sample_rate), record.num_samples)
        first = max(0, min(first, record.num_samples - count))
        audio = self._array(f"sequences/{sequence_id}/audio")[first : first + count]
        return np.asarray(audio)

    def read_template(self, subject: str) -> np.ndarray:
        """(V, 3) float32 template of a subject, metres."""
        return np.asarray(self._array(f"templates/{check_name(subject, 'subject', self.url)}")[...])

    def template_info(self) -> dict[str, dict[str, Any]]:
        """subject -> {"source": how the template was made, "checksum": sha256, ...}."""
        data = self.get_file("templates.json")
        return {} if data is None else json.loads(data)

    # -- writing ------------------------------------------------------------------------------
    def write_sequence(
        self,
        sequence_id: str,
        vertices: np.ndarray,
        audio: np.ndarray,
        *,
        fps: float,
        sample_rate: int,
        metadata: dict[str, Any],
    ) -> SequenceRecord:
        """Write one sequence, verify it by reading it back, then commit its record.

        Args:
            sequence_id: the unique name.
            vertices: (T, V, 3) finite coordinates, metres.
            audio: (N,) float32 with ``N == frames_to_samples(T, fps, sample_rate)`` (cut with
                :func:`mmface4d.audio.sync.align_lengths`).
            fps: mesh frame rate, Hz.
            sample_rate: audio rate, Hz.
            metadata: the remaining :class:`SequenceRecord` fields (subject, age, gender,
                emotion, emotion_code, sentence, language, layout, source, trimmed_frames,
                trimmed_samples).

        Returns:
            The record written.
        """
        check_name(sequence_id, "sequence id", self.url)
        num_frames, num_vertices = int(vertices.shape[0]), int(vertices.shape[1])
        expected = frames_to_samples(num_frames, fps, sample_rate)
        if audio.shape != (expected,):
            raise InputError(
                f"{sequence_id}: audio of {num_frames} frames at {fps} fps must hold {expected} "
                f"samples, found shape {audio.shape} (align it with align_lengths first)"
            )
        offsets, reference, step = encode_offsets(vertices)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        base = f"sequences/{sequence_id}"
        zarr.open_group(self.zarr_store, path=base, mode="w")  # clears an interrupted attempt
        self._create(f"{base}/vertices", offsets, (TIME_CHUNK, num_vertices, 3))
        self._create(f"{base}/reference", reference, reference.shape)
        self._create(f"{base}/audio", audio, (AUDIO_CHUNK,))
        checksum = sequence_checksum(offsets, reference, audio)
        for key in ("vertices", "reference", "audio"):
            self._arrays.pop(f"{base}/{key}", None)
        self._references.pop(sequence_id, None)
        stored = sequence_checksum(
            self._array(f"{base}/vertices")[...],
            self._array(f"{base}/reference")[...],
            self._array(f"{base}/audio")[...],
        )
        if stored != checksum:
            raise OSError(f"{self.url}: {sequence_id} reads back differently from what was written")
        record = SequenceRecord(
            sequence_id=sequence_id,
            duration_s=num_frames / fps,
            fps=float(fps),
            num_frames=num_frames,
            num_vertices=num_vertices,
            num_samples=expected,
            sample_rate=int(sample_rate),
            quant_step_m=step,
            checksum=checksum,
            **metadata,
        )
        self.put_file(f"records/{sequence_id}.json", record.to_json())
        return record

    def _create(self, key: str, data: np.ndarray, chunks: tuple[int, ...]) -> None:
        chunks = (min(chunks[0], max(1, data.shape[0])),) + tuple(chunks[1:])
        shards = (math.ceil(data.shape[0] / chunks[0]) * chunks[0],) + tuple(chunks[1:])
        array = zarr.create_array(
            self.zarr_store,
            name=key,
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks,
            shards=shards,
            compressors=chunk_codecs(data.dtype.itemsize),
            overwrite=True,
        )
        array[...] = data

    def write_templates(self, templates: dict[str, tuple[np.ndarray, str]]) -> None:
        """Write subject templates ((V, 3) metres, provenance text) and ``templates.json``."""
        table = self.template_info()
        for subject, (template, source) in sorted(templates.items()):
            check_name(subject, "subject", self.url)
            values = np.ascontiguousarray(template, dtype=np.float32)
            self._create(f"templates/{subject}", values, values.shape)
            self._arrays.pop(f"templates/{subject}", None)
            table[subject] = {
                "source": source,
                "num_vertices": int(values.shape[0]),
                "checksum": template_checksum(values),
            }
        self.put_file("templates.json", json.dumps(table, indent=1, sort_keys=True).encode())

    # -- integrity ----------------------------------------------------------------------------
    def verify(self, sequence_ids: list[str] | None = None) -> VerifyReport:
        """Re-read sequences and templates and compare them with their checksums.

        Args:
            sequence_ids: which sequences; default all in the manifest (and all templates).

        Returns:
            A report; corrupt entries name what failed (a checksum mismatch, a chunk that fails
            its CRC or cannot be decompressed, a missing array).
        """
        corrupt: dict[str, str] = {}
        ids = self.sequence_ids if sequence_ids is None else list(sequence_ids)
        for sequence_id in ids:
            record = self.record(sequence_id)
            base = f"sequences/{sequence_id}"
            try:
                arrays = [
                    np.asarray(zarr.open_array(self.zarr_store, path=f"{base}/{k}")[...])
                    for k in ("vertices", "reference", "audio")
                ]
            except Exception as exc:  # reported, not swallowed: any read failure is corruption
                corrupt[sequence_id] = f"unreadable ({type(exc).__name__}: {exc})"
                continue
            shape = (record.num_frames, record.num_vertices, 3)
            if arrays[0].shape != shape or arrays[2].shape != (record.num_samples,):
                corrupt[sequence_id] = f"shape {arrays[0].shape}, expected {shape}"
            elif sequence_checksum(*arrays) != record.checksum:
                corrupt[sequence_id] = "checksum mismatch (stored data changed)"
        templates = self.template_info() if sequence_ids is None else {}
        for subject, entry in templates.items():
            try:
                values = np.asarray(
                    zarr.open_array(self.zarr_store, path=f"templates/{subject}")[...]
                )
            except Exception as exc:  # reported as corruption
                corrupt[f"template:{subject}"] = f"unreadable ({type(exc).__name__}: {exc})"
                continue
            if template_checksum(values) != entry["checksum"]:
                corrupt[f"template:{subject}"] = "checksum mismatch (stored data changed)"
        finished = {n.removesuffix(".json") for n in self._listdir("records")}
        incomplete = [n for n in self._listdir("sequences", "directory") if n not in finished]
        return VerifyReport(len(ids) + len(templates), corrupt, incomplete)


def _check_window(record: SequenceRecord, start: int, length: int) -> None:
    valid = isinstance(start, int | np.integer) and isinstance(length, int | np.integer)
    if not valid or start < 0 or length < 1 or start + length > record.num_frames:
        raise InputError(
            f"{record.sequence_id}: window start={start} length={length} does not fit "
            f"0..{record.num_frames} frames"
        )

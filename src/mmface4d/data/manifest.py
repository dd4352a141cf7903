"""The manifest of a packed store: one row per sequence, a Parquet table.

Each packed sequence first gets a JSON record (``records/<id>.json``, written last, which marks
the sequence complete); :func:`write_manifest` gathers the records into ``manifest.parquet``, the
table readers use. Columns are those of :class:`SequenceRecord` (:data:`MANIFEST_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmface4d.emotions import EMOTIONS
from mmface4d.errors import InputError

#: MMFace4D's emotion codes as integers (the first two characters of a sentence id) -> name.
EMOTION_CODES: dict[int, str] = {int(code): name for name, code in EMOTIONS.items()}
_EMOTION_NAMES = {name: code for code, name in EMOTION_CODES.items()}
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def emotion_from_sentence(sentence: str) -> tuple[str | None, int | None]:
    """(emotion, code) from a sentence id's two-digit prefix (``"210337"`` -> happy, 21), or
    (None, None) when the prefix is not one of :data:`EMOTION_CODES`."""
    prefix = sentence[:2]
    if len(prefix) == 2 and prefix.isdigit() and int(prefix) in EMOTION_CODES:
        return EMOTION_CODES[int(prefix)], int(prefix)
    return None, None


def emotion_code(emotion: str | None) -> int | None:
    """The MMFace4D code of an emotion name, None for names outside :data:`EMOTION_CODES`."""
    return None if emotion is None else _EMOTION_NAMES.get(emotion.strip().lower())


def check_name(name: str, what: str, source: str) -> str:
    """Return ``name`` if it is usable as a store key (letters, digits, ``._-``, not starting
    with a dot or dash), else raise naming ``source``."""
    if not isinstance(name, str) or not _ID_PATTERN.fullmatch(name):
        raise InputError(
            f"{source}: {what} {name!r} is not a valid name (expected letters, digits, '.', '_', "
            "'-', starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class SequenceRecord:
    """One packed sequence, as the manifest describes it.

    Attributes:
        sequence_id: unique name in the store (``<subject>_<sentence>``).
        subject: the speaker's identity; splits are by subject.
        age: years, when known.
        gender: as given by the source (e.g. ``"female"``), when known.
        emotion: ``neutral``, ``happy``, ... (:data:`EMOTION_CODES`), when known.
        emotion_code: MMFace4D code (0, 21..26), when known.
        sentence: sentence id or text label.
        language: e.g. ``"zh"``, ``"en"``, when known.
        duration_s: T / fps, seconds.
        fps: mesh frame rate, Hz.
        num_frames: T.
        num_vertices: V.
        num_samples: N audio samples, exactly ``frames_to_samples(T, fps, sample_rate)``.
        sample_rate: audio rate, Hz (16,000).
        layout: the importer that read it (``mmface4d`` or ``faceformer``).
        source: the vertex file(s), relative to the packed source folder.
        quant_step_m: the int16 step of the stored offsets, metres (max error half of it).
        trimmed_frames: mesh frames dropped because the audio was shorter.
        trimmed_samples: audio samples dropped because the audio was longer.
        checksum: sha256 of the stored int16 offsets, float32 reference and float32 audio.
    """

    sequence_id: str
    subject: str
    age: int | None
    gender: str | None
    emotion: str | None
    emotion_code: int | None
    sentence: str | None
    language: str | None
    duration_s: float
    fps: float
    num_frames: int
    num_vertices: int
    num_samples: int
    sample_rate: int
    layout: str
    source: str
    quant_step_m: float
    trimmed_frames: int
    trimmed_samples: int
    checksum: str

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> SequenceRecord:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{source}: not a sequence record of this store ({exc})") from exc


MANIFEST_SCHEMA = pa.schema(
    [
        ("sequence_id", pa.string()),
        ("subject", pa.string()),
        ("age", pa.int32()),
        ("gender", pa.string()),
        ("emotion", pa.string()),
        ("emotion_code", pa.int16()),
        ("sentence", pa.string()),
        ("language", pa.string()),
        ("duration_s", pa.float64()),
        ("fps", pa.float64()),
        ("num_frames", pa.int64()),
        ("num_vertices", pa.int64()),
        ("num_samples", pa.int64()),
        ("sample_rate", pa.int64()),
        ("layout", pa.string()),
        ("source", pa.string()),
        ("quant_step_m", pa.float64()),
        ("trimmed_frames", pa.int64()),
        ("trimmed_samples", pa.int64()),
        ("checksum", pa.string()),
    ]
)


def manifest_bytes(records: list[SequenceRecord]) -> bytes:
    """Serialise records (sorted by sequence id) as a Parquet file."""
    rows = [dataclasses.asdict(r) for r in sorted(records, key=lambda r: r.sequence_id)]
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def read_manifest_bytes(data: bytes, source: str) -> list[SequenceRecord]:
    """Parse a manifest Parquet file into records."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{source}: unreadable manifest ({exc})") from exc
    missing = [name for name in MANIFEST_SCHEMA.names if name not in table.column_names]
    if missing:
        raise InputError(f"{source}: manifest lacks columns {missing}")
    rows: list[dict[str, Any]] = table.select(MANIFEST_SCHEMA.names).to_pylist()
    return [SequenceRecord(**row) for row in rows]

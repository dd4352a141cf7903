"""Streaming speech-to-face: audio chunks in, face frames out, with a fixed look-ahead.

:class:`FaceStream` (``Animator.stream(speaker)``) takes 16 kHz audio in chunks of any length
(:meth:`FaceStream.push`) and gives the face frames that the audio completes: vertices and the
52 ARKit weights, each frame once, in order; :meth:`FaceStream.flush` gives the rest when the
speech ends. It is also the one inference path for whole files: ``Animator.synthesise`` and
``mmface4d.animate`` push the file through a stream with long steps (:data:`OFFLINE`), so a file
of any length is animated in bounded memory and a stream with the same settings gives the same
frames as the file (to float rounding, tested).

**Steps.** The stream works in steps of ``step_s`` of audio (:class:`StreamSettings`). Step k
ends at ``g = k * step_s``; once the audio reaches ``g + lookahead_s - step_s``, it

1. recognises a window of audio, from ``recognition_context_s`` before the step to the end of
   the audio heard (the phonetic encoder's recogniser is a Conformer with attention over its
   whole input: each step hears a bounded window of it, and the features of the step are kept
   as they were then heard);
2. runs the model over ``context_s`` of past features, the step and its look-ahead (the paper's
   decoder normalises its features over time, AdaIN, and its convolutions reach 12 frames
   either way: both see the window, never the whole history); the features past the heard
   audio are the last one repeated for :data:`EDGE_PAD_FRAMES` frames;
3. gives the frames that end inside the step, with the lip-closure layer (bilabials found in
   the recogniser's output of the window, pauses in the audio's level, lip modes fitted over
   the model's window), blinks and saccades (drawn event by event: the same eyes whatever the
   chunks) and the ARKit weights solved per frame.

A frame therefore waits for at most ``lookahead_s`` of audio past its end (between
``lookahead_s - step_s`` and ``lookahead_s``), and every result depends only on the audio and
the settings, never on the chunk sizes. Loudness is measured against the loudest 20 ms heard so
far (at least :data:`LEVEL_FLOOR_DB`), not the whole file's loudest: the one causal change of
the level feature and the pause detection.

**Bounded state.** The stream keeps the audio of the recognition window, ``context_s`` of
features, a second of levels and bilabial probabilities, the lip modes and the blinks in
progress: :meth:`FaceStream.retained` counts them; they do not grow with the stream's length.

**Versus the whole file.** With the same settings a stream and ``synthesise`` agree to float
rounding (tested at 1e-6 m; identical in practice). The live defaults (:data:`LIVE`: 0.16 s
steps, 0.2 s look-ahead) hear less than the file's (:data:`OFFLINE`: 10 s steps, 1 s of
look-ahead past each), and the model's decoder reaches 0.4 s ahead: on the four real clips of
``benchmarks/data/speech`` the live frames differ from the file's by 0.77 mm RMS over all
vertices (the face moves 1.26 mm RMS) and the inner-lip gap by 2.2 mm RMS (its spread: 3.8 mm),
with a correlation of 0.83; 0.4 s of look-ahead gives 0.51 mm, 1.3 mm and 0.94
(``docs/STREAMING.md``, ``benchmarks/bench_streaming.py``).

Shapes: N samples, V vertices, n frames of a batch; 16 kHz audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmface4d.animate.closure import (
    ClosureConfig,
    LipFit,
    closure_weights,
    lip_gram,
    lips_move,
    pause_weights,
)
from mmface4d.animate.lipsync import frame_levels_db, speech_frames
from mmface4d.animate.liveliness import Liveliness, LivelinessConfig
from mmface4d.audio import phonetic
from mmface4d.audio.sync import frame_to_sample, frames_to_samples
from mmface4d.constants import SAMPLE_RATE
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.geometry.frames import AXIS_FLIP

if TYPE_CHECKING:
    from mmface4d.animate.animator import Animator, Speaker

#: Frames of features the decoder's window is extended by past the heard audio (the last
#: heard frame repeated), so the frames near its end see speech-like input, not the zero
#: padding of the convolutions: on five real clips the model's difference from the file's with
#: 0.1 s steps and 0.2 s of look-ahead drops from 0.70 to 0.61 mm RMS (12 frames: 0.63).
EDGE_PAD_FRAMES = 6
#: Frames decoded, closed, given eyes and solved at once within a step (whole files step 10 s).
PIECE_FRAMES = 64
#: Least reference level, dB re full scale (20 ms RMS): before any speech is heard, digital
#: silence and quiet noise are pauses, not the loudest sound so far.
LEVEL_FLOOR_DB = -40.0
#: Silent gaps shorter than this inside speech are not pauses (``voice_activity``'s default).
MIN_PAUSE_S = 0.2


@dataclass(frozen=True)
class StreamSettings:
    """How a :class:`FaceStream` steps through speech (module doc).

    Attributes:
        lookahead_s: the most audio past a frame's end that the frame waits for, seconds
            (each frame hears between ``lookahead_s - step_s`` and ``lookahead_s`` of it).
        step_s: audio per step, seconds (rounded to 20 ms): frames come in steps.
        context_s: past audio the model's window covers, seconds (its time normalisation and
            the lip modes are over the window).
        recognition_context_s: past audio the speech encoder hears before each step, seconds.
    """

    lookahead_s: float = 0.2
    step_s: float = 0.16
    context_s: float = 10.0
    recognition_context_s: float = 0.6

    def validate(self) -> None:
        """An :class:`InputError` naming a setting out of range."""
        if not (math.isfinite(self.step_s) and 0.02 <= self.step_s <= 3600):
            raise InputError(f"step_s: expected 0.02 to 3600 s, found {self.step_s}")
        if not (math.isfinite(self.lookahead_s) and self.step_s <= self.lookahead_s <= 3600):
            raise InputError(
                f"lookahead_s: expected step_s ({self.step_s}) to 3600 s, found {self.lookahead_s}"
            )
        for name in ("context_s", "recognition_context_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 3600):
                raise InputError(f"{name}: expected 0 to 3600 s, found {value}")


def offline_settings(window_s: float = 20.0) -> StreamSettings:
    """Settings for whole files: steps of half ``window_s``, as much context before them, 1 s
    of look-ahead past each step's end (clips shorter than ``window_s / 2 + 1`` s in one
    step)."""
    if not (math.isfinite(window_s) and window_s >= 0.2):
        raise InputError(f"window_s: expected at least 0.2 s, found {window_s}")
    half = window_s / 2
    return StreamSettings(
        lookahead_s=half + 1.0, step_s=half, context_s=half, recognition_context_s=1.0
    )


#: A live stream's defaults: frames 0.04-0.2 s behind the audio; the recogniser hears 0.8 s per
#: 0.16 s step, what one thread of the project's CPUs keeps up with (0.63-0.73 s of compute per
#: second; 0.1 s steps hearing 1 s follow the file closer, gap correlation 0.87 against 0.83, at
#: 1.24 s per second: docs/STREAMING.md).
LIVE = StreamSettings()
#: Whole files (``Animator.synthesise``, ``mmface4d.animate``): 10 s steps.
OFFLINE = offline_settings(20.0)


@dataclass(frozen=True)
class FaceFrames:
    """Consecutive frames of a stream.

    Attributes:
        start: index of the first frame (frame i covers ``[i / fps, (i + 1) / fps)``).
        vertices: (n, V, 3) float32 vertices, the face model's frame, metres.
        arkit: (n, 52) float32 ARKit weights in ``ARKIT_52`` order (0 for shapes the face
            model lacks), or None (no ARKit basis, or not asked for).
        fps: frame rate.
    """

    start: int
    vertices: np.ndarray
    arkit: np.ndarray | None
    fps: float

    def __len__(self) -> int:
        return len(self.vertices)

    @property
    def indices(self) -> np.ndarray:
        """(n,) frame indices."""
        return self.start + np.arange(len(self))

    @property
    def times(self) -> np.ndarray:
        """(n,) start time of each frame, seconds."""
        return self.indices / self.fps


@dataclass
class _Ring:
    """Rows of a growing sequence, addressed by their index in the sequence; old rows dropped."""

    width: tuple[int, ...] = ()
    dtype: Any = np.float32
    start: int = 0
    rows: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.zeros((0, *self.width), dtype=self.dtype)

    @property
    def end(self) -> int:
        return self.start + len(self.rows)

    def append(self, rows: np.ndarray) -> None:
        self.rows = np.concatenate([self.rows, np.asarray(rows, dtype=self.dtype)])

    def get(self, lo: int, hi: int) -> np.ndarray:
        if lo < self.start or hi > self.end:
            raise AssertionError(f"rows {lo}:{hi} outside the kept {self.start}:{self.end}")
        return self.rows[lo - self.start : hi - self.start]

    def keep_from(self, index: int) -> None:
        index = min(max(index, self.start), self.end)
        if index > self.start:
            self.rows = self.rows[index - self.start :].copy()
            self.start = index


def _rate(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1_000_000)


class FaceStream:
    """Speech in chunks, face frames out (module doc). Make one with ``Animator.stream``.

    Args:
        animator: the model.
        speaker: who speaks (``Animator.speaker`` or ``builtin_speaker``).
        settings: steps and look-ahead (default :data:`LIVE`).
        closure: the lip-closure layer, or None.
        liveliness: blinks and saccades, or None.
        arkit: also solve the ARKit weights of every frame (faces with an ARKit basis).
        num_frames: frames to give in all (default: the frames the speech spans, known at
            :meth:`flush`); frames past the speech repeat its last features.
        record: keep the bilabial times and blink onsets for :attr:`info` (whole files; a live
            stream leaves it off, so that nothing grows with its length).
    """

    def __init__(
        self,
        animator: Animator,
        speaker: Speaker,
        settings: StreamSettings | None = None,
        *,
        closure: ClosureConfig | None = None,
        liveliness: LivelinessConfig | None = None,
        arkit: bool = True,
        num_frames: int | None = None,
        record: bool = False,
    ):
        from mmface4d.animate.animator import Speaker

        settings = settings or LIVE
        settings.validate()
        V = animator.num_vertices
        if not isinstance(speaker, Speaker) or np.shape(speaker.template) != (V, 3):
            raise InputError(f"speaker: expected Animator.speaker(...) of a ({V}, 3) template")
        if num_frames is not None and (
            isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1
        ):
            raise InputError(f"num_frames: expected a positive integer, found {num_frames!r}")
        self.animator, self.speaker, self.settings = animator, speaker, settings
        self.fps = animator.fps
        self.record = record
        self._device = animator.device
        encoder = animator.pipeline.encoder
        self._encoder = encoder
        self._phonetic = isinstance(encoder, phonetic.PhoneticEncoder)
        fm = animator.face_model
        self._closure = closure if closure is not None and closure.enabled else None
        if self._closure is not None:
            self._closure.validate()
        self._closure_reason = "switched off" if self._closure is None else None
        if self._closure is not None and (fm is None or fm.landmarks is None):
            self._closure, self._closure_reason = None, "no landmarks to find the lips"
        self._recognise = self._phonetic or self._closure is not None
        hop = encoder.hop_length
        unit = math.lcm(hop, phonetic.HOP) if self._recognise else hop
        self._hop, self._feature_rate = hop, _rate(encoder.feature_rate)
        self._step = max(unit, int(round(settings.step_s * SAMPLE_RATE / unit)) * unit)
        self._right = max(0, int(round(settings.lookahead_s * SAMPLE_RATE)) - self._step)
        self._left = int(round(settings.recognition_context_s * SAMPLE_RATE / unit)) * unit
        self._context = int(round(settings.context_s * self.fps))
        self._ratio = float(self._feature_rate / _rate(self.fps))
        self._frame_span = frames_to_samples(1, self.fps, SAMPLE_RATE)
        # progress
        self._n = 0  # samples pushed
        self._g = 0  # end of the last step, samples
        self._done = 0  # frames given
        self._total = num_frames
        self._flushed = False
        # bounded state
        self._audio = _Ring()
        self._features = _Ring((encoder.dim,))
        self._mass = _Ring()
        self._frame_db = _Ring(dtype=np.float64)
        self._hop_ref = -np.inf  # loudest complete 20 ms heard, dB
        self._hops_done = 0
        self._frame_ref = -np.inf  # loudest complete mesh frame heard, dB
        self._lipfit: LipFit | None = None
        self._lip_decoding: tuple | None = None
        self._fitted = self._applied = False
        self._closed_frames = 0
        self._bilabials: list[float] = []
        if self._closure is not None and fm is not None:
            self._lipfit = LipFit.prepare(
                speaker.template, fm.landmarks, fm.regions.get("upper_face")
            )
            reach = self._closure.pause_ramp_s + MIN_PAUSE_S  # a pause weight's reach, s
            self._pause_margin = int(math.ceil(reach * self.fps)) + 2
        self._lively = (
            Liveliness(fm, speaker.template, self.fps, liveliness, record=record)
            if liveliness is not None
            else None
        )
        self._solver = animator.arkit_solver() if arkit else None

    # ------------------------------------------------------------------ public

    @property
    def sample_rate(self) -> int:
        """Rate of the samples :meth:`push` takes, Hz."""
        return SAMPLE_RATE

    @property
    def frames_given(self) -> int:
        """Frames given so far."""
        return self._done

    @property
    def samples_pushed(self) -> int:
        """Samples pushed so far."""
        return self._n

    @property
    def info(self) -> dict[str, object]:
        """Facts for the metadata: ``lip_closure`` (``closed_frames``, ``skipped`` and, when
        recorded, ``bilabials``, seconds) and ``liveliness`` (see :class:`Liveliness`)."""
        closed: dict[str, object] = {
            "closed_frames": self._closed_frames,
            "skipped": None if self._applied else (self._closure_reason or "no frames"),
        }
        if self.record and self._closure is not None:
            closed["bilabials"] = [round(c, 3) for c in self._bilabials]
        lively = self._lively.info if self._lively is not None else {"skipped": "switched off"}
        return {"lip_closure": closed, "liveliness": lively}

    def retained(self) -> dict[str, int]:
        """What the stream holds now: audio samples, feature frames, recogniser frames and
        mesh-frame levels kept, and blink or gaze events pending."""
        held = {
            "audio_samples": len(self._audio.rows),
            "feature_frames": len(self._features.rows),
            "recogniser_frames": len(self._mass.rows),
            "level_frames": len(self._frame_db.rows),
        }
        if self._lively is not None:
            held["eye_events"] = len(self._lively._blinks.events) + len(self._lively._gaze.shifts)
        return held

    def push(self, samples: np.ndarray) -> FaceFrames:
        """Add speech; the frames it completes.

        Args:
            samples: (N,) float32 (or float64) mono samples at 16 kHz in [-1, 1], any length.

        Returns:
            The new frames (possibly none).
        """
        return self._join(list(self.push_pieces(samples)))

    def flush(self) -> FaceFrames:
        """The frames left: the speech ended (no look-ahead past its end)."""
        return self._join(list(self.flush_pieces()))

    def push_pieces(self, samples: np.ndarray) -> Iterator[FaceFrames]:
        """:meth:`push`'s frames in pieces of at most :data:`PIECE_FRAMES`, each made when
        asked for (a whole file's long steps stay small in memory). Take them all before the
        next call."""
        if self._flushed:
            raise InputError("push: the stream was flushed; start a new one")
        x = np.asarray(samples)
        if not isinstance(samples, np.ndarray) or x.dtype.kind != "f" or x.ndim != 1:
            kind = type(samples).__name__
            raise InputError(
                "samples: expected a (N,) float32 array of 16 kHz mono samples in [-1, 1], "
                f"found {kind} {getattr(x, 'dtype', '?')} {x.shape}"
            )
        if not np.isfinite(x).all():
            raise InputError("samples: expected finite samples, found NaN or inf")
        return self._pieces(x.astype(np.float32, copy=False))

    def _pieces(self, x: np.ndarray) -> Iterator[FaceFrames]:
        position = 0
        while position < x.size:
            if self._total is not None and self._done >= self._total:
                self._n += x.size - position  # every frame asked for is given
                break
            ready = self._g + self._step + self._right
            take = min(x.size - position, max(0, ready - self._n))
            if take:
                self._audio.append(x[position : position + take])
                self._n += take
                position += take
            if self._n >= ready:
                yield from self._run_step(self._g + self._step, final=False)

    def flush_pieces(self) -> Iterator[FaceFrames]:
        """:meth:`flush`'s frames in pieces (see :meth:`push_pieces`)."""
        if self._flushed:
            return
        self._flushed = True
        if self._n == 0:
            return
        if self._total is None:
            self._total = max(1, int(round(self._n * self.fps / SAMPLE_RATE)))
        if self._done < self._total:
            yield from self._run_step(None, final=True)

    # ------------------------------------------------------------------ steps

    def _join(self, batches: list[FaceFrames]) -> FaceFrames:
        batches = [b for b in batches if len(b)]
        if not batches:
            V = self.animator.num_vertices
            arkit = np.zeros((0, len(ARKIT_52)), np.float32) if self._solver else None
            return FaceFrames(self._done, np.zeros((0, V, 3), np.float32), arkit, self.fps)
        if len(batches) == 1:
            return batches[0]
        arkit = None if batches[0].arkit is None else np.concatenate([b.arkit for b in batches])
        vertices = np.concatenate([b.vertices for b in batches])
        return FaceFrames(batches[0].start, vertices, arkit, self.fps)

    def _frames_ending_by(self, sample: int) -> int:
        """How many frames end at or before ``sample``."""
        k = int(sample * self.fps / SAMPLE_RATE) + 2
        while k > 0 and frame_to_sample(k, self.fps, SAMPLE_RATE) > sample:
            k -= 1
        return k

    def _run_step(self, g: int | None, final: bool) -> Iterator[FaceFrames]:
        """One step: the window's work now, then its frames piece by piece, as asked for."""
        with torch.no_grad():
            work = self._step_window(g, final)
        if work is None:
            return
        first, last, decode, weights = work
        for a in range(first, last, PIECE_FRAMES):
            b = min(last, a + PIECE_FRAMES)
            with torch.no_grad():
                vertices = decode(a, b)
            if weights is not None:
                vertices = self._lipfit.apply(vertices, weights[a - first : b - first])  # type: ignore[union-attr]
            if self._lively is not None:
                vertices = self._lively.apply(vertices, a)
            arkit = self._arkit(vertices) if self._solver is not None else None
            yield FaceFrames(a, vertices, arkit, self.fps)

    def _step_window(self, g: int | None, final: bool) -> tuple | None:
        """A step's window: recognition, features, the model, the closure's fit and weights,
        and the bookkeeping; (first, last, decode, weights) of its frames, or None."""
        hop, n = self._hop, self._n
        a0 = max(0, self._g - self._left)
        a1 = n if final else int(g) + self._right  # type: ignore[arg-type]
        window = self._audio.get(a0, a1)
        total = self._total if self._total is not None else np.inf
        first = self._done
        last = int(total) if final else int(min(self._frames_ending_by(int(g)), total))  # type: ignore[arg-type]
        # 1. what the window's audio says: encoder features, bilabial probability, levels
        log_probs = self._recognition(window) if self._recognise else None
        if self._phonetic and getattr(self._encoder, "level", False):
            complete = -(-a1 // phonetic.HOP) if final else a1 // phonetic.HOP
            if complete > self._hops_done:
                lo = self._hops_done * phonetic.HOP - a0
                db = phonetic.hop_levels_db(window[lo:], complete - self._hops_done)
                self._hop_ref = max(self._hop_ref, float(db.max()))
                self._hops_done = complete
        features = self._encode(window, log_probs)
        j0 = a0 // hop
        available = j0 + len(features)
        end_final = available if final else int(g) // hop  # type: ignore[arg-type]
        start_final = self._g // hop
        self._features.append(features[start_final - j0 : end_final - j0])
        provisional = features[end_final - j0 :]
        mass = None
        if self._closure is not None and log_probs is not None:
            m = phonetic.bilabial_mass(log_probs)
            r0 = a0 // phonetic.HOP
            r_final = r0 + len(m) if final else int(g) // phonetic.HOP  # type: ignore[arg-type]
            self._mass.append(m[self._g // phonetic.HOP - r0 : r_final - r0])
            mass = (r_final, m[r_final - r0 :])
        if self._closure is not None and self._closure.pauses:
            levels_to = int(total) if final else self._complete_frames(a1)
            if levels_to > self._frame_db.end:
                frames = np.arange(self._frame_db.end, levels_to)
                offset = self._audio.start
                db = frame_levels_db(self._audio.rows, SAMPLE_RATE, self.fps, frames, offset)
                self._frame_db.append(db)
                self._frame_ref = max(self._frame_ref, float(db.max()))
        # 2. the model over its window; the closure's fit and weights
        work = None
        if last > first:
            f1 = int(total) if final else int(min(self._frames_ending_by(a1), total))
            f1 = max(f1, last)
            f0 = max(0, first - self._context)
            x = self._window_features(f0, f1, available, provisional, final)
            decode, window_lips, moments = self._model(x, f0, f1)
            weights = None
            if self._closure is not None:
                weights = self._closure_weights(first, last, window_lips, moments, mass)
            work = (first, last, decode, weights)
        # 3. forget what no later step needs (the frames are decoded from the model's output)
        self._g = n if final else int(g)  # type: ignore[arg-type]
        self._done = last
        self._trim()
        return work

    def _complete_frames(self, sample: int) -> int:
        """How many frames' level spans end at or before ``sample``."""
        k = int(sample * self.fps / SAMPLE_RATE) + 2
        while k > 0 and frame_to_sample(k - 1, self.fps, SAMPLE_RATE) + self._frame_span > sample:
            k -= 1
        return k

    def _recognition(self, window: np.ndarray) -> np.ndarray:
        encoder = self._encoder
        if window.size == 0:  # the speech ended on a step's end, no context asked for
            return np.zeros((0, phonetic.NUM_CLASSES), np.float32)
        if self._phonetic:
            return phonetic.chunked_log_probs(
                window, encoder.chunk_s, encoder.overlap_s, encoder.threads
            )
        return phonetic.chunked_log_probs(window)

    def _encode(self, window: np.ndarray, log_probs: np.ndarray | None) -> np.ndarray:
        """(ceil(len / hop), C) float32 encoder features of the window."""
        if window.size == 0:
            return np.zeros((0, self._encoder.dim), np.float32)
        if self._phonetic:
            assert log_probs is not None
            features = phonetic.posteriorgram(log_probs, phonetic.blank_index())
            if self._encoder.level:
                db = phonetic.hop_levels_db(window, len(features))
                reference = max(self._hop_ref, LEVEL_FLOOR_DB)
                level = phonetic.level_channel(db, reference)
                features = np.concatenate([features, level[:, None]], axis=1)
            return features
        tensor = torch.as_tensor(window, device=self._device)[None]
        return self._encoder(tensor)[0].float().cpu().numpy()

    def _window_features(
        self, f0: int, f1: int, available: int, provisional: np.ndarray, final: bool
    ) -> np.ndarray:
        """(f1 - f0 [+ pad], C) features at the mesh frames: linear at frame centres from the
        encoder's (the sync convention), clamped to those heard."""
        centres = (np.arange(f0, f1, dtype=np.float64) + 0.5) * self._ratio - 0.5
        position = np.clip(centres, 0.0, available - 1)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, available - 1)
        weight = (position - lower)[:, None].astype(np.float32)
        lo = int(lower[0])
        heard = np.concatenate([self._features.get(lo, self._features.end), provisional])
        a, b = heard[lower - lo], heard[upper - lo]
        x = a + (b - a) * weight
        if not final and EDGE_PAD_FRAMES:
            x = np.concatenate([x, np.repeat(x[-1:], EDGE_PAD_FRAMES, axis=0)])
        return x

    def _model(
        self, x: np.ndarray, f0: int, f1: int
    ) -> tuple[Callable[[int, int], np.ndarray], np.ndarray | None, Any]:
        """The model over the window: a function giving frames ``a .. b - 1``'s vertices (face
        model frame), and for the closure the window's lip vectors and a function of the
        moments."""
        animator = self.animator
        pipeline = animator.pipeline
        model = pipeline.model
        conditioning = self.speaker.conditioning
        features = torch.as_tensor(x, device=self._device)[None]
        real = f1 - f0
        with pipeline._autocast(self._device):
            linear = model.linear_decoding(features, conditioning)
            if linear is None:
                whole = model.synthesise_prepared(features, conditioning)
        if linear is not None:
            latent, weight, addend = (t.float() for t in linear)

            def vertices(a: int, b: int) -> np.ndarray:
                given = torch.baddbmm(
                    addend[:, None].expand(1, b - a, -1),
                    latent[:, a - f0 : b - f0],
                    weight.unsqueeze(0),
                )
                return animator._out_of_model_data(given[0].cpu().numpy().reshape(b - a, -1, 3))

            if self._lipfit is None:
                return vertices, None, None
            if self._lip_decoding is None:  # the speaker's lip and moved-vertex columns, once
                fit = self._lipfit
                landmarks = np.concatenate([fit.upper, fit.lower])
                columns = torch.as_tensor((3 * landmarks[:, None] + np.arange(3)).reshape(-1))
                columns = columns.to(self._device)
                moved = torch.as_tensor((3 * fit.moved[:, None] + np.arange(3)).reshape(-1))
                self._lip_decoding = (
                    columns,
                    addend[:, columns],
                    weight[:, columns],
                    weight[:, moved.to(self._device)].cpu().numpy(),
                )
            columns, lip_addend, lip_weight, moved_weight = self._lip_decoding
            lip_v = lip_addend + latent[0, :real] @ lip_weight
            lip_v = animator._out_of_model_data(lip_v.cpu().numpy().reshape(real, 6, 3))
            lips = (lip_v[:, :3] - lip_v[:, 3:]).astype(np.float64)
            latent_np = latent[0, :real].cpu().numpy()
            flip = animator.frame == "camera"

            def moments(centred: np.ndarray) -> np.ndarray:
                projected = (centred.T.astype(np.float32) @ latent_np) @ moved_weight
                if flip:  # offsets turn with the axes into the face model's frame
                    projected = (projected.reshape(9, -1, 3) * np.float32(AXIS_FLIP)).reshape(9, -1)
                return projected

            return vertices, lips, moments
        frames = animator._out_of_model_data(whole[0, :real].float().cpu().numpy())

        def vertices(a: int, b: int) -> np.ndarray:
            return frames[a - f0 : b - f0]

        if self._lipfit is None:
            return vertices, None, None
        fit = self._lipfit
        lips = (frames[:, fit.upper] - frames[:, fit.lower]).astype(np.float64)
        offsets = (frames[:, fit.moved] - fit.neutral[fit.moved]).reshape(real, -1)
        return vertices, lips, lambda centred: centred.T.astype(np.float32) @ offsets

    def _closure_weights(
        self,
        first: int,
        last: int,
        lips: np.ndarray | None,
        moments: Any,
        mass: tuple[int, np.ndarray] | None,
    ) -> np.ndarray | None:
        """The lip-closure layer's fit and (n,) weights for the given frames
        (``closure.lip_closure`` over a window), or None when it leaves them."""
        config, fit, fps = self._closure, self._lipfit, self.fps
        assert config is not None and fit is not None and lips is not None
        if lips_move(lips):
            centred, _ = lip_gram(lips)
            fit.fit(lips, moments(centred), config)
            self._fitted = True
        weights = np.zeros(last - first)
        if mass is not None:
            provisional_from, provisional = mass
            reach = phonetic.PEAK_REACH
            earliest = (first + 0.5) / fps - config.lag_s - config.ramp_s
            rate = SAMPLE_RATE / phonetic.HOP
            lo = max(self._mass.start, int(math.floor(earliest * rate)) - 2 * reach - 2, 0)
            heard = np.concatenate([self._mass.get(lo, provisional_from), provisional])
            centres = (phonetic.mass_peaks(heard, config.threshold) + lo + 0.5) / rate
            weights = closure_weights(centres, fps, last - first, config, first_frame=first)
            if self.record:
                self._bilabials += [c for c in centres if first / fps <= c < last / fps]
        if config.pauses:
            w0 = max(self._frame_db.start, first - self._pause_margin)
            reference = max(self._frame_ref, LEVEL_FLOOR_DB)
            speech = speech_frames(self._frame_db.get(w0, self._frame_db.end), reference, fps)
            rest = pause_weights(speech, fps, config.pause_ramp_s)[first - w0 : last - w0]
            weights = np.maximum(weights, rest)
        weights = np.clip(weights, 0.0, 1.0)
        if not weights.any():
            self._closure_reason = self._closure_reason or "no bilabial or pause"
            return None
        if not self._fitted:
            self._closure_reason = "the mouth hardly moves"
            return None
        self._applied = True
        self._closed_frames += int((weights > 0.5).sum())
        return weights

    def _arkit(self, vertices: np.ndarray) -> np.ndarray:
        solver, columns = self._solver  # type: ignore[misc]
        solved = solver.solve(vertices - self.speaker.template[None]).weights
        out = np.zeros((len(vertices), len(ARKIT_52)), np.float32)
        out[:, columns] = solved
        return out

    def _trim(self) -> None:
        keep = max(0, self._g - self._left)
        if self._closure is not None and self._closure.pauses:
            keep = min(keep, frame_to_sample(self._frame_db.end, self.fps, SAMPLE_RATE))
        if self._phonetic and getattr(self._encoder, "level", False):
            keep = min(keep, self._hops_done * phonetic.HOP)
        self._audio.keep_from(keep)
        next_first = max(0, self._done - self._context)
        self._features.keep_from(int(math.floor((next_first + 0.5) * self._ratio - 0.5)) - 1)
        if self._closure is not None:
            earliest = (self._done + 0.5) / self.fps - self._closure.lag_s - self._closure.ramp_s
            rate = SAMPLE_RATE / phonetic.HOP
            self._mass.keep_from(int(math.floor(earliest * rate)) - 2 * phonetic.PEAK_REACH - 2)
            self._frame_db.keep_from(self._done - self._pause_margin)


def stream_frames(
    stream: FaceStream, audio: np.ndarray, chunk: int = SAMPLE_RATE
) -> Iterator[FaceFrames]:
    """Push ``audio`` through ``stream`` in chunks of ``chunk`` samples and flush: the frames,
    piece by piece (a whole file in bounded memory)."""
    audio = np.asarray(audio, dtype=np.float32)
    for start in range(0, audio.size, chunk):
        yield from stream.push_pieces(audio[start : start + chunk])
    yield from stream.flush_pieces()

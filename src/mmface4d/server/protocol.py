"""The ``/stream`` WebSocket protocol: its header, limits and close codes (no numpy, no torch).

A client opens ``ws://HOST:PORT/stream`` and sends, in order:

1. one JSON text message, the header::

       {"sample_rate": 16000, "format": "s16le", "outputs": ["arkit", "vertices"],
        "style": "S001-happy"}

   ``sample_rate`` (required): an integer from :data:`MIN_SAMPLE_RATE` to
   :data:`MAX_SAMPLE_RATE` Hz (other rates are resampled to the model's 16 kHz);
   ``format`` (required): ``s16le`` (16-bit signed little-endian PCM) or ``f32le`` (32-bit
   float little-endian, in [-1, 1]); mono, interleaved channels are not accepted;
   ``outputs`` (optional, default ``["arkit"]``): a non-empty list of ``arkit`` and
   ``vertices``; ``style`` (optional, default null: the model's default style): the id of one of
   the model's built-in speaking styles (``S001``, ``S001-happy``, ...; ``/health`` lists them),
   as ``mmface4d animate --style`` takes it (files are not accepted over the network). Any
   other key is refused.
2. binary messages of audio samples in that format, any length up to :data:`MAX_CHUNK_BYTES`
   (a whole number of samples);
3. the text message ``{"end": true}`` when the speech ends.

The server answers ``{"ready": true, ...}`` once the header is accepted, then per frame one
JSON text message ``{"frame": i, "t": seconds, "arkit": {name: weight, ...}}`` (with
``arkit`` when asked: the 52 names of ``ARKIT_52``, weights rounded to
:data:`ARKIT_DECIMALS` decimals) followed, when ``vertices`` is asked, by one binary message of
the frame's (V, 3) vertices as little-endian float32 (metres, the face model's frame: x the
subject's left, y up, z out of the face), and after the flush ``{"end": true, "frames": n}``;
then it closes with code 1000. Any fault closes the socket with one of :data:`CLOSE_CODES` and
a one-line reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Lowest and highest sample rate accepted, Hz (resampled to the model's 16 kHz).
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000
#: Sample formats: bytes per sample.
FORMATS = {"s16le": 2, "f32le": 4}
#: What a frame message may carry.
OUTPUTS = ("arkit", "vertices")
#: Keys of the header.
HEADER_KEYS = ("sample_rate", "format", "outputs", "style")
#: Largest binary message (audio chunk), bytes: 4 s of 16 kHz s16le, 0.68 s of 48 kHz f32le.
MAX_CHUNK_BYTES = 128 * 1024
#: Largest text message (header or end), bytes.
MAX_TEXT_BYTES = 4096
#: Decimals of the ARKit weights sent (the weights are in [0, 1]: within 5e-7 of the stream's).
ARKIT_DECIMALS = 6

#: Close codes the server uses and what they mean.
NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007
POLICY = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
TOO_SLOW = 4008
CLOSE_CODES = {
    NORMAL: 'the stream ended: every frame and {"end": true} were sent',
    GOING_AWAY: "the server is shutting down",
    UNSUPPORTED_DATA: "binary audio before the header, or a text message other than the end",
    INVALID_DATA: "malformed JSON, or audio bytes that are not whole samples or not finite",
    POLICY: "the header was refused (missing or unknown key, bad value, unsupported rate, "
    "format or style), or no header / no message in time",
    TOO_BIG: f"a message larger than {MAX_CHUNK_BYTES} bytes (binary) or {MAX_TEXT_BYTES} (text)",
    INTERNAL_ERROR: "the server failed on this stream (others are unaffected)",
    TRY_AGAIN_LATER: "the server has as many streams open as it allows",
    TOO_SLOW: "the client did not read its frames in time",
}


class ProtocolError(Exception):
    """A fault of a client: the socket is closed with ``code`` and the one-line ``reason``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class StreamHeader:
    """What a client asked for in its header (see the module doc)."""

    sample_rate: int
    format: str
    outputs: tuple[str, ...] = ("arkit",)
    style: str | None = None

    @property
    def sample_bytes(self) -> int:
        return FORMATS[self.format]


def parse_header(text: str, styles: tuple[str, ...] | None = None) -> StreamHeader:
    """The header of a stream, or a :class:`ProtocolError` naming the key at fault.

    Args:
        text: the client's first text message.
        styles: the built-in style ids ``style`` may name (None: any string).
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(INVALID_DATA, f"header: malformed JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProtocolError(POLICY, f"header: expected a JSON object, found {type(data).__name__}")
    unknown = sorted(set(data) - set(HEADER_KEYS))
    if unknown:
        raise ProtocolError(
            POLICY, f"header: unknown key {unknown[0]!r} (known: {', '.join(HEADER_KEYS)})"
        )
    for key in ("sample_rate", "format"):
        if key not in data:
            raise ProtocolError(POLICY, f"header: missing key {key!r}")
    rate = data["sample_rate"]
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise ProtocolError(POLICY, f"sample_rate: expected an integer (Hz), found {rate!r}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            POLICY,
            f"sample_rate: {rate} Hz unsupported; expected {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE} Hz",
        )
    fmt = data["format"]
    if fmt not in FORMATS:
        raise ProtocolError(
            POLICY, f"format: {_short(fmt)} unsupported; expected one of {', '.join(FORMATS)}"
        )
    outputs = data.get("outputs", ["arkit"])
    if (
        not isinstance(outputs, list)
        or not outputs
        or any(o not in OUTPUTS for o in outputs)
        or len(set(outputs)) != len(outputs)
    ):
        raise ProtocolError(
            POLICY, f"outputs: expected a non-empty list of {', '.join(OUTPUTS)}, found "
            f"{_short(outputs)}",
        )  # fmt: skip
    style = data.get("style")
    if style is not None and not isinstance(style, str):
        raise ProtocolError(POLICY, f"style: expected a built-in style id, found {_short(style)}")
    if style is not None and styles is not None and style not in styles:
        shown = ", ".join(styles[:8]) + (", ..." if len(styles) > 8 else "")
        raise ProtocolError(POLICY, f"style: {_short(style)} unknown; the model has {shown}")
    return StreamHeader(rate, fmt, tuple(o for o in OUTPUTS if o in outputs), style)


def is_end(text: str) -> bool:
    """Whether a text message after the header is ``{"end": true}`` (a :class:`ProtocolError`
    for malformed JSON or any other message)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(INVALID_DATA, f"message: malformed JSON ({exc})") from None
    if data == {"end": True}:
        return True
    raise ProtocolError(
        UNSUPPORTED_DATA, f'message: expected binary audio or {{"end": true}}, found {_short(data)}'
    )


def close_reason(reason: str) -> str:
    """A reason that fits a close frame (at most 123 bytes of UTF-8), on one line."""
    line = " ".join(str(reason).split())
    data = line.encode("utf-8")
    if len(data) <= 123:
        return line
    return data[:120].decode("utf-8", errors="ignore") + "..."


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

"""Faults of clients: each gets a close code and a one-line reason, and the server goes on
serving new clients."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest

from mmface4d.server import protocol as P

from .conftest import RATE, run, s16le, say, talk

GOOD = {"sample_rate": RATE, "format": "s16le"}


@pytest.fixture(scope="module")
def short() -> bytes:
    """0.4 s of speech, s16le."""
    return s16le(say("Bob.")[: int(0.4 * RATE)])


def assert_still_serves(server, short: bytes) -> None:
    got = run(talk(server.url, GOOD, [short]))
    assert got.code == P.NORMAL and got.end["frames"] == len(got.frames) > 0
    assert _health(server)["streams_open"] == 0


def _health(server) -> dict:
    async def get():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/health") as response:
                return await response.json()

    return run(get())


NAN = np.array([0.1, np.nan], "<f4").tobytes()

#: (case, header, messages after it, close code, a piece of the reason)
FAULTS = [
    ("malformed JSON header", '{"sample_rate": 16000,', [], P.INVALID_DATA, "malformed JSON"),
    ("header not an object", "[16000]", [], P.POLICY, "expected a JSON object"),
    ("unknown key", {**GOOD, "voice": "x"}, [], P.POLICY, "unknown key 'voice'"),
    ("missing format", {"sample_rate": RATE}, [], P.POLICY, "missing key 'format'"),
    ("rate too low", {**GOOD, "sample_rate": 4000}, [], P.POLICY, "4000 Hz unsupported"),
    ("rate not a number", {**GOOD, "sample_rate": "16k"}, [], P.POLICY, "sample_rate"),
    ("unsupported format", {**GOOD, "format": "mp3"}, [], P.POLICY, "format: 'mp3'"),
    ("bad outputs", {**GOOD, "outputs": ["mesh"]}, [], P.POLICY, "outputs"),
    ("unknown style", {**GOOD, "style": "S999"}, [], P.POLICY, "style: 'S999' unknown"),
    ("binary before the header", b"\x00\x00" * 100, [], P.UNSUPPORTED_DATA, "before the JSON"),
    ("text instead of audio", GOOD, ['{"pause": true}'], P.UNSUPPORTED_DATA, "expected binary"),
    ("malformed JSON later", GOOD, ["{end"], P.INVALID_DATA, "malformed JSON"),
    ("half a sample", GOOD, [b"\x00\x00\x00"], P.INVALID_DATA, "not a whole number"),
    ("NaN samples", {**GOOD, "format": "f32le"}, [NAN], P.INVALID_DATA, "NaN"),
    ("oversized chunk", GOOD, [b"\x00" * (P.MAX_CHUNK_BYTES + 2)], P.TOO_BIG, "larger"),
    ("oversized text", GOOD, [" " * (P.MAX_TEXT_BYTES + 1)], P.TOO_BIG, "text message"),
]


@pytest.mark.parametrize(
    "header, messages, code, reason", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
def test_a_faulty_client_gets_a_close_code_and_reason(
    server, short, header, messages, code, reason
) -> None:
    got = run(talk(server.url, header, messages, end=False))
    assert got.code == code, got.reason
    assert reason in got.reason and "\n" not in got.reason
    assert got.frames == []
    assert_still_serves(server, short)


def test_clients_that_vanish_mid_stream_leave_nothing_behind(server, short) -> None:
    long = s16le(say("Please remember to bring the map, the blue umbrella and my pen."))
    chunks = [long[i : i + 3200] for i in range(0, len(long), 3200)]
    for abort in (True, False):  # the TCP connection dropped; a close frame mid-stream
        got = run(talk(server.url, GOOD, chunks, end=False, leave_after=3, abort=abort))
        assert len(got.frames) == 3
    deadline = time.monotonic() + 10
    while _health(server)["streams_open"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_still_serves(server, short)


def test_waiting_too_long_for_the_header_or_audio_closes(server_with, short) -> None:
    # the idle wait leaves a loaded machine time to compute the frames of what was sent
    server = server_with(header_timeout_s=0.3, idle_timeout_s=2.0)
    got = run(talk(server.url, None, end=False))
    assert got.code == P.POLICY and "header: none within 0.3 s" in got.reason
    got = run(talk(server.url, GOOD, [short], end=False))
    assert got.code == P.POLICY and "no message for 2 s" in got.reason
    assert len(got.frames) > 0  # what the audio completed came first
    assert_still_serves(server, short)


def test_a_full_server_refuses_with_try_again_later(server_with, short) -> None:
    server = server_with(max_streams=1)

    async def two():
        first = asyncio.create_task(talk(server.url, GOOD, [short], pace_s=0.3))
        await asyncio.sleep(0.2)
        second = await talk(server.url, GOOD, [short])
        return await first, second

    first, second = run(two())
    assert first.code == P.NORMAL
    assert second.code == P.TRY_AGAIN_LATER and "server full: 1 streams open" in second.reason
    assert_still_serves(server, short)


def test_a_client_that_does_not_read_its_frames_is_closed(server_with, short) -> None:
    """Vertices come at 30 x 130 KB a second; a client that reads nothing fills the socket's
    buffers, the send waits and the server closes the stream after send_timeout_s."""
    server = server_with(send_timeout_s=1.0)
    audio = s16le(np.random.default_rng(0).normal(0, 0.1, 5 * RATE))
    header = {**GOOD, "outputs": ["vertices"]}

    async def never_reads():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/stream", max_msg_size=0) as ws:
                await ws.send_str(json.dumps(header))
                for i in range(0, len(audio), 16000):
                    await ws.send_bytes(audio[i : i + 16000])
                started = time.monotonic()
                while time.monotonic() - started < 30:  # not reading, until the server gave up
                    await asyncio.sleep(0.25)
                    if _health_now(server)["streams_open"] == 0:
                        break
                while True:  # now read what was buffered, then the close
                    msg = await ws.receive()
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        return msg

    msg = run(never_reads())
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == P.TOO_SLOW
    assert "client too slow" in msg.extra
    assert_still_serves(server, short)


def _health_now(server) -> dict:
    return server.state.health()


def test_a_client_sending_faster_than_real_time_is_slowed_not_dropped(server_with) -> None:
    """6 s of audio sent at once into a 16 KiB queue: the server reads only as its queue drains
    (TCP backpressure) for seconds, longer than its ping interval, and every frame still comes.
    (The interval leaves each single wait for room, one compute step, a second for its pong:
    a loaded machine's steps took over the 0.25 s that a 0.5 s interval allows.)"""
    server = server_with(queue_bytes=16 * 1024, heartbeat_s=2.0)
    audio = s16le(np.random.default_rng(1).normal(0, 0.1, 6 * RATE))
    chunks = [audio[i : i + 3200] for i in range(0, len(audio), 3200)]
    got = run(talk(server.url, GOOD, chunks))
    assert got.code == P.NORMAL and got.end["frames"] == len(got.frames) == 180


def test_streams_open_when_the_server_stops_get_going_away(server_with, short) -> None:
    server = server_with()

    async def stopped_mid_stream():
        stream = asyncio.create_task(talk(server.url, GOOD, [short] * 40, pace_s=0.1))
        while not server.state.streams_open:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.stop)
        return await stream

    got = run(stopped_mid_stream())
    assert got.code == P.GOING_AWAY and got.reason == "server shutting down"

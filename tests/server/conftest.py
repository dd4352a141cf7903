"""A real server on 127.0.0.1 (port 0) in a background thread, the shipped model loaded once,
and a small client for the tests (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest

from mmface4d.server.app import ServerSettings, ServerState, bound_port, start

RATE = 16_000


class RunningServer:
    """:func:`mmface4d.server.app.start` on its own event loop and thread."""

    def __init__(self, state: ServerState):
        self.state = state
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = self._call(start(state, "127.0.0.1", 0))
        self.port = bound_port(self.runner)
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def state() -> ServerState:
    """The shipped model, loaded and warmed up once (sets torch to one thread)."""
    state = ServerState.load()
    yield state
    state.close()


@pytest.fixture(scope="session")
def server(state) -> RunningServer:
    running = RunningServer(state)
    yield running
    running.stop()


@pytest.fixture
def server_with(state):
    """Another server with other limits, sharing the loaded animator."""
    started: list[RunningServer] = []

    def make(**settings) -> RunningServer:
        running = RunningServer(ServerState(state.animator, ServerSettings(**settings)))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
        running.state.close()


def say(text: str) -> np.ndarray:
    """(N,) float32 16 kHz speech of the synthetic voice."""
    from mmface4d.synth.speech import EspeakEngine

    return np.asarray(EspeakEngine(sample_rate=RATE).synthesize(text, "en").audio, np.float32)


def s16le(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def from_s16le(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768.0)


@dataclass
class Received:
    """What a client got: the ready message, the frame messages, the vertex messages, the end
    message and the close code and reason."""

    ready: dict | None = None
    frames: list[dict] = field(default_factory=list)
    vertices: list[bytes] = field(default_factory=list)
    end: dict | None = None
    code: int | None = None
    reason: str = ""
    order: list[str] = field(default_factory=list)


async def talk(
    url: str,
    header: dict | str | bytes | None,
    chunks: list[bytes | str] = (),
    end: bool = True,
    pace_s: float = 0.0,
    leave_after: int | None = None,
    abort: bool = False,
) -> Received:
    """Open /stream, send the header, the chunks (binary; str as text) and the end, reading
    everything the server sends until it closes, or leaving after ``leave_after`` frames (a
    close frame, or with ``abort`` the TCP connection dropped without one: a vanished client)."""
    got = Received()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/stream", max_msg_size=0) as ws:

            async def send() -> None:
                try:
                    if header is not None:
                        if isinstance(header, bytes):
                            await ws.send_bytes(header)
                        else:
                            text = header if isinstance(header, str) else json.dumps(header)
                            await ws.send_str(text)
                    for chunk in chunks:
                        if isinstance(chunk, str):
                            await ws.send_str(chunk)
                        else:
                            await ws.send_bytes(chunk)
                        if pace_s:
                            await asyncio.sleep(pace_s)
                    if end:
                        await ws.send_str(json.dumps({"end": True}))
                except (ConnectionError, RuntimeError):
                    pass  # the server closed first

            sender = asyncio.create_task(send())
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "ready" in data:
                        got.ready = data
                    elif "frame" in data:
                        got.frames.append(data)
                    elif "end" in data:
                        got.end = data
                    got.order.append("text")
                    if leave_after is not None and len(got.frames) >= leave_after:
                        sender.cancel()
                        if abort:
                            ws._conn.transport.abort()  # no close frame: the client vanished
                        return got
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    got.vertices.append(msg.data)
                    got.order.append("binary")
                else:
                    got.code = ws.close_code
                    got.reason = (msg.extra or "") if msg.type == aiohttp.WSMsgType.CLOSE else ""
                    break
            sender.cancel()
    return got


def run(coroutine):
    return asyncio.run(coroutine)

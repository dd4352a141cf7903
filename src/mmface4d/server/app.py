"""``mmface4d serve``: live speech to face frames over WebSocket, and the browser viewer's files.

Routes (aiohttp):

- ``GET /stream``: the WebSocket protocol of :mod:`mmface4d.server.protocol`;
- ``GET /``: the viewer page (``static/index.html`` of this package), or a page saying what is
  missing (the page, or three.js: ``make setup`` with npm);
- ``GET /static/{path}``: this package's ``static`` folder;
- ``GET /vendor/three/{path}``: the ``three`` npm package (``$MMFACE4D_WEB_MODULES/three``,
  default ``<repo>/web/node_modules/three``);
- ``GET /face.glb``: the served face (the model's neutral face with its 52 ARKit morph targets,
  :func:`mmface4d.export.gltf.write_glb`), which the page animates with the streamed weights;
- ``GET /health``: JSON: ``status``, ``version``, ``streams_open``, ``max_streams``, ...

**Threads.** The animator is loaded once and shared read-only; each stream has its own
:class:`~mmface4d.server.session.StreamSession`. The compute runs off the event loop on a
bounded pool of ``workers`` threads (default: the cores this process may use), one call per
stream at a time. ``torch.set_num_threads(1)`` is set for the whole process (the setting is
process-wide, so it cannot be per stream): every step runs on one pool thread with one torch
thread, and the pool's size is the parallelism. The phoneme recogniser's native engine and
numpy's BLAS run on the calling thread too (the ``serve`` verb sets ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1 before numpy loads, unless set).

**Bounds.** Per stream: at most :attr:`ServerSettings.queue_bytes` of audio received and not
yet computed (the server then stops reading the socket: TCP backpressure slows a client that
sends faster than real time), one compute in flight, the socket's send buffer (aiohttp's
writer limit, 256 KiB), and a send that does not finish within ``send_timeout_s`` closes the
stream (code 4008): a client that never reads cannot hold memory. At most ``max_streams``
streams (1013 beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from mmface4d import __version__
from mmface4d.errors import InputError
from mmface4d.server import protocol as P
from mmface4d.server.session import StreamSession

if TYPE_CHECKING:
    from mmface4d.animate.animator import Animator, Speaker

log = logging.getLogger("mmface4d.server")

#: The viewer's own files (written by the viewer's part of the project).
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Environment variable naming the ``node_modules`` folder that holds ``three``.
WEB_MODULES_ENV = "MMFACE4D_WEB_MODULES"
#: Where ``make setup`` installs the viewer's npm packages in a checkout.
DEFAULT_WEB_MODULES = Path(__file__).resolve().parents[3] / "web" / "node_modules"

#: Content types set by suffix (module scripts need a JavaScript type); others are guessed.
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".glb": "model/gltf-binary",
    ".wasm": "application/wasm",
}


def web_modules() -> Path:
    """The ``node_modules`` folder the viewer's three.js is served from."""
    env = os.environ.get(WEB_MODULES_ENV)
    return Path(env) if env else DEFAULT_WEB_MODULES


@dataclass(frozen=True)
class ServerSettings:
    """Limits of a server (module doc).

    Attributes:
        max_streams: streams open at once; more are closed with 1013.
        workers: compute threads (default: the cores this process may use).
        queue_bytes: audio bytes of a stream received and not yet computed before the server
            stops reading its socket.
        header_timeout_s: the header must come within this after the connection opens.
        idle_timeout_s: a stream that sends nothing for this long is closed (1008).
        send_timeout_s: a frame that cannot be sent for this long closes the stream (4008).
        heartbeat_s: WebSocket ping interval (a peer that does not answer is dropped).
    """

    max_streams: int = 8
    workers: int | None = None
    queue_bytes: int = 1 << 20
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    send_timeout_s: float = 10.0
    heartbeat_s: float = 20.0

    def validate(self) -> None:
        """An :class:`InputError` naming a setting out of range."""
        for name in ("max_streams", "queue_bytes", "workers"):
            value = getattr(self, name)
            if name == "workers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = f"--{name.replace('_', '-')}" if name != "queue_bytes" else name
                raise InputError(f"{flag}: expected a positive integer, found {value!r}")
        for name in ("header_timeout_s", "idle_timeout_s", "send_timeout_s", "heartbeat_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < 1e6):
                raise InputError(f"{name}: expected a positive number of seconds, found {value!r}")

    @property
    def threads(self) -> int:
        return self.workers or len(os.sched_getaffinity(0))


class ServerState:
    """What every connection shares: the animator (read only), its prepared speakers, the
    compute pool and the counters.

    Args:
        animator: the loaded model.
        settings: limits.
    """

    def __init__(self, animator: Animator, settings: ServerSettings | None = None):
        import torch

        self.settings = settings = settings or ServerSettings()
        settings.validate()
        torch.set_num_threads(1)  # process-wide: one torch thread per compute call (module doc)
        self.animator = animator
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="mmface4d-stream")
        self.styles = tuple(animator.styles)
        self.default_style = animator.default_style
        self.streams_open = 0
        self.streams_total = 0
        self.sockets: set[web.WebSocketResponse] = set()
        self._speaker_lock = threading.Lock()
        self._glb: tuple[bytes, bytes] | None = None
        self._glb_lock = threading.Lock()
        self.started = time.time()

    @classmethod
    def load(cls, model: str = "default", settings: ServerSettings | None = None) -> ServerState:
        """Load the model once and warm it up (:meth:`warm_up`)."""
        from mmface4d.animate.api import load_animator

        state = cls(load_animator(model), settings)
        state.warm_up()
        return state

    def speaker(self, style: str | None) -> Speaker:
        """The prepared built-in speaker of a style (the face model's mean face), prepared once
        and shared read-only."""
        style = style or self.default_style
        if style is None:
            raise InputError(f"style: model {self.animator.name} ships no built-in style")
        with self._speaker_lock:  # Animator.builtin_speaker fills a dict
            return self.animator.builtin_speaker(None, style)

    def warm_up(self) -> None:
        """Load what the first stream would (the recogniser, the ARKit solver, the default
        speaker) and build the face's glTF, so that no client pays for it."""
        import numpy as np

        from mmface4d.server.protocol import StreamHeader

        header = StreamHeader(16000, "f32le", ("arkit", "vertices"), None)
        session = StreamSession(self.animator, self.speaker(None), header)
        noise = np.random.default_rng(0).normal(0.0, 0.05, 16000).astype("<f4")
        session.push([noise.tobytes()])
        session.flush()
        self.face_glb()

    def open_session(self, header: P.StreamHeader) -> StreamSession:
        """A new client's session (on a pool thread)."""
        if "arkit" in header.outputs and self.animator.arkit_solver() is None:
            raise P.ProtocolError(
                P.POLICY, "outputs: 'arkit' unavailable: the model's face model has no ARKit shapes"
            )
        return StreamSession(self.animator, self.speaker(header.style), header)

    def face_glb(self) -> tuple[bytes, bytes]:
        """The served face as binary glTF, and gzipped (7.4 MB, 2.0 MB for the shipped model):
        the neutral face streams animate, its triangles and colours, and the face model's ARKit
        shapes as morph targets (weights 0); built once."""
        import gzip

        with self._glb_lock:
            if self._glb is None:
                data = _face_glb(self.animator, self.speaker(None).template.copy())
                self._glb = (data, gzip.compress(data, 6, mtime=0))
            return self._glb

    def health(self) -> dict[str, Any]:
        from mmface4d.animate.streaming import LIVE

        return {
            "status": "ok",
            "version": __version__,
            "streams_open": self.streams_open,
            "streams_served": self.streams_total,
            "max_streams": self.settings.max_streams,
            "workers": self.settings.threads,
            "model": self.animator.name,
            "fps": self.animator.fps,
            "vertices": self.animator.num_vertices,
            "lookahead_s": LIVE.lookahead_s,
            "styles": list(self.styles),
            "default_style": self.default_style,
            "uptime_s": round(time.time() - self.started, 1),
        }

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def release_memory(self) -> None:
        """Give the memory freed by ended streams back to the system (glibc's ``malloc_trim``:
        the pool's threads each allocate from their own arena, whose freed pages glibc keeps
        otherwise, so the process's RSS would stay at its peak); elsewhere nothing."""
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def _face_glb(animator: Animator, template: Any) -> bytes:
    import numpy as np

    from mmface4d.export.arkit import arkit_basis
    from mmface4d.export.gltf import MorphBasis, write_glb

    fm = animator.face_model
    if fm is None:
        raise InputError(f"model {animator.name} has no face model to show")
    basis = arkit_basis(fm)
    if basis is None:
        raise InputError(f"face model {fm.name} has no ARKit shapes to animate")
    weights = np.zeros((1, len(basis.names)), np.float32)
    morph = MorphBasis(basis.targets, list(basis.names), weights, 0.0, 0.0, "arkit")
    colors = np.clip(fm.albedo_mean, 0.0, 1.0) if fm.albedo_mean is not None else None
    with tempfile.TemporaryDirectory(prefix="mmface4d-serve-") as folder:
        path = write_glb(
            Path(folder) / "face.glb", template, fm.faces, morph, animator.fps, colors, "face"
        )
        return path.read_bytes()


# ---------------------------------------------------------------------------- the stream


_END = object()
#: Bytes a queued chunk counts for besides its samples (the object and its place in the queue),
#: so that a flood of tiny messages is bounded too.
_CHUNK_OVERHEAD = 64


class _AudioQueue:
    """Audio chunks of one stream not yet computed, at most ``limit`` bytes (then :meth:`put`
    waits: the reader stops reading the socket)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.items: deque[Any] = deque()
        self.size = 0
        self._changed = asyncio.Condition()

    async def put(self, item: Any) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.size < self.limit)
            self.items.append(item)
            self.size += len(item) + _CHUNK_OVERHEAD if isinstance(item, bytes) else 0
            self._changed.notify_all()

    async def take(self) -> list[Any]:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self.items))
            items = list(self.items)
            self.items.clear()
            self.size = 0
            self._changed.notify_all()
            return items


class _Gone(Exception):
    """The client went away."""


class _Connection:
    """One ``/stream`` connection: the header, then a reader and a worker task."""

    def __init__(self, state: ServerState, ws: web.WebSocketResponse, peer: str):
        self.state, self.ws, self.peer = state, ws, peer
        self.queue = _AudioQueue(state.settings.queue_bytes)
        self.loop = asyncio.get_running_loop()

    async def run(self) -> tuple[int, str]:
        """Serve the stream; (close code, reason) it ended with (0: the client left)."""
        tasks: list[asyncio.Task] = []
        try:
            header = await self._header()
            if header is None:
                return 0, "left before the header"
            session = await self._compute(self.state.open_session, header)
            await self._send([json.dumps(self._ready(header, session))])
            reader = asyncio.create_task(self._read(header))
            worker = asyncio.create_task(self._work(session))
            tasks = [reader, worker]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # the worker ends after the end only, or with a fault; the reader at the end, when
            # the client leaves, or with a fault (raised here)
            if not worker.done() and reader.result() != "end":
                return 0, "left mid-stream"
            await worker  # its fault, or the flush and the end message
            await self._close(P.NORMAL, f"stream ended: {session.frames_sent} frames")
            return P.NORMAL, "stream ended"
        except P.ProtocolError as exc:
            await self._close(exc.code, exc.reason)
            return exc.code, exc.reason
        except _Gone:
            return 0, "left mid-stream"
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    def _ready(self, header: P.StreamHeader, session: StreamSession) -> dict[str, Any]:
        stream = session.stream
        return {
            "ready": True,
            "fps": stream.fps,
            "vertices": self.state.animator.num_vertices,
            "sample_rate": header.sample_rate,
            "format": header.format,
            "outputs": list(header.outputs),
            "style": header.style or self.state.default_style,
            "lookahead_s": stream.settings.lookahead_s,
        }

    async def _header(self) -> P.StreamHeader | None:
        timeout = self.state.settings.header_timeout_s
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            raise P.ProtocolError(P.POLICY, f"header: none within {timeout:g} s") from None
        if msg.type == WSMsgType.BINARY:
            raise P.ProtocolError(P.UNSUPPORTED_DATA, "binary audio before the JSON header")
        if msg.type != WSMsgType.TEXT:
            return None
        self._check_text(msg.data)
        return P.parse_header(msg.data, self.state.styles)

    @staticmethod
    def _check_text(text: str) -> None:
        if len(text) > P.MAX_TEXT_BYTES:
            raise P.ProtocolError(
                P.TOO_BIG, f"text message of {len(text)} characters; at most {P.MAX_TEXT_BYTES}"
            )

    async def _read(self, header: P.StreamHeader) -> str:
        """Audio chunks into the queue until the end (``"end"``) or the client leaves."""
        idle = self.state.settings.idle_timeout_s
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), idle)
            except TimeoutError:
                raise P.ProtocolError(P.POLICY, f"no message for {idle:g} s") from None
            if msg.type == WSMsgType.BINARY:
                data = msg.data
                if len(data) % header.sample_bytes:
                    raise P.ProtocolError(
                        P.INVALID_DATA,
                        f"audio: {len(data)} bytes is not a whole number of {header.format} "
                        f"samples ({header.sample_bytes} bytes each)",
                    )
                if data:
                    await self.queue.put(data)
            elif msg.type == WSMsgType.TEXT:
                self._check_text(msg.data)
                if P.is_end(msg.data):
                    await self.queue.put(_END)
                    return "end"
            else:  # CLOSE, CLOSING, CLOSED; ERROR (aiohttp closed the socket: _Socket.close)
                return "closed"

    async def _work(self, session: StreamSession) -> None:
        """Compute what the queue holds, send the frames; after the end, flush."""
        while True:
            items = await self.queue.take()
            end = items[-1] is _END
            chunks = [item for item in items if item is not _END]
            if chunks:
                await self._send(await self._compute(session.push, chunks))
            if end:
                await self._send(await self._compute(session.flush))
                await self._send([json.dumps({"end": True, "frames": session.frames_sent})])
                return

    async def _compute(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self.loop.run_in_executor(self.state.pool, function, *args)
        except P.ProtocolError:
            raise
        except InputError as exc:
            raise P.ProtocolError(P.INVALID_DATA, str(exc)) from None
        except Exception as exc:
            log.exception("stream %s: internal error", self.peer)
            raise P.ProtocolError(
                P.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"
            ) from None

    async def _send(self, messages: list[str | bytes]) -> None:
        timeout = self.state.settings.send_timeout_s
        for message in messages:
            if self.ws.closed:
                raise _Gone
            send = (
                self.ws.send_str(message)
                if isinstance(message, str)
                else self.ws.send_bytes(message)
            )
            try:
                await asyncio.wait_for(send, timeout)
            except TimeoutError:
                raise P.ProtocolError(
                    P.TOO_SLOW, f"client too slow: a frame could not be sent for {timeout:g} s"
                ) from None
            except (ConnectionError, RuntimeError):
                raise _Gone from None

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=P.close_reason(reason).encode("utf-8"))


class _Socket(web.WebSocketResponse):
    """aiohttp's WebSocket, whose own close for a message over ``max_msg_size`` (1009) says
    why."""

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if code == P.TOO_BIG and not message:
            message = f"message larger than {P.MAX_CHUNK_BYTES} bytes".encode()
        return await super().close(code=code, message=message, drain=drain)


async def _stream(request: web.Request) -> web.WebSocketResponse:
    state: ServerState = request.app[STATE]
    settings = state.settings
    ws = _Socket(
        max_msg_size=P.MAX_CHUNK_BYTES,
        heartbeat=settings.heartbeat_s,
        compress=False,
        timeout=5.0,
    )
    await ws.prepare(request)
    peer = str(request.remote)
    if state.streams_open >= settings.max_streams:
        await ws.close(
            code=P.TRY_AGAIN_LATER,
            message=P.close_reason(
                f"server full: {state.streams_open} streams open; try again later"
            ).encode(),
        )
        return ws
    state.streams_open += 1
    state.streams_total += 1
    state.sockets.add(ws)
    started = time.perf_counter()
    try:
        code, reason = await _Connection(state, ws, peer).run()
        log.info(
            "stream from %s: %s (%s) after %.1f s", peer, code or "gone", reason,
            time.perf_counter() - started,
        )  # fmt: skip
    except Exception:  # never take the server down
        log.exception("stream from %s: internal error", peer)
        with contextlib.suppress(Exception):
            await ws.close(code=P.INTERNAL_ERROR, message=b"internal error")
    finally:
        state.streams_open -= 1
        state.sockets.discard(ws)
        if state.streams_open == 0:  # the last stream ended: its memory back to the system
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(state.pool, state.release_memory)
    return ws


# ---------------------------------------------------------------------------- files


_MISSING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mmface4d serve</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>mmface4d serve</h1>
<p>{message}</p>
<p>The server itself works: stream speech over the WebSocket <code>/stream</code> (protocol in
the README), fetch the face from <code>/face.glb</code>, check <code>/health</code>.</p>
</body></html>
"""


def _page(message: str, status: int) -> web.Response:
    return web.Response(
        text=_MISSING_PAGE.format(message=message), status=status, content_type="text/html"
    )


def _file_response(path: Path, cache: bool = True) -> web.FileResponse:
    headers = {} if cache else {"Cache-Control": "no-cache"}
    kind = _CONTENT_TYPES.get(path.suffix.lower())
    if kind is not None:
        headers["Content-Type"] = kind
    return web.FileResponse(path, headers=headers)


def _file_under(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` (no way out through ``..`` or links)."""
    try:
        base = root.resolve(strict=True)
        target = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if base not in target.parents or not target.is_file():
        return None
    return target


async def _index(request: web.Request) -> web.StreamResponse:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        return _page("The viewer page is not part of this installation.", 503)
    if _file_under(web_modules(), "three/package.json") is None:
        return _page(
            "The viewer needs three.js, installed by the project's set-up: run <code>make setup"
            "</code> in the repository (it needs npm), or point <code>"
            f"{WEB_MODULES_ENV}</code> at a <code>node_modules</code> folder that holds "
            f"<code>three</code> (looked in {web_modules()}).",
            503,
        )
    return _file_response(index, cache=False)


async def _static(request: web.Request) -> web.StreamResponse:
    path = _file_under(STATIC_DIR, request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text=f"no such file: /static/{request.match_info['path']}")
    return _file_response(path, cache=False)


async def _three(request: web.Request) -> web.StreamResponse:
    path = _file_under(web_modules() / "three", request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(
            text=f"no such file: /vendor/three/{request.match_info['path']} (three.js is "
            f"installed by `make setup` with npm, looked in {web_modules() / 'three'})"
        )
    return _file_response(path)


async def _face(request: web.Request) -> web.Response:
    state: ServerState = request.app[STATE]
    data, gzipped = await asyncio.get_running_loop().run_in_executor(state.pool, state.face_glb)
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        data = gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=data, content_type="model/gltf-binary", headers=headers)


async def _health(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].health())


STATE = web.AppKey("state", ServerState)


def create_app(state: ServerState) -> web.Application:
    """The aiohttp application of a loaded :class:`ServerState` (module doc)."""
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/", _index)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/static/{path:.+}", _static)
    app.router.add_get("/vendor/three/{path:.+}", _three)
    app.router.add_get("/face.glb", _face)
    app.router.add_get("/health", _health)

    async def going_away(app: web.Application) -> None:
        for ws in list(state.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=P.GOING_AWAY, message=b"server shutting down")

    app.on_shutdown.append(going_away)
    return app


async def start(state: ServerState, host: str = "127.0.0.1", port: int = 8765) -> web.AppRunner:
    """Start serving on ``host:port`` (0: any free port); the runner (``runner.addresses``
    gives the bound address; ``await runner.cleanup()`` stops it)."""
    runner = web.AppRunner(
        create_app(state), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InputError(
            f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})"
        ) from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a started runner listens on."""
    return int(runner.addresses[0][1])


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    model: str = "default",
    settings: ServerSettings | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Load the model and serve until interrupted (``mmface4d serve``); ``announce`` gets the
    line that gives the address (default: printed, flushed)."""
    announce = announce or functools.partial(print, flush=True)
    if isinstance(port, bool) or not (isinstance(port, int) and 0 <= port <= 65535):
        raise InputError(f"--port: expected 0 to 65535, found {port!r}")
    settings = settings or ServerSettings()
    settings.validate()  # before the model loads
    state = ServerState.load(model, settings)

    async def main() -> None:
        runner = await start(state, host, port)
        shown = f"[{host}]" if ":" in host else host
        announce(
            f"mmface4d serve: http://{shown}:{bound_port(runner)}/ (WebSocket /stream, "
            f"{state.settings.threads} compute threads, at most {state.settings.max_streams} "
            "streams); Ctrl-C stops"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # open streams get 1001, then exit
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        state.close()

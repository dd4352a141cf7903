"""``mmface4d serve``: live speech to face frames over WebSocket, and the browser viewer."""

from __future__ import annotations

import argparse
import os

#: Numerical libraries' threads: one per compute call (the server's parallelism is its pool of
#: stream threads); set before numpy and torch load, unless the user set them.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _serve(args: argparse.Namespace) -> None:
    import logging

    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    logging.basicConfig(level=logging.INFO, format="mmface4d serve: %(message)s")
    from mmface4d.server.app import ServerSettings, serve

    settings = ServerSettings(max_streams=args.max_streams, workers=args.workers)
    serve(args.host, args.port, model=args.model, settings=settings)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "serve",
        help="serve live speech-to-face over WebSocket (/stream) and the browser viewer (/)",
        description="Load the model once and serve: WebSocket /stream takes a JSON header and "
        "binary audio chunks and answers one JSON message per face frame (52 ARKit weights, "
        "optionally the vertices as float32); GET / is the browser viewer, /face.glb the face, "
        "/health the state. Protocol: README and docs/SERVER.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any)")
    p.add_argument(
        "--model", default="default", help="animator .pt or run folder (default: shipped)"
    )
    p.add_argument(
        "--max-streams", type=int, default=8, help="streams open at once (default 8; more: 1013)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="compute threads, one torch thread each (default: the cores available)",
    )
    p.set_defaults(run=_serve)

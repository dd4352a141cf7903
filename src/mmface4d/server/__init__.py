"""The streaming server (``mmface4d serve``): live speech in over a WebSocket, face frames out
(ARKit weights and vertices), and the files of the browser viewer.

- :mod:`mmface4d.server.protocol`: the ``/stream`` protocol: header, limits, close codes
  (light: no numpy);
- :mod:`mmface4d.server.session`: one client's stream (decoding, resampling, its
  :class:`~mmface4d.animate.streaming.FaceStream`, its messages);
- :mod:`mmface4d.server.app`: the aiohttp application, the shared state and :func:`serve`.

See ``docs/SERVER.md``.
"""

from __future__ import annotations

from mmface4d._optional import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.server.app": ("ServerSettings", "ServerState", "create_app", "serve", "start"),
        "mmface4d.server.protocol": ("StreamHeader", "ProtocolError", "parse_header"),
    },
)

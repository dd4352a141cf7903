"""A self-contained HTML viewer of a glTF face animation: ``NAME_viewer.html`` beside ``NAME.glb``.

One file that a browser opens from disk (``file://``, offline): the ``.glb`` and the speech are
embedded in base64, and three.js (the ``three`` npm package that ``make setup`` installs into
``web/node_modules``; ``MMFACE4D_WEB_MODULES`` names another ``node_modules`` folder) is inlined
at write time as ``data:`` modules behind an import map, because a page opened from disk may not
load modules from other files. The page renders the face with WebGL (the live page's
``face.js``, from ``mmface4d/server/static``, read here as data) and plays the glTF's morph
weight animation in step with the speech (Web Audio's clock). Without three.js installed the
viewer is skipped: :func:`write_viewer` returns None and warns once (:class:`ViewerSkippedWarning`).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import warnings
from pathlib import Path

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

#: The environment variable naming the ``node_modules`` folder that holds ``three``.
WEB_MODULES_ENV = "MMFACE4D_WEB_MODULES"
#: The speech embedded at most (longer speech gives a viewer without sound): 30 minutes of
#: 16 kHz PCM16 is 58 MB, 77 MB in base64.
MAX_EMBEDDED_AUDIO_BYTES = 60_000_000


class ViewerSkippedWarning(UserWarning):
    """The HTML viewer was not written (three.js is not installed)."""


def web_modules_dir() -> Path:
    """The ``node_modules`` folder with the browser's packages: ``$MMFACE4D_WEB_MODULES``, else
    ``web/node_modules`` of the source checkout (``make setup`` installs it there)."""
    configured = os.environ.get(WEB_MODULES_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[3] / "web" / "node_modules"


def three_dir() -> Path | None:
    """The installed ``three`` package (its ``build/three.module.js`` present), or None."""
    folder = web_modules_dir() / "three"
    return folder if (folder / "build" / "three.module.js").is_file() else None


def static_dir() -> Path:
    """The browser files of the viewer (``index.html``, ``face.js``, ...) inside the package."""
    return Path(__file__).resolve().parents[1] / "server" / "static"


#: ``from '...'``, ``import '...'`` and ``import('...')`` with a relative or bare ``three``
#: specifier; a match in a comment is harmless (rewritten consistently, unresolved ones kept).
_SPECIFIER = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}/[^'"\n]+|three)\2""")
#: The entry points the viewer imports, as the import map names them.
_ENTRIES = {
    "three": "build/three.module.js",
    "three/addons/loaders/GLTFLoader.js": "examples/jsm/loaders/GLTFLoader.js",
}


def _data_url(source: str) -> str:
    return "data:text/javascript;base64," + base64.b64encode(source.encode()).decode("ascii")


def three_import_map(three: Path) -> dict[str, str]:
    """An import map whose entries are ``data:`` modules: three.js and GLTFLoader with every file
    they import (relative imports rewritten to bare ``three/<path>`` names the map resolves)."""
    key_of = {rel: key for key, rel in _ENTRIES.items()}
    imports: dict[str, str] = {}
    pending = list(_ENTRIES.values())
    while pending:
        rel = pending.pop()
        key = key_of.setdefault(rel, f"three/{rel}")
        if key in imports:
            continue
        source = (three / rel).read_text(encoding="utf-8")

        def rewrite(match: re.Match[str], rel: str = rel) -> str:
            prefix, quote, spec = match.groups()
            if spec == "three":
                return match.group(0)
            target = os.path.normpath(os.path.join(os.path.dirname(rel), spec)).replace(os.sep, "/")
            if target.startswith("..") or not (three / target).is_file():
                return match.group(0)
            pending.append(target)
            return f"{prefix}{quote}{key_of.setdefault(target, f'three/{target}')}{quote}"

        imports[key] = _data_url(_SPECIFIER.sub(rewrite, source))
    return imports


def write_viewer(
    path: str | os.PathLike[str],
    glb: str | os.PathLike[str] | bytes,
    audio: str | os.PathLike[str] | bytes | None = None,
    title: str = "face",
) -> Path | None:
    """Write the self-contained HTML viewer of a ``.glb`` animation (and its speech).

    Args:
        path: the ``.html`` to write (atomically).
        glb: the ``.glb`` (a path or its bytes): a mesh with morph targets and, optionally, an
            animation of their weights.
        audio: the speech (a WAV path or bytes; any format the browser decodes) or None; speech
            longer than :data:`MAX_EMBEDDED_AUDIO_BYTES` is left out (the face plays silent).
        title: the page's title.

    Returns:
        ``path``, or None (with a :class:`ViewerSkippedWarning`) when three.js is not installed.
    """
    three = three_dir()
    if three is None:
        warnings.warn(
            f"{Path(path).name} skipped: three.js is not installed in {web_modules_dir()} "
            f"(run `make setup` with npm, or set {WEB_MODULES_ENV})",
            ViewerSkippedWarning,
            stacklevel=2,
        )
        return None
    glb_bytes = glb if isinstance(glb, bytes) else Path(glb).read_bytes()
    if glb_bytes[:4] != b"glTF":
        raise InputError(f"{glb if not isinstance(glb, bytes) else 'glb'}: not a binary glTF")
    audio_bytes = audio if isinstance(audio, bytes) or audio is None else Path(audio).read_bytes()
    if audio_bytes is not None and len(audio_bytes) > MAX_EMBEDDED_AUDIO_BYTES:
        audio_bytes = None
    imports = three_import_map(three)
    face_js = (static_dir() / "face.js").read_text(encoding="utf-8")
    imports["mmface4d/face.js"] = _data_url(face_js)
    template = (static_dir() / "viewer.html").read_text(encoding="utf-8")
    parts = {
        "TITLE": html.escape(title),
        "STYLE": (static_dir() / "style.css").read_text(encoding="utf-8"),
        "IMPORT_MAP": json.dumps({"imports": imports}),
        "SCRIPT": (static_dir() / "viewer.js").read_text(encoding="utf-8"),
    }
    page = re.sub(r"/\*@(TITLE|STYLE|IMPORT_MAP|SCRIPT)@\*/", lambda m: parts[m.group(1)], template)
    head, tail = page.split("<!--@DATA@-->")
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(head)
        _write_base64(f, "face-glb", "model/gltf-binary", glb_bytes)
        if audio_bytes is not None:
            _write_base64(f, "speech", "audio/wav", audio_bytes)
        f.write(tail)
    return target


def _write_base64(f, element_id: str, mime: str, data: bytes, block: int = 3 * 2**20) -> None:
    """A ``<script type="application/octet-stream">`` holding ``data`` in base64 (no ``<``)."""
    f.write(f'<script type="application/octet-stream" id="{element_id}" data-type="{mime}">')
    for start in range(0, len(data), block):
        f.write(base64.b64encode(data[start : start + block]).decode("ascii"))
    f.write("</script>\n")

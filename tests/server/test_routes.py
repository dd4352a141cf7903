"""The viewer's routes: the page (or what is missing), its static files, three.js from the npm
folder, the face as glTF; and the verb's argument errors."""

from __future__ import annotations

import aiohttp
import numpy as np
import pygltflib
import pytest

from mmface4d import cli
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.server import app as server_app

from .conftest import run


def get(url: str) -> tuple[int, str, bytes]:
    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return response.status, response.content_type, await response.read()

    return run(fetch())


@pytest.fixture
def viewer(tmp_path, monkeypatch):
    """A static folder with a page and a script, and a node_modules with three."""
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>viewer</title>")
    (static / "js" / "main.js").write_text("export const x = 1;")
    three = tmp_path / "node_modules" / "three"
    (three / "build").mkdir(parents=True)
    (three / "package.json").write_text('{"name": "three"}')
    (three / "build" / "three.module.js").write_text("export const REVISION = '0';")
    (tmp_path / "secret.txt").write_text("not served")
    monkeypatch.setattr(server_app, "STATIC_DIR", static)
    monkeypatch.setenv(server_app.WEB_MODULES_ENV, str(tmp_path / "node_modules"))
    return tmp_path


def test_the_page_its_files_and_three_js_are_served(server, viewer) -> None:
    status, kind, body = get(f"{server.url}/")
    assert (status, kind) == (200, "text/html") and b"<title>viewer</title>" in body
    status, kind, body = get(f"{server.url}/static/js/main.js")
    assert (status, kind, body) == (200, "text/javascript", b"export const x = 1;")
    status, kind, _ = get(f"{server.url}/vendor/three/build/three.module.js")
    assert (status, kind) == (200, "text/javascript")
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/nope.js"):
        assert get(f"{server.url}{path}")[0] == 404, path
    assert get(f"{server.url}/vendor/three/../../secret.txt")[0] == 404


def test_without_three_js_the_page_says_to_run_make_setup(server, viewer, monkeypatch) -> None:
    monkeypatch.setenv(server_app.WEB_MODULES_ENV, str(viewer / "missing"))
    status, kind, body = get(f"{server.url}/")
    assert (status, kind) == (503, "text/html") and b"make setup" in body and b"npm" in body
    status, _, body = get(f"{server.url}/vendor/three/build/three.module.js")
    assert status == 404 and b"make setup" in body
    monkeypatch.setattr(server_app, "STATIC_DIR", viewer / "none")
    status, _, body = get(f"{server.url}/")
    assert status == 503 and b"/stream" in body


def test_the_face_is_a_glb_with_the_52_arkit_morph_targets(server, state) -> None:
    status, kind, body = get(f"{server.url}/face.glb")  # gzipped on the wire, as asked
    assert (status, kind) == (200, "model/gltf-binary")
    assert len(body) > 3 * len(state.face_glb()[1])
    gltf = pygltflib.GLTF2.load_from_bytes(body)
    (mesh,) = gltf.meshes
    assert mesh.extras["targetNames"] == list(ARKIT_52)
    assert len(mesh.primitives[0].targets) == 52
    position = gltf.accessors[mesh.primitives[0].attributes.POSITION]
    speaker = state.animator.builtin_speaker(None, state.animator.default_style)
    assert position.count == len(speaker.template)
    blob = gltf.binary_blob()
    view = gltf.bufferViews[position.bufferView]
    start = view.byteOffset + (position.byteOffset or 0)
    template = np.frombuffer(blob, "<f4", position.count * 3, start).reshape(-1, 3)
    np.testing.assert_array_equal(template, speaker.template)  # the face the weights animate


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "70000"], "--port: expected 0 to 65535"),
        (["--max-streams", "0"], "--max-streams: expected a positive integer"),
        (["--workers", "0"], "--workers: expected a positive integer"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys) -> None:
    assert cli.main(["serve", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_busy_port_is_one_line(server, capsys, monkeypatch) -> None:
    monkeypatch.setattr(server_app.ServerState, "load", classmethod(lambda cls, m, s: server.state))
    monkeypatch.setattr(server_app.ServerState, "close", lambda self: None)
    assert cli.main(["serve", "--port", str(server.port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{server.port}" in err[0]

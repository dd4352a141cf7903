"""``NAME_viewer.html`` (export.viewer): one self-contained file, three.js inlined as data:
modules with every import resolved inside the page, the glb and the speech embedded; skipped
with one warning when three.js is not installed. (It is opened in a real browser by
tests/server/test_viewer_browser.py.)"""

from __future__ import annotations

import base64
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmface4d.animate.outputs import write_animation_frames
from mmface4d.audio.io import write_wav
from mmface4d.export.gltf import MorphBasis, write_glb
from mmface4d.export.viewer import (
    WEB_MODULES_ENV,
    ViewerSkippedWarning,
    three_dir,
    write_viewer,
)

needs_three = pytest.mark.skipif(
    three_dir() is None, reason="three.js not installed in web/node_modules (make setup)"
)


def _grid(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.linspace(-0.05, 0.05, n), np.linspace(-0.05, 0.05, n))
    template = np.stack([u, v, 0.02 - 4 * (u**2 + v**2)], axis=-1).reshape(-1, 3)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return template.astype(np.float32), faces


@pytest.fixture
def glb(tmp_path: Path) -> Path:
    template, faces = _grid()
    target = np.zeros((1, len(template), 3), np.float32)
    target[0, :, 1] = -0.01
    weights = np.linspace(0, 1, 10, dtype=np.float32)[:, None]
    basis = MorphBasis(target, ["jawOpen"], weights, 0.0, 0.0, "arkit")
    return write_glb(tmp_path / "clip.glb", template, faces, basis, 30.0)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    tone = 0.2 * np.sin(np.linspace(0, 200 * np.pi, 5333)).astype(np.float32)
    return write_wav(tmp_path / "clip.wav", tone, 16_000, encoding="pcm16")


def _embedded(page: str, element_id: str) -> bytes:
    found = re.search(
        rf'<script type="application/octet-stream" id="{element_id}"[^>]*>([^<]*)<', page
    )
    assert found, element_id
    return base64.b64decode(found.group(1))


def _import_map(page: str) -> dict[str, str]:
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))["imports"]


def _source(url: str) -> str:
    prefix = "data:text/javascript;base64,"
    assert url.startswith(prefix)
    return base64.b64decode(url[len(prefix) :]).decode()


@needs_three
def test_the_viewer_holds_the_glb_the_speech_and_every_module(glb, wav, tmp_path) -> None:
    path = write_viewer(tmp_path / "clip_viewer.html", glb, wav, title="a <clip>")
    assert path == tmp_path / "clip_viewer.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.glb", "clip.wav", path.name]
    page = path.read_text()
    assert "<title>a &lt;clip&gt; · mmface4d viewer</title>" in page
    assert _embedded(page, "face-glb") == glb.read_bytes()
    assert _embedded(page, "speech") == wav.read_bytes()
    imports = _import_map(page)
    for key in (
        "three",
        "three/addons/loaders/GLTFLoader.js",
        "three/build/three.core.js",
        "three/examples/jsm/utils/BufferGeometryUtils.js",
        "mmface4d/face.js",
    ):
        assert key in imports, key
    statement = re.compile(
        r"""^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]""",
        re.M,
    )
    named = set()
    for key, url in imports.items():
        # every import statement of the inlined modules names a key of the map
        for found in statement.findall(_source(url)):
            spec = found[0] or found[1]
            assert spec in imports, (key, spec)
            named.add(spec)
    assert {
        "three",
        "three/build/three.core.js",
        "three/examples/jsm/utils/BufferGeometryUtils.js",
    } <= named
    # the page's own script imports through the map too, and nothing loads from elsewhere
    script = page.rsplit('<script type="module">', 1)[1]
    assert set(re.findall(r"""from\s*'([^']+)'""", script)) <= set(imports)
    assert "http://" not in page and "https://" not in page and "/vendor/" not in page


@needs_three
def test_without_speech_and_with_bytes(glb, tmp_path) -> None:
    path = write_viewer(tmp_path / "v.html", glb.read_bytes())
    page = path.read_text()
    assert 'id="speech"' not in page and _embedded(page, "face-glb") == glb.read_bytes()


def test_without_three_js_the_viewer_is_skipped_with_one_warning(glb, wav, tmp_path, monkeypatch):
    monkeypatch.setenv(WEB_MODULES_ENV, str(tmp_path / "nothing"))
    with pytest.warns(ViewerSkippedWarning, match="three.js is not installed") as caught:
        assert write_viewer(tmp_path / "v.html", glb, wav) is None
    assert len(caught) == 1
    assert not (tmp_path / "v.html").exists()


def test_animate_writes_the_viewer_beside_the_glb(tmp_path, monkeypatch) -> None:
    template, faces = _grid()
    rng = np.random.default_rng(0)
    frames = template[None] + rng.normal(0, 1e-3, (12, len(template), 3)).astype(np.float32)
    audio = rng.normal(0, 0.1, 6400).astype(np.float32)

    def write(folder: Path) -> dict[str, Path]:
        return write_animation_frames(
            iter([frames]),
            folder,
            ("viewer",),  # the glb (and its wav) come with it
            name="clip",
            num_frames=len(frames),
            fps=30.0,
            faces=faces,
            template=template,
            audio=audio,
            progress=False,
        )

    if three_dir() is not None:
        written = write(tmp_path / "a")
        assert list(written) == ["glb", "wav", "viewer"]
        assert written["viewer"] == tmp_path / "a" / "clip_viewer.html"
        page = written["viewer"].read_text()
        assert _embedded(page, "face-glb") == written["glb"].read_bytes()
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
            "clip.glb",
            "clip.wav",
            "clip_viewer.html",
        ]
    monkeypatch.setenv(WEB_MODULES_ENV, str(tmp_path / "nothing"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write(tmp_path / "b")
    assert list(written) == ["glb", "wav"]  # the animation is written; the viewer is not
    assert [w.category for w in caught] == [ViewerSkippedWarning]
    assert "\n" not in str(caught[0].message)


def test_the_module_is_light() -> None:
    # the module is light: the CLI's help and the writers load it without numpy or torch
    import subprocess
    import sys

    code = "import sys, mmface4d.export.viewer; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

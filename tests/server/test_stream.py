"""``/stream``: a clip streamed through a real server gives the frames of an offline
FaceStream on the same audio; several clients at once get their own results."""

from __future__ import annotations

import asyncio
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.server.protocol import ARKIT_DECIMALS, NORMAL
from mmface4d.server.session import Resampler

from .conftest import RATE, from_s16le, run, s16le, say, talk

#: Streamed ARKit weights are rounded to ARKIT_DECIMALS decimals: within half a unit of the last
#: decimal of the offline stream's float32 weights (plus float32 rounding).
ARKIT_TOLERANCE = 0.5 * 10.0**-ARKIT_DECIMALS + 1e-7


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return say("Bob made maple bread.")


def offline(state, audio: np.ndarray, style: str | None = None):
    """(vertices, arkit) of a FaceStream of the served animator fed the audio whole."""
    animator = state.animator
    stream = animator.stream(animator.builtin_speaker(None, style or animator.default_style))
    first, rest = stream.push(audio), stream.flush()
    vertices = np.concatenate([first.vertices, rest.vertices])
    return vertices, np.concatenate([first.arkit, rest.arkit])


def weights_of(frames: list[dict]) -> np.ndarray:
    return np.array([[frame["arkit"][name] for name in ARKIT_52] for frame in frames])


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("fmt", ["s16le", "f32le"])
def test_a_streamed_clip_gives_an_offline_streams_weights_and_vertices(
    server, state, clip, fmt
) -> None:
    if fmt == "s16le":
        data = s16le(clip)
        audio = from_s16le(data)  # what the server hears
        chunk = 2 * 512  # 32 ms
    else:
        audio = clip
        data = clip.astype("<f4").tobytes()
        chunk = 4 * 1600  # 100 ms
    header = {"sample_rate": RATE, "format": fmt, "outputs": ["arkit", "vertices"]}
    got = run(talk(server.url, header, chunks_of(data, chunk)))
    vertices, arkit = offline(state, audio)

    assert got.code == NORMAL and got.reason.startswith("stream ended")
    assert got.ready["fps"] == 30.0 and got.ready["vertices"] == vertices.shape[1]
    assert got.end == {"end": True, "frames": len(vertices)}
    assert [f["frame"] for f in got.frames] == list(range(len(vertices)))
    np.testing.assert_allclose([f["t"] for f in got.frames], np.arange(len(vertices)) / 30.0)
    assert all(list(f["arkit"]) == list(ARKIT_52) for f in got.frames)
    np.testing.assert_allclose(weights_of(got.frames), arkit, rtol=0, atol=ARKIT_TOLERANCE)
    # each frame's vertices right after its JSON, float32 (V, 3), the offline stream's exactly
    assert got.order == ["text"] + ["text", "binary"] * len(vertices) + ["text"]
    streamed = np.stack([np.frombuffer(v, "<f4").reshape(-1, 3) for v in got.vertices])
    np.testing.assert_array_equal(streamed, vertices)


def test_vertices_only_when_asked_and_arkit_is_the_default_output(server, clip) -> None:
    header = {"sample_rate": RATE, "format": "s16le"}
    got = run(talk(server.url, header, [s16le(clip)]))
    assert got.code == NORMAL and got.vertices == [] and got.ready["outputs"] == ["arkit"]
    assert len(got.frames) == got.end["frames"] > 0 and "arkit" in got.frames[0]
    header["outputs"] = ["vertices"]
    got = run(talk(server.url, header, [s16le(clip)]))
    assert got.code == NORMAL and len(got.vertices) == len(got.frames) > 0
    assert set(got.frames[0]) == {"frame", "t"}


def test_other_sample_rates_are_resampled_to_16_khz(server, state, clip) -> None:
    from scipy.signal import resample_poly

    audio48 = resample_poly(clip, 3, 1).astype(np.float32)
    data = audio48.astype("<f4").tobytes()
    header = {"sample_rate": 48000, "format": "f32le"}
    got = run(talk(server.url, header, chunks_of(data, 4 * 480)))  # 10 ms chunks
    # the same resampler fed the audio whole: the stream's cuts change nothing
    resampler = Resampler(48000, RATE)
    heard = np.concatenate([resampler.push(audio48), resampler.flush()])
    assert abs(heard.size - clip.size) <= 2
    _, arkit = offline(state, heard)
    assert got.code == NORMAL
    np.testing.assert_allclose(weights_of(got.frames), arkit, rtol=0, atol=ARKIT_TOLERANCE)


def test_several_clients_at_once_get_their_own_results(server, state, clip) -> None:
    other = say("Please remember the blue umbrella.")
    jobs = [
        (clip, None, 320),
        (other, "S002-happy", 1000),
        (0.5 * clip, "S001-sad", 4000),
    ]

    async def together():
        return await asyncio.gather(
            *[
                talk(
                    server.url,
                    {"sample_rate": RATE, "format": "f32le", "style": style},
                    chunks_of(audio.astype("<f4").tobytes(), chunk),
                    pace_s=0.002,
                )
                for audio, style, chunk in jobs
            ]
        )

    results = run(together())
    for (audio, style, _), got in zip(jobs, results, strict=True):
        _, arkit = offline(state, audio, style)
        assert got.code == NORMAL and got.ready["style"] == (style or "S001")
        np.testing.assert_allclose(weights_of(got.frames), arkit, rtol=0, atol=ARKIT_TOLERANCE)
    # different speech: different faces (the results are not shared)
    first, second = weights_of(results[0].frames), weights_of(results[1].frames)
    n = min(len(first), len(second))
    assert np.abs(first[:n] - second[:n]).max() > 0.05


def _digest(animator) -> str:
    h = hashlib.blake2b()
    for tensor in animator.pipeline.state_dict().values():
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_face_streams_of_one_animator_share_no_mutable_state(state, clip) -> None:
    """Interleaved pushes of two streams, and streams on concurrent threads, give each stream's
    frames alone; the shared animator, speaker and recogniser cache are left as they were."""
    animator = state.animator
    speaker = animator.builtin_speaker(None, animator.default_style)
    other = say("Please remember the blue umbrella.")[: clip.size]
    alone = [offline(state, audio) for audio in (clip, other)]
    weights_before, template_before = _digest(animator), speaker.template.copy()

    a, b = animator.stream(speaker), animator.stream(speaker)
    got: dict[int, list] = {0: [], 1: []}
    for start in range(0, clip.size, 800):  # 50 ms each, alternating
        got[0].append(a.push(clip[start : start + 800]).arkit)
        got[1].append(b.push(other[start : start + 800]).arkit)
    got[0].append(a.flush().arkit)
    got[1].append(b.flush().arkit)
    for k in (0, 1):
        np.testing.assert_array_equal(np.concatenate(got[k]), alone[k][1])

    def whole(audio):
        stream = animator.stream(speaker)
        parts = [stream.push(audio[i : i + 1600]).arkit for i in range(0, audio.size, 1600)]
        return np.concatenate([*parts, stream.flush().arkit])

    with ThreadPoolExecutor(2) as pool:  # two streams on two threads at once
        threaded = list(pool.map(whole, [clip, other]))
    for k, weights in enumerate(threaded):
        np.testing.assert_array_equal(weights, alone[k][1])
    assert _digest(animator) == weights_before
    np.testing.assert_array_equal(speaker.template, template_before)


def test_health_reports_open_streams_and_the_version(server) -> None:
    import aiohttp

    import mmface4d

    async def health():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/health") as response:
                return response.status, await response.json()

    status, body = run(health())
    assert status == 200 and body["status"] == "ok" and body["version"] == mmface4d.__version__
    assert body["streams_open"] == 0 and "S001-happy" in body["styles"]
    assert json.loads(json.dumps(body)) == body


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_does_not_depend_on_how_the_audio_is_cut(rate) -> None:
    audio = np.random.default_rng(rate).normal(0, 0.1, rate).astype(np.float32)  # 1 s

    def resampled(cuts):
        resampler, parts, start = Resampler(rate, RATE), [], 0
        for size in cuts:
            parts.append(resampler.push(audio[start : start + size]))
            start += size
        return np.concatenate([*parts, resampler.flush()])

    whole = resampled([audio.size])
    assert abs(whole.size - RATE) <= 1
    rng = np.random.default_rng(0)
    cuts = list(rng.integers(1, rate // 200, 150))  # 5 ms at most each: 0.4 s in all
    cuts.append(audio.size - sum(cuts))
    assert min(cuts) > 0
    np.testing.assert_array_equal(resampled(cuts), whole)

"""``mmface4d serve`` under load, on this machine's loopback: latency, throughput, faults.

    .venv/bin/python benchmarks/bench_server.py [--parts latency,throughput,faults]
        [--max-streams 6] [--seconds 15] [--note TEXT]

The server runs as its own process (``python -m mmface4d serve --port 0``, default settings:
as many compute threads as cores, one torch thread each); the clients run in this process
(asyncio, aiohttp) and send the speech of ``benchmarks/data/speech`` as 16 kHz s16le, paced at
real time: chunk k is sent when the audio clock reaches its end. Each part is written into
``benchmarks/results/server.json`` with the command, commit and machine.

- ``latency``: one client streams the four clips (30 s) in 10 ms chunks, ARKit weights only.
  Per frame, ``latency`` is the time from the end of the chunk that completes the frame (the
  chunk after which the stream has the frame's step plus its look-ahead: at the default
  settings, 0.16 s steps and 0.04 s of audio past a step's end) to the frame's message received;
  ``delay`` is the time from the frame's own end in the audio to its message.
- ``throughput``: N clients at once (N = 1, 2, 3, ... up to ``--max-streams``), each streaming
  ``--seconds`` of the clips (each from another offset) in 20 ms chunks. A stream keeps up when
  its frames' latency has p95 under 250 ms (the latency target) and every frame arrived; the
  ramp stops at the first N where a stream does not. ``sustained`` is the largest N that kept up.
  The server's CPU seconds per second of audio are recorded too: the cores divided by it bound
  what an otherwise idle machine could sustain (the cores here are shared with other work).
- ``faults``: two well-behaved clients stream ``--seconds`` of speech while others, the whole
  time, misbehave: processes killed (SIGKILL) mid-stream, connections dropped without a close,
  malformed headers, unknown keys, binary before the header, oversized chunks, NaN samples. The
  server must stay up, the well-behaved clients must get every frame (indices 0..n-1, then the
  end), and the server's RSS must come back: measured after a warm-up stream (baseline), after
  each round of faults (``--fault-rounds``; a leak would grow with the rounds). When its
  last stream ends the server gives freed memory back (``malloc_trim``), so RSS can return.

Timings move with the machine's load: the load averages before and after each part are stored
with it (``busy`` is true when the 1-minute load was above 1.5 on the 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _machine import load_state, report_and_stamp  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SPEECH = Path(__file__).parent / "data" / "speech"
RATE = 16000
FPS = 30.0
#: The phonetic encoder's hop, samples: a stream's steps are whole hops.
HOP = 320
TARGET_MS = 250.0


def _clips() -> np.ndarray:
    from mmface4d.audio.io import load_audio

    return np.concatenate([load_audio(p, RATE) for p in sorted(SPEECH.glob("*.wav"))])


def _s16le(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()


def _steps() -> tuple[int, int]:
    """The default stream's step and the audio past a step's end it waits for, samples
    (``LIVE``: 0.16 s steps, 0.2 s look-ahead: a step's frames come once 0.04 s past its end is
    heard)."""
    from mmface4d.animate.streaming import LIVE

    step = max(HOP, round(LIVE.step_s * RATE / HOP) * HOP)
    return step, max(0, round(LIVE.lookahead_s * RATE) - step)


def _needed_samples(frame: int) -> int:
    """Samples the stream must hold before it gives ``frame`` (its step's end and the wait
    past it; ``negative_latencies`` in the result checks this)."""
    from mmface4d.audio.sync import frame_to_sample

    step, right = _steps()
    end = frame_to_sample(frame + 1, FPS, RATE)
    return math.ceil(end / step) * step + right


class Server:
    """``python -m mmface4d serve --port 0`` as a child process."""

    def __init__(self, max_streams: int = 32):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "mmface4d", "serve", "--port", "0"]
        command += ["--max-streams", str(max_streams)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        started = time.perf_counter()
        line = self.process.stdout.readline()
        if "http://" not in line:
            raise SystemExit(f"the server did not start: {line!r}")
        self.start_s = time.perf_counter() - started
        self.url = line.split("http://", 1)[1].split("/", 1)[0]
        self.url = "http://" + self.url

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """CPU seconds the server has used (user + system, all its threads)."""
        with open(f"/proc/{self.process.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _health(url: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health") as response:
            return await response.json()


async def _settle(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (await _health(url))["streams_open"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def paced_stream(
    url: str, audio: np.ndarray, chunk_s: float, outputs: tuple[str, ...] = ("arkit",)
) -> dict[str, Any]:
    """Stream ``audio`` paced at real time; per frame its latency and delay (module doc)."""
    import aiohttp

    data = _s16le(audio)
    chunk = int(chunk_s * RATE)
    n = audio.size
    received: dict[int, float] = {}
    got: dict[str, Any] = {"end": None, "code": None}
    header = {"sample_rate": RATE, "format": "s16le", "outputs": list(outputs)}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/stream", max_msg_size=0) as ws:
            await ws.send_str(json.dumps(header))
            ready = await ws.receive()
            assert "ready" in json.loads(ready.data), ready
            started = time.perf_counter()
            ended: list[float] = []

            async def send() -> None:
                for start in range(0, n, chunk):
                    wait = started + min(start + chunk, n) / RATE - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await ws.send_bytes(data[2 * start : 2 * (start + chunk)])
                ended.append(time.perf_counter())
                await ws.send_str('{"end": true}')

            sender = asyncio.create_task(send())
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    message = json.loads(msg.data)
                    if "frame" in message:
                        received[message["frame"]] = time.perf_counter()
                    elif "end" in message:
                        got["end"] = message
            got["code"] = ws.close_code
            await sender
    latency, delay = [], []
    for frame, at in sorted(received.items()):
        need = _needed_samples(frame)
        if need <= n:  # arrival of the chunk holding sample need - 1
            arrival = started + min(math.ceil(need / chunk) * chunk, n) / RATE
        else:  # given at the flush
            arrival = ended[0]
        latency.append(at - arrival)
        delay.append(at - (started + (frame + 1) / FPS))
    expected = round(n * FPS / RATE)
    return {
        "frames": len(received),
        "expected_frames": expected,
        "complete": sorted(received) == list(range(expected)) and got["end"] is not None,
        "close_code": got["code"],
        "latency_ms": np.array(latency) * 1000,
        "delay_ms": np.array(delay) * 1000,
    }


def _summary(values_ms: np.ndarray) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values_ms, 50)), 1),
        "p95": round(float(np.percentile(values_ms, 95)), 1),
        "max": round(float(values_ms.max()), 1),
    }


def latency_part(server: Server, audio: np.ndarray) -> dict[str, Any]:
    before = load_state()
    cpu = server.cpu_s()
    result = asyncio.run(paced_stream(server.url, audio, 0.01))
    cpu = server.cpu_s() - cpu
    return {
        "audio_s": round(audio.size / RATE, 2),
        "chunk_ms": 10,
        "frames": result["frames"],
        "complete": result["complete"],
        "latency_ms": _summary(result["latency_ms"]),
        "delay_ms": _summary(result["delay_ms"]),
        "negative_latencies": int((result["latency_ms"] < 0).sum()),  # a check of _steps()
        "server_cpu_s_per_audio_s": round(cpu / (audio.size / RATE), 3),
        "target": "latency p50 and p95 < 250 ms",
        "met": bool(np.percentile(result["latency_ms"], 95) < TARGET_MS),
        "load_before": before,
        "load_after": load_state(),
    }


def throughput_part(
    server: Server, audio: np.ndarray, seconds: float, max_streams: int
) -> dict[str, Any]:
    before = load_state()
    size = int(seconds * RATE)
    levels = []
    sustained = 0
    for count in range(1, max_streams + 1):
        offsets = [(k * audio.size // max(count, 1)) % (audio.size - size) for k in range(count)]

        async def together(offsets=offsets):
            return await asyncio.gather(
                *[paced_stream(server.url, audio[o : o + size], 0.02) for o in offsets]
            )

        load = load_state()
        cpu = server.cpu_s()
        results = asyncio.run(together())
        cpu = server.cpu_s() - cpu
        streams = [
            {
                "complete": r["complete"],
                "latency_ms": _summary(r["latency_ms"]),
                "delay_ms": _summary(r["delay_ms"]),
            }
            for r in results
        ]
        kept_up = all(s["complete"] and s["latency_ms"]["p95"] < TARGET_MS for s in streams)
        levels.append(
            {
                "streams": count,
                "kept_up": kept_up,
                "server_cpu_s_per_audio_s": round(cpu / (count * seconds), 3),
                "load_before": load,
                "each": streams,
            }
        )
        print(f"throughput: {count} streams, kept up: {kept_up}", flush=True)
        asyncio.run(_settle(server.url))
        if not kept_up:
            break
        sustained = count
    cpu_per_audio = min(level["server_cpu_s_per_audio_s"] for level in levels)
    cores = len(os.sched_getaffinity(0))
    return {
        "seconds_per_stream": seconds,
        "cpu_bound_estimate": {
            "server_cpu_s_per_audio_s": cpu_per_audio,
            "streams_the_cores_could_sustain": int(cores / cpu_per_audio),
            "cores": cores,
            "note": "cores / the least CPU seconds the server spent per second of audio of a "
            "stream: what an otherwise idle machine could sustain at best",
        },
        "chunk_ms": 20,
        "criterion": "every frame arrives and each stream's frame latency has p95 < 250 ms",
        "sustained_streams": sustained,
        "levels": levels,
        "load_before": before,
        "load_after": load_state(),
    }


_KILLED_CLIENT = """
import asyncio, json, sys, aiohttp, numpy as np
async def main():
    data = (np.random.default_rng(int(sys.argv[2])).normal(0, 0.1, 16000 * 60) * 32767)
    data = data.astype('<i2').tobytes()
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(sys.argv[1] + '/stream') as ws:
            await ws.send_str(json.dumps({"sample_rate": 16000, "format": "s16le",
                                          "outputs": ["arkit", "vertices"]}))
            print('streaming', flush=True)
            for i in range(0, len(data), 640):
                await ws.send_bytes(data[i:i + 640])
                await asyncio.sleep(0.02)
asyncio.run(main())
"""


async def _misbehave(url: str, kind: str, rng: random.Random) -> int | None:
    """One faulty client; the close code it got (None: it left first)."""
    try:
        return await _misbehave_once(url, kind, rng)
    except (OSError, RuntimeError):
        return None  # the server closed while the client was still sending


async def _misbehave_once(url: str, kind: str, rng: random.Random) -> int | None:
    import aiohttp

    good = {"sample_rate": RATE, "format": "s16le"}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/stream", max_msg_size=0) as ws:
            if kind == "malformed":
                await ws.send_str('{"sample_rate": 16000, "format"')
            elif kind == "unknown key":
                await ws.send_str(json.dumps({**good, "speed": 2}))
            elif kind == "binary first":
                await ws.send_bytes(b"\x00" * 640)
            elif kind == "oversized":
                await ws.send_str(json.dumps(good))
                await ws.send_bytes(b"\x00" * (1 << 20))
            elif kind == "nan":
                await ws.send_str(json.dumps({**good, "format": "f32le"}))
                await ws.send_bytes(np.full(160, np.nan, "<f4").tobytes())
            elif kind == "dropped":
                await ws.send_str(json.dumps({**good, "outputs": ["arkit", "vertices"]}))
                noise = _s16le(np.random.default_rng(rng.randrange(1 << 30)).normal(0, 0.1, RATE))
                for i in range(0, len(noise), 640):
                    await ws.send_bytes(noise[i : i + 640])
                    await asyncio.sleep(0.02)
                ws._conn.transport.abort()  # no close frame: as if the client vanished
                return None
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return ws.close_code
                if msg.type == aiohttp.WSMsgType.ERROR:
                    return None


async def _fault_round(url: str, audio: np.ndarray, seconds: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    size = int(seconds * RATE)
    good = [
        asyncio.create_task(paced_stream(url, audio[o : o + size], 0.02))
        for o in (0, audio.size // 2)
    ]
    kinds = ["malformed", "unknown key", "binary first", "oversized", "nan", "dropped"]
    codes: dict[str, list] = {k: [] for k in [*kinds, "killed"]}
    killed = 0
    while not all(t.done() for t in good):
        kind = rng.choice([*kinds, "killed"])
        if kind == "killed":
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _KILLED_CLIENT, url, str(rng.randrange(1000)),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            await child.stdout.readline()  # streaming
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            child.kill()
            await child.wait()
            killed += 1
            codes["killed"].append(None)
        else:
            codes[kind].append(await _misbehave(url, kind, rng))
        await asyncio.sleep(rng.uniform(0.05, 0.3))
    results = [await t for t in good]
    await _settle(url)
    return {
        "faulty_clients": {k: len(v) for k, v in codes.items()},
        "close_codes": {k: sorted({c for c in v if c is not None}) for k, v in codes.items()},
        "well_behaved": [
            {
                "frames": r["frames"],
                "expected_frames": r["expected_frames"],
                "complete": r["complete"],
                "close_code": r["close_code"],
                "latency_ms": _summary(r["latency_ms"]),
            }
            for r in results
        ],
    }


def faults_part(server: Server, audio: np.ndarray, seconds: float, count: int) -> dict[str, Any]:
    before = load_state()
    started_rss = server.rss_mb()

    async def warm_up():  # two at once: both compute threads have run a stream
        clips = (audio[: 5 * RATE], audio[-5 * RATE :])
        await asyncio.gather(
            *[paced_stream(server.url, c, 0.02, ("arkit", "vertices")) for c in clips]
        )

    asyncio.run(warm_up())
    time.sleep(1.0)
    baseline = server.rss_mb()
    rounds = []
    for seed in range(1, count + 1):
        result = asyncio.run(_fault_round(server.url, audio, seconds, seed))
        time.sleep(1.0)
        result["rss_after_mb"] = round(server.rss_mb(), 1)
        result["server_alive"] = server.alive()
        rounds.append(result)
        print(f"faults: round {seed}: rss {result['rss_after_mb']} MB", flush=True)
    health = asyncio.run(_health(server.url))
    after = asyncio.run(paced_stream(server.url, audio[: 3 * RATE], 0.02))
    return {
        "seconds_per_round": seconds,
        "rss_mb": {
            "after_start": round(started_rss, 1),
            "baseline_after_a_warm_up_stream": round(baseline, 1),
            "after_each_round": [r["rss_after_mb"] for r in rounds],
            "growth_after_each_round": [round(r["rss_after_mb"] - baseline, 1) for r in rounds],
        },
        "rounds": rounds,
        "server_alive": server.alive(),
        "streams_open_after": health["streams_open"],
        "streams_served": health["streams_served"],
        "a_new_client_after": {"complete": after["complete"], "close_code": after["close_code"]},
        "no_dropped_frames": all(w["complete"] for r in rounds for w in r["well_behaved"]),
        "load_before": before,
        "load_after": load_state(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="latency,throughput,faults")
    parser.add_argument("--max-streams", type=int, default=6, help="throughput ramp's last N")
    parser.add_argument("--seconds", type=float, default=15.0, help="audio per stream, s")
    parser.add_argument("--fault-rounds", type=int, default=3, help="rounds of faults")
    parser.add_argument("--note", default="", help="stored with the result")
    parser.add_argument("--output", type=Path, default=RESULTS / "server.json")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    report, stamp = report_and_stamp(
        "benchmarks/bench_server.py", args.output, sys.argv[1:], args.note, ("hama", "aiohttp")
    )
    audio = _clips()
    server = Server()
    try:
        stamp["server_start_s"] = round(server.start_s, 2)
        stamp["server"] = {
            k: v
            for k, v in asyncio.run(_health(server.url)).items()
            if k in ("workers", "max_streams", "lookahead_s", "version")
        }
        for part in parts:
            if part == "latency":
                result = latency_part(server, audio)
            elif part == "throughput":
                result = throughput_part(server, audio, args.seconds, args.max_streams)
            elif part == "faults":
                result = faults_part(server, audio, args.seconds, args.fault_rounds)
            else:
                raise SystemExit(f"--parts: unknown part {part!r}")
            report[part] = {**stamp, **result}
            print(json.dumps({part: result}, indent=2)[:3000], flush=True)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        server.stop()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

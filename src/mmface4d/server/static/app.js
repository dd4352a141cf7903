// The live page of `mmface4d serve`: speech from a file or the microphone, streamed over the
// WebSocket /stream (protocol: mmface4d/server/protocol.py, README), the face frames' 52 ARKit
// weights applied to /face.glb's morph targets. A file is played in step with its face: the
// frames carry "t" (seconds of audio) and are shown against the AudioContext's clock; the audio
// waits (buffering) when the frames fall behind. The microphone's face shows each frame as it
// comes, the model's look-ahead plus the compute behind the voice.
import { FaceView, weightsAt } from './face.js';
import { Resampler } from './resample.js';

const RATE = 16000; // what the page sends: mono float32 at 16 kHz
const FILE_CHUNK = 1600; // 0.1 s per message for files
const MIC_CHUNK = 640; // 40 ms per message for the microphone
const SEND_AHEAD_S = 2.0; // a file is sent at most this far ahead of what is played
const PREROLL_S = 0.4; // frames buffered before a file starts playing
const REBUFFER_S = 0.3; // ... and before it resumes after the frames fell behind

const $ = (id) => document.getElementById(id);
const page = {
  ready: false, // the face is loaded
  state: 'loading',
  mode: null, // 'file' | 'mic' | null
  frames: 0, // frame messages received in the current stream
  lastFrame: null, // {frame, t}
  delays: [], // ms, per frame: audio completing it sent -> frame received
  errors: [],
  closes: [], // {code, reason} of the stream sockets
};
window.mmface4d = page; // for people debugging and for the browser tests

function setState(text, kind = '') {
  page.state = text;
  $('state').textContent = text;
  $('state').className = `badge ${kind}`;
  $('stat-stream').textContent = text;
}

function showError(message) {
  page.errors.push(String(message));
  $('error').textContent = String(message);
  $('error').hidden = false;
  setState('error', 'bad');
}

function clearError() {
  $('error').hidden = true;
}

function percentile(values, q) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function showDelay() {
  const recent = page.delays.slice(-200);
  if (!recent.length) { $('stat-delay').textContent = '–'; return; }
  const last = recent[recent.length - 1];
  $('stat-delay').textContent =
    `${last.toFixed(0)} ms (p50 ${percentile(recent, 0.5).toFixed(0)}, p95 ` +
    `${percentile(recent, 0.95).toFixed(0)})`;
}

const CLOSE_MEANINGS = {
  1000: 'stream ended',
  1001: 'server shutting down',
  1003: 'unexpected message',
  1006: 'connection lost',
  1007: 'bad data',
  1008: 'refused',
  1009: 'message too big',
  1011: 'server error',
  1013: 'server full',
  4008: 'too slow to read',
};

/** One /stream connection: header, binary float32 chunks, end; frames to onFrame. */
class StreamClient {
  constructor(names, { onFrame, onEnd, onClose }) {
    this.names = names; // the morph targets' order: each frame becomes a Float32Array in it
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.onClose = onClose;
    this.sent = 0; // samples sent
    this.sends = []; // [endSample, performance.now()] per chunk
    this.fps = 30;
    this.ended = false;
  }

  open(style) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stream`;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    return new Promise((resolve, reject) => {
      let ready = false;
      this.ws.onopen = () => {
        const header = { sample_rate: RATE, format: 'f32le', outputs: ['arkit'] };
        if (style) header.style = style;
        this.ws.send(JSON.stringify(header));
      };
      this.ws.onmessage = (event) => {
        if (typeof event.data !== 'string') return; // vertices: not asked for
        const message = JSON.parse(event.data);
        if (message.ready) {
          ready = true;
          this.fps = message.fps || 30;
          this.lookahead = message.lookahead_s;
          resolve(message);
        } else if (message.arkit) {
          const weights = new Float32Array(this.names.length);
          for (let k = 0; k < this.names.length; k++) weights[k] = message.arkit[this.names[k]] || 0;
          this.onFrame({ frame: message.frame, t: message.t, w: weights }, this.delayOf(message));
        } else if (message.end) {
          this.ended = true;
          this.onEnd(message);
        } else if (message.error) {
          showError(`server: ${message.error}`);
        }
      };
      this.ws.onerror = () => {
        if (!ready) reject(new Error(`cannot connect to ${url}`));
      };
      this.ws.onclose = (event) => {
        const meaning = CLOSE_MEANINGS[event.code] || 'closed';
        page.closes.push({ code: event.code, reason: event.reason });
        if (!ready) { // the header was refused or the server is unreachable: open() says it
          reject(new Error(`stream ${meaning} (${event.code})${event.reason ? `: ${event.reason}` : ''}`));
          return;
        }
        this.onClose(event, meaning);
      };
    });
  }

  /** ms from sending the chunk that held the frame's last sample to now. */
  delayOf(message) {
    const end = Math.ceil(((message.frame + 1) / this.fps) * RATE);
    while (this.sends.length > 1 && this.sends[0][0] < end) this.sends.shift();
    const sent = this.sends.length && this.sends[0][0] >= end ? this.sends[0][1] : null;
    return sent === null ? null : performance.now() - sent;
  }

  send(samples) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(samples.buffer.slice(samples.byteOffset, samples.byteOffset + samples.byteLength));
    this.sent += samples.length;
    this.sends.push([this.sent, performance.now()]);
    return true;
  }

  end() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ end: true }));
  }

  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'client stopped');
  }
}

const CAPTURE_WORKLET = `
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor('mmface4d-capture', Capture);
`;

let view = null;
let session = null; // the running file or microphone session: {stop()}

async function health() {
  try {
    const response = await fetch('/health');
    const info = await response.json();
    $('stat-server').textContent =
      `${info.model}, ${info.fps} fps, look-ahead ${info.lookahead_s} s, ` +
      `${info.streams_open}/${info.max_streams} streams`;
    const select = $('style');
    for (const style of info.styles || []) {
      const option = document.createElement('option');
      option.value = style;
      option.textContent = style === info.default_style ? `${style} (default)` : style;
      select.appendChild(option);
    }
  } catch (error) {
    $('stat-server').textContent = `unreachable (${error.message})`;
  }
}

function resetStats() {
  page.frames = 0;
  page.lastFrame = null;
  page.delays = [];
  $('stat-frames').textContent = '0';
  $('stat-delay').textContent = '–';
  $('stat-buffer').textContent = '–';
  clearError();
}

function busy(running) {
  $('stop').disabled = !running || page.mode !== 'file';
  $('file').disabled = running;
  $('drop').classList.toggle('disabled', running);
  $('mic').disabled = running && page.mode !== 'mic';
  $('mic').textContent = running && page.mode === 'mic' ? '■ Stop microphone' : '● Start microphone';
  $('mic').className = running && page.mode === 'mic' ? 'live' : 'primary';
}

function finish(state, kind) {
  if (state) setState(state, kind);
  session = null;
  page.mode = null;
  busy(false);
}

/** A speech file: decode, resample to 16 kHz, stream, play with the face in step. */
async function playFile(file) {
  if (session) session.stop();
  resetStats();
  page.mode = 'file';
  busy(true);
  $('filename').textContent = file.name || '';
  setState('decoding', 'busy');
  const context = new AudioContext();
  let decoded;
  try {
    decoded = await context.decodeAudioData(await file.arrayBuffer());
  } catch (error) {
    context.close();
    finish();
    showError(`${file.name || 'file'}: cannot decode this audio (${error.message || error})`);
    return;
  }
  const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * RATE)), RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const speech = (await offline.startRendering()).getChannelData(0); // mono 16 kHz
  page.fileSeconds = speech.length / RATE;

  const frames = []; // {frame, t, w} in order
  page.received = frames;
  let playing = false, startedAt = 0, player = null, stopped = false, timer = null;
  let suspended = false, audioEnded = false;
  const latency = () => (context.outputLatency || 0) + (context.baseLatency || 0);
  const playhead = () => (playing ? context.currentTime - startedAt - latency() : 0);
  page.playhead = playhead;
  const client = new StreamClient(view.names, {
    onFrame(frame, delay) {
      frames.push(frame);
      page.frames += 1;
      page.lastFrame = { frame: frame.frame, t: frame.t };
      if (delay !== null) page.delays.push(delay);
    },
    onEnd() {
      if (audioEnded) done();
    },
    onClose(event, meaning) {
      if (event.code !== 1000 && !stopped) {
        showError(`stream closed: ${meaning} (${event.code})${event.reason ? `: ${event.reason}` : ''}`);
        stop();
      }
    },
  });

  function done() { // the audio played and every frame came
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    context.close();
    finish('done', 'ok');
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    if (player) player.stop();
    client.close();
    context.close();
    if (page.state !== 'error') setState('stopped');
    finish();
  }
  session = { stop };

  function pump() {
    if (stopped) return;
    // send what the look-ahead allows (little before playing: the first frames come sooner)
    const ahead = playing ? SEND_AHEAD_S : PREROLL_S + 0.4;
    while (client.sent < speech.length && client.sent / RATE < playhead() + ahead) {
      if (!client.send(speech.subarray(client.sent, client.sent + FILE_CHUNK))) break;
      if (client.sent >= speech.length) client.end();
    }
    const buffered = frames.length ? frames[frames.length - 1].t + 1 / client.fps : 0;
    const complete = client.ended;
    if (!playing && (buffered >= Math.min(PREROLL_S, page.fileSeconds) || complete)) {
      player = context.createBufferSource();
      player.buffer = decoded;
      player.connect(context.destination);
      startedAt = context.currentTime + 0.05;
      player.start(startedAt);
      player.onended = () => { // the end of the speech (a Stop ends it too: stopped then)
        if (stopped) return;
        audioEnded = true;
        if (client.ended) done();
        else setState('receiving the last frames', 'busy');
      };
      playing = true;
      setState('playing', 'ok');
    }
    if (playing) {
      const lead = buffered - playhead();
      $('stat-buffer').textContent = `${(lead * 1000).toFixed(0)} ms of face ahead of the audio`;
      if (!complete && !suspended && lead < 0.05) {
        suspended = true; // the face fell behind: hold the audio until frames come
        context.suspend();
        setState('buffering', 'warn');
      } else if (suspended && (lead > REBUFFER_S || complete)) {
        suspended = false;
        context.resume();
        setState('playing', 'ok');
      }
    }
    $('stat-frames').textContent = `${page.frames}`;
    showDelay();
  }

  setState('connecting', 'busy');
  try {
    await client.open($('style').value || null);
  } catch (error) {
    stop();
    showError(error.message);
    return;
  }
  setState('streaming', 'busy');
  await context.resume();
  timer = setInterval(pump, 20);
  pump();
  page.draw = () => {
    if (!playing) return null;
    return weightsAt(frames, Math.max(0, playhead()));
  };
}

/** The microphone, live: chunks of 40 ms at 16 kHz, each frame shown as it comes. */
async function startMic() {
  if (session) session.stop();
  resetStats();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError('The microphone needs a secure page: open it as http://localhost:PORT ' +
      '(or 127.0.0.1) or over https.');
    return;
  }
  page.mode = 'mic';
  busy(true);
  setState('asking for the microphone', 'busy');
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
    });
  } catch (error) {
    finish();
    showError(`microphone: ${error.name === 'NotAllowedError' ? 'permission denied' : error.message}`);
    return;
  }
  const context = new AudioContext();
  const resampler = new Resampler(context.sampleRate, RATE);
  let pending = new Float32Array(0);
  let latest = null, stopped = false, node = null;
  const client = new StreamClient(view.names, {
    onFrame(frame, delay) {
      latest = frame;
      page.frames += 1;
      page.lastFrame = { frame: frame.frame, t: frame.t };
      if (delay !== null) page.delays.push(delay);
      $('stat-frames').textContent = `${page.frames}`;
      const backlog = client.sent / RATE - frame.t - 1 / client.fps;
      $('stat-buffer').textContent = `${(backlog * 1000).toFixed(0)} ms of audio not yet a frame`;
      // more than the look-ahead and a few steps behind: the server does not keep up
      const state = backlog > 1.0 ? 'live · server behind' : 'live';
      if (!stopped && page.state !== state) setState(state, backlog > 1.0 ? 'warn' : 'ok');
      showDelay();
    },
    onEnd() { finish('done', 'ok'); },
    onClose(event, meaning) {
      if (event.code !== 1000) {
        showError(`stream closed: ${meaning} (${event.code})${event.reason ? `: ${event.reason}` : ''}`);
      }
      release();
      if (session && session.client === client) finish();
    },
  });

  function release() {
    if (stopped) return;
    stopped = true;
    if (node) node.disconnect();
    media.getTracks().forEach((track) => track.stop());
    context.close();
  }

  function consume(samples) {
    if (stopped) return;
    const out = resampler.push(samples);
    const joined = new Float32Array(pending.length + out.length);
    joined.set(pending);
    joined.set(out, pending.length);
    let start = 0;
    for (; start + MIC_CHUNK <= joined.length; start += MIC_CHUNK) {
      client.send(joined.subarray(start, start + MIC_CHUNK));
    }
    pending = joined.slice(start);
  }

  session = {
    client,
    stop() { // end of speech: flush, keep the socket for the last frames and the end message
      if (stopped) return;
      release();
      if (pending.length) client.send(pending);
      client.end();
      setState('flushing', 'busy');
    },
  };
  setState('connecting', 'busy');
  try {
    await client.open($('style').value || null);
  } catch (error) {
    release();
    finish();
    showError(error.message);
    return;
  }
  const input = context.createMediaStreamSource(media);
  const mute = context.createGain();
  mute.gain.value = 0;
  if (context.audioWorklet) {
    const url = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: 'text/javascript' }));
    await context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    node = new AudioWorkletNode(context, 'mmface4d-capture');
    node.port.onmessage = (event) => consume(event.data);
  } else { // older browsers
    node = context.createScriptProcessor(1024, 1, 1);
    node.onaudioprocess = (event) => consume(event.inputBuffer.getChannelData(0).slice(0));
  }
  input.connect(node);
  node.connect(mute);
  mute.connect(context.destination);
  await context.resume();
  setState('live', 'ok');
  page.draw = () => (latest ? latest.w : null);
}

function wire() {
  const drop = $('drop');
  $('file').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) playFile(file).catch((error) => showError(error.message || error));
    event.target.value = '';
  });
  for (const name of ['dragenter', 'dragover']) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add('over'); });
  }
  for (const name of ['dragleave', 'drop']) {
    drop.addEventListener(name, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file && !session) playFile(file).catch((error) => showError(error.message || error));
  });
  $('stop').addEventListener('click', () => session && session.stop());
  $('mic').addEventListener('click', () => {
    if (session && page.mode === 'mic') session.stop();
    else startMic().catch((error) => showError(error.message || error));
  });
}

// Draw only when the weights change, at most at the frames' 30 per second: a face drawn by
// software WebGL (no GPU) costs the CPU the server computes on.
let shown = null, drawnAt = -Infinity;
function loop(now) {
  const weights = now - drawnAt >= 30 && page.draw ? page.draw() : null;
  if (weights && weights !== shown) {
    view.setWeightArray(weights);
    view.render();
    shown = weights;
    drawnAt = now;
  }
  requestAnimationFrame(loop);
}

async function main() {
  wire();
  health();
  view = new FaceView($('face'));
  page.view = view;
  page.regionBox = (name) => view.regionBox(name);
  setState('loading the face', 'busy');
  try {
    await view.load('/face.glb');
  } catch (error) {
    showError(`/face.glb: ${error.message || error}`);
    return;
  }
  page.ready = true;
  setState('ready', 'ok');
  requestAnimationFrame(loop);
}

main().catch((error) => { console.error(error); showError(error.message || error); });

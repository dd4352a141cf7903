// The offline viewer (NAME_viewer.html, written by `mmface4d animate`): the embedded .glb's
// morph-weight animation played in step with the embedded speech, timed by the audio clock.
import { AnimationMixer, LoopOnce } from 'three';
import { FaceView } from 'mmface4d/face.js';

const $ = (id) => document.getElementById(id);
const state = { ready: false, playing: false, duration: 0, error: null };
window.mmface4dViewer = state;

function fail(message) {
  state.error = String(message);
  $('error').textContent = state.error;
  $('error').hidden = false;
  $('state').textContent = 'error';
  $('state').className = 'badge bad';
}

async function embedded(id) {
  const element = $(id);
  if (!element) return null;
  const text = element.textContent.trim();
  const response = await fetch(`data:${element.dataset.type};base64,${text}`);
  return response.arrayBuffer();
}

async function main() {
  const view = new FaceView($('face'));
  await view.load(await embedded('face-glb'));
  const clip = view.animations[0];
  const mixer = new AnimationMixer(view.root);
  if (clip) {
    const action = mixer.clipAction(clip);
    action.setLoop(LoopOnce, 1);
    action.clampWhenFinished = true;
    action.play();
    state.duration = clip.duration;
  }
  const speechBytes = await embedded('speech');
  let audio = null; // {context, buffer}, created on the first Play (browsers want a gesture)
  let source = null;
  let offset = 0; // seconds into the clip where playback (re)started
  let startedAt = 0; // the clock's reading then
  let clockNow = () => performance.now() / 1000;

  const time = () => Math.min(state.playing ? offset + clockNow() - startedAt : offset,
    state.duration);
  const show = (t) => {
    mixer.setTime(t);
    view.render();
    $('clock').textContent = `${t.toFixed(2)} / ${state.duration.toFixed(2)} s`;
    $('seek').value = state.duration ? t / state.duration : 0;
  };

  async function ensureAudio() {
    if (audio || !speechBytes) return;
    const context = new AudioContext();
    const buffer = await context.decodeAudioData(speechBytes.slice(0));
    audio = { context, buffer };
    state.duration = Math.max(state.duration, buffer.duration);
    clockNow = () => context.currentTime;
  }

  async function play() {
    await ensureAudio();
    if (time() >= state.duration - 1e-3) offset = 0;
    if (audio) {
      await audio.context.resume();
      source = audio.context.createBufferSource();
      source.buffer = audio.buffer;
      source.connect(audio.context.destination);
      source.start(0, offset);
    }
    startedAt = clockNow();
    state.playing = true;
    $('play').textContent = '❚❚ Pause';
    $('state').textContent = 'playing';
  }

  function pause() {
    offset = time();
    state.playing = false;
    if (source) { source.stop(); source = null; }
    $('play').textContent = '▶ Play';
    $('state').textContent = 'paused';
  }

  state.play = play;
  state.pause = pause;
  state.time = time;
  state.seek = (t) => {
    const wasPlaying = state.playing;
    if (wasPlaying) pause();
    offset = Math.max(0, Math.min(t, state.duration));
    show(offset);
    if (wasPlaying) return play();
  };
  state.regionBox = (name) => view.regionBox(name);
  state.view = view;

  $('play').addEventListener('click', () => {
    Promise.resolve(state.playing ? pause() : play()).catch((e) => fail(e.message || e));
  });
  $('seek').addEventListener('input', (e) => state.seek(e.target.value * state.duration));
  window.addEventListener('keydown', (e) => {
    if (e.code === 'Space') { e.preventDefault(); $('play').click(); }
  });
  const loop = () => {
    if (state.playing) {
      const t = time();
      show(t);
      if (t >= state.duration) pause();
    }
    requestAnimationFrame(loop);
  };
  show(0);
  $('play').disabled = false;
  $('seek').disabled = !state.duration;
  $('state').textContent = speechBytes ? 'ready' : 'ready (no sound)';
  $('state').className = 'badge ok';
  state.ready = true;
  requestAnimationFrame(loop);
}

main().catch((error) => { console.error(error); fail(error.message || error); });

// The face on a canvas: a glTF 2.0 face with ARKit morph targets (what `mmface4d serve` gives at
// /face.glb and `mmface4d animate` writes as NAME.glb), lit and framed, its morph weights set by
// name. Shared by the live page (app.js) and the offline NAME_viewer.html that animate writes.
// three.js comes through the page's import map ('three', 'three/addons/...').
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

export class FaceView {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({
      canvas,
      antialias: true,
      alpha: false,
      preserveDrawingBuffer: true, // screenshots and pixel reads see the last frame
    });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.toneMapping = THREE.NeutralToneMapping;
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x1d2129);
    this.camera = new THREE.PerspectiveCamera(24, 1, 0.01, 100);
    // a soft studio: sky/ground fill, a warm key from the upper left, a cool rim from behind
    this.scene.add(new THREE.HemisphereLight(0xf4f1ff, 0x3a3530, 1.4));
    const key = new THREE.DirectionalLight(0xfff4e8, 2.2);
    key.position.set(-0.6, 0.8, 1.0);
    this.scene.add(key);
    const fill = new THREE.DirectionalLight(0xe8f0ff, 0.7);
    fill.position.set(0.8, 0.1, 0.9);
    this.scene.add(fill);
    const rim = new THREE.DirectionalLight(0xcfe0ff, 0.9);
    rim.position.set(0.2, 0.6, -1.0);
    this.scene.add(rim);
    this.meshes = []; // meshes with morph targets
    this.names = []; // morph target names (the first morphing mesh's order)
    this.animations = [];
    this.root = null;
    this.onRender = null; // called after each render (the tests measure pixels there)
    this.center = new THREE.Vector3();
    this.size = new THREE.Vector3(0.2, 0.25, 0.2);
    this._resize = () => this.resize();
    window.addEventListener('resize', this._resize);
    this.resize();
  }

  /** Load a .glb from a URL or an ArrayBuffer; frames the camera on it. */
  async load(source) {
    const loader = new GLTFLoader();
    const gltf = typeof source === 'string'
      ? await loader.loadAsync(source)
      : await loader.parseAsync(source, '');
    if (this.root) this.scene.remove(this.root);
    this.root = gltf.scene;
    this.animations = gltf.animations || [];
    this.meshes = [];
    this.root.traverse((node) => {
      if (!node.isMesh) return;
      const hasColors = !!node.geometry.getAttribute('color');
      node.material = new THREE.MeshStandardMaterial({
        color: hasColors ? 0xffffff : 0xd9a88f,
        vertexColors: hasColors,
        roughness: 0.62,
        metalness: 0.0,
        side: THREE.DoubleSide, // the mouth's inside and the lids seen from any side
      });
      if (node.morphTargetDictionary) this.meshes.push(node);
    });
    const dictionary = this.meshes.length ? this.meshes[0].morphTargetDictionary : {};
    this.names = Object.keys(dictionary).sort((a, b) => dictionary[a] - dictionary[b]);
    this.scene.add(this.root);
    this.frame();
    this.render();
    return this;
  }

  /** Put the camera in front of the face (+z, glTF's front), the face filling the view. */
  frame() {
    // the neutral vertices only (three.js's own bounds grow by every morph target's reach)
    const box = new THREE.Box3();
    this.root.updateWorldMatrix(true, true);
    this.root.traverse((node) => {
      const position = node.isMesh && node.geometry.getAttribute('position');
      if (position) box.union(new THREE.Box3().setFromBufferAttribute(position)
        .applyMatrix4(node.matrixWorld));
    });
    box.getCenter(this.center);
    box.getSize(this.size);
    const fov = THREE.MathUtils.degToRad(this.camera.fov);
    const fitHeight = (this.size.y * 1.12) / 2 / Math.tan(fov / 2);
    const fitWidth = (this.size.x * 1.12) / 2 / Math.tan(fov / 2) / this.camera.aspect;
    const distance = Math.max(fitHeight, fitWidth) + this.size.z / 2;
    this.camera.position.set(this.center.x, this.center.y, this.center.z + distance);
    this.camera.near = distance / 20;
    this.camera.far = distance * 20;
    this.camera.lookAt(this.center);
    this.camera.updateProjectionMatrix();
  }

  resize() {
    const width = this.canvas.clientWidth || 512;
    const height = this.canvas.clientHeight || 512;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    if (this.root) this.frame();
    else this.camera.updateProjectionMatrix();
    this.render();
  }

  /** Set morph weights by name ({jawOpen: 0.3, ...}); names the face lacks are ignored. */
  setWeights(weights) {
    for (const mesh of this.meshes) {
      const dictionary = mesh.morphTargetDictionary;
      const influences = mesh.morphTargetInfluences;
      for (const name in weights) {
        const index = dictionary[name];
        if (index !== undefined) influences[index] = weights[name];
      }
    }
  }

  /** Set every morph weight, in the order of this.names (a Float32Array or an array). */
  setWeightArray(values) {
    for (const mesh of this.meshes) {
      const dictionary = mesh.morphTargetDictionary;
      const influences = mesh.morphTargetInfluences;
      for (let k = 0; k < this.names.length; k++) {
        const index = dictionary[this.names[k]];
        if (index !== undefined) influences[index] = values[k] || 0;
      }
    }
  }

  /** All weights back to zero: the neutral face. */
  neutral() {
    for (const mesh of this.meshes) mesh.morphTargetInfluences.fill(0);
  }

  render() {
    this.renderer.render(this.scene, this.camera);
    if (this.onRender) this.onRender(this);
  }

  /** The RGBA pixels (bottom row first) of a canvas rectangle in CSS pixels, as drawn last. */
  regionPixels(box) {
    const gl = this.renderer.getContext();
    const ratio = this.renderer.getPixelRatio();
    const x = Math.max(0, Math.floor(box.x * ratio)), w = Math.ceil(box.width * ratio);
    const h = Math.ceil(box.height * ratio);
    const y = Math.max(0, gl.drawingBufferHeight - Math.floor(box.y * ratio) - h);
    const pixels = new Uint8Array(w * h * 4);
    gl.readPixels(x, y, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    return pixels;
  }

  /**
   * The canvas rectangle (CSS pixels, relative to the canvas) around the vertices that morph
   * target `name` moves most (by default jawOpen: the mouth and chin), or null.
   */
  regionBox(name = 'jawOpen') {
    const mesh = this.meshes.find((m) => m.morphTargetDictionary[name] !== undefined);
    if (!mesh) return null;
    const target = mesh.geometry.morphAttributes.position[mesh.morphTargetDictionary[name]];
    const base = mesh.geometry.getAttribute('position');
    let largest = 0;
    for (let i = 0; i < target.count; i++) {
      largest = Math.max(largest, Math.hypot(target.getX(i), target.getY(i), target.getZ(i)));
    }
    if (largest === 0) return null;
    const point = new THREE.Vector3();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const width = this.canvas.clientWidth, height = this.canvas.clientHeight;
    mesh.updateWorldMatrix(true, false);
    for (let i = 0; i < target.count; i++) {
      if (Math.hypot(target.getX(i), target.getY(i), target.getZ(i)) < 0.3 * largest) continue;
      point.fromBufferAttribute(base, i).applyMatrix4(mesh.matrixWorld).project(this.camera);
      const x = ((point.x + 1) / 2) * width, y = ((1 - point.y) / 2) * height;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  }
}

/** Interpolated weights at time t from frames [{t, w: Float32Array}] sorted by t. */
export function weightsAt(frames, t) {
  if (!frames.length) return null;
  if (t <= frames[0].t) return frames[0].w;
  let lo = 0, hi = frames.length - 1;
  if (t >= frames[hi].t) return frames[hi].w;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (frames[mid].t <= t) lo = mid; else hi = mid;
  }
  const a = frames[lo], b = frames[hi];
  const u = (t - a.t) / Math.max(b.t - a.t, 1e-9);
  const out = new Float32Array(a.w.length);
  for (let k = 0; k < out.length; k++) out[k] = a.w[k] + (b.w[k] - a.w[k]) * u;
  return out;
}

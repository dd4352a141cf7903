// Streaming resampling of the microphone to the 16 kHz the page sends: a windowed sinc
// (Hann window, `zeros` zero crossings a side, cut-off 0.92 of the lower Nyquist), DC gain 1,
// state carried between chunks so that any chunking gives the same samples.
export class Resampler {
  constructor(inRate, outRate = 16000, zeros = 12) {
    this.step = inRate / outRate;
    this.cut = Math.min(1, outRate / inRate) * 0.92; // of the input's Nyquist
    this.half = Math.ceil((zeros * Math.max(1, this.step)) / 0.92);
    this.buffer = new Float32Array(this.half); // leading zeros: the first output at sample 0
    this.pos = this.half;
  }

  push(input) {
    if (this.step === 1) return input;
    const joined = new Float32Array(this.buffer.length + input.length);
    joined.set(this.buffer);
    joined.set(input, this.buffer.length);
    const out = [];
    const { half, cut } = this;
    while (this.pos + half < joined.length) {
      const centre = Math.floor(this.pos);
      let sum = 0, norm = 0;
      for (let j = centre - half + 1; j <= centre + half; j++) {
        const d = this.pos - j;
        const x = Math.PI * d * cut;
        const sinc = x === 0 ? 1 : Math.sin(x) / x;
        const taper = 0.5 + 0.5 * Math.cos((Math.PI * d) / (half + 1));
        const w = sinc * taper;
        sum += joined[j] * w;
        norm += w;
      }
      out.push(sum / norm);
      this.pos += this.step;
    }
    const drop = Math.max(0, Math.floor(this.pos) - half);
    this.buffer = joined.slice(drop);
    this.pos -= drop;
    return Float32Array.from(out);
  }
}

"""Prosody of speech per mesh frame: energy and pitch, each normalised to [0, 1] in the clip.

Used to drive paralinguistic motion (brows, head nods) from speech.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def prosody(audio: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """(T, 2) per-frame [energy, pitch] features in [0, 1] from the waveform.

    Energy: smoothed RMS normalised by its 95th percentile. Pitch: autocorrelation peak in
    70-400 Hz, normalised within the utterance (0 where unvoiced).
    """
    hop = sample_rate / fps
    win = int(round(2 * hop))
    feats = np.zeros((num_frames, 2))
    for i in range(num_frames):
        seg = audio[int(i * hop) : int(i * hop) + win]
        if len(seg) < 16:
            continue
        feats[i, 0] = np.sqrt(np.mean(seg**2))
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, mode="full")[len(seg) - 1 :]
        lo, hi = int(sample_rate / 400), min(int(sample_rate / 70), len(ac) - 1)
        if hi > lo and ac[0] > 0:
            lag = lo + int(np.argmax(ac[lo:hi]))
            if ac[lag] / ac[0] > 0.4:
                feats[i, 1] = sample_rate / lag
    feats[:, 0] = gaussian_filter1d(feats[:, 0], 1.5)
    feats[:, 0] /= max(np.percentile(feats[:, 0], 95), 1e-9)
    voiced = feats[:, 1] > 0
    if voiced.sum() > 2:
        p = feats[voiced, 1]
        feats[voiced, 1] = (p - p.min()) / max(np.ptp(p), 1e-9)
    return np.clip(feats, 0.0, 1.0)

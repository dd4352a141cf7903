import numpy as np
import pytest

from mmface4d.emotions import EMOTIONS
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth import expressive
from mmface4d.synth.performance import perform, performance_vertices
from mmface4d.synth.style import SpeakingStyle, sample_subjects
from mmface4d.synth.visemes import TimedClass

SR = 16000


@pytest.fixture(scope="module")
def model():
    return load_face_model("synth")


def utterance(seconds: float = 2.0):
    """A fake utterance: syllables of noise every 0.25 s with alternating classes."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * SR), dtype=np.float32)
    phon, t = [TimedClass("silence", 0.0, 0.2)], 0.2
    classes = ["bilabial", "vowel_open", "alveolar", "vowel_round"]
    k = 0
    while t < seconds - 0.3:
        cls = classes[k % 4]
        dur = 0.08 if "vowel" not in cls else 0.17
        phon.append(TimedClass(cls, t, t + dur))
        if "vowel" in cls:
            n0, n1 = int(t * SR), int((t + dur) * SR)
            tt = np.arange(n1 - n0) / SR
            audio[n0:n1] = 0.3 * np.sin(2 * np.pi * (120 + 40 * (k % 3)) * tt)
        t += dur
        k += 1
    phon.append(TimedClass("silence", t, seconds))
    audio += 0.001 * rng.normal(size=audio.shape).astype(np.float32)
    return phon, audio


def test_subjects_reproducible_and_distinct(model):
    a = sample_subjects(model, 3, seed=7)
    b = sample_subjects(model, 5, seed=7)
    for x, y in zip(a, b, strict=False):
        assert x.subject_id == y.subject_id and x.style == y.style
        np.testing.assert_array_equal(x.identity, y.identity)
    assert a[0].style != a[1].style
    assert all(15 <= s.age <= 68 and s.gender in ("female", "male") for s in b)


def test_perform_shapes_sync_and_closure(model):
    phon, audio = utterance()
    subject = sample_subjects(model, 1, seed=1)[0]
    perf = perform(phon, audio, SR, subject, emotion="happy", intensity=0.8, seed=3)
    assert perf.num_frames == 60
    assert perf.arkit_weights.min() >= 0 and perf.arkit_weights.max() <= 1
    jaw, close = ARKIT_52.index("jawOpen"), ARKIT_52.index("mouthClose")
    shut = perf.lip_closure == 1.0
    assert shut.any()
    np.testing.assert_allclose(perf.arkit_weights[shut, close], perf.arkit_weights[shut, jaw])
    smile = ARKIT_52.index("mouthSmileLeft")
    assert perf.arkit_weights[30:, smile].mean() > 0.3  # happy


def test_lips_close_on_bilabials_in_the_mesh(model):
    phon, audio = utterance()
    subject = sample_subjects(model, 2, seed=1)[1]
    perf = perform(phon, audio, SR, subject, seed=0)
    verts = performance_vertices(model, subject, perf, camera_frame=False)
    lm = model.landmarks
    gap = np.linalg.norm(verts[:, lm[62]] - verts[:, lm[66]], axis=1)
    for p in perf.phonemes:
        if p.cls == "bilabial":
            frame = int(round((p.start + p.end) / 2 * perf.fps))
            assert gap[max(frame - 1, 0) : frame + 2].min() < 5e-4  # closed within +-1 frame
    assert gap.max() > 0.005  # and the mouth opens elsewhere


def test_style_changes_motion(model):
    phon, audio = utterance()
    subjects = sample_subjects(model, 2, seed=1)
    strong = subjects[0].__class__(
        **{**subjects[0].__dict__, "style": SpeakingStyle(articulation=1.4)}
    )
    weak = subjects[0].__class__(
        **{**subjects[0].__dict__, "style": SpeakingStyle(articulation=0.6)}
    )
    jaw = ARKIT_52.index("jawOpen")
    a = perform(phon, audio, SR, strong, seed=0).arkit_weights[:, jaw]
    b = perform(phon, audio, SR, weak, seed=0).arkit_weights[:, jaw]
    assert a.max() > 1.8 * b.max()


def test_blinks_rate():
    rng = np.random.default_rng(0)
    _, onsets = expressive.blink_weights(30 * 600, 30.0, 17.0, rng)
    assert 12 * 10 < len(onsets) < 22 * 10  # about 17 per minute over 10 minutes


def test_emotions_and_errors():
    for name in EMOTIONS:
        w = expressive.emotion_weights(name, 1.0, 20, 30.0)
        assert (w.max() > 0) == (name != "neutral")
    with pytest.raises(InputError, match="unknown emotion"):
        expressive.emotion_weights("bored", 1.0, 20, 30.0)
    with pytest.raises(InputError, match="intensity"):
        expressive.emotion_weights("happy", 2.0, 20, 30.0)


def test_camera_frame():
    v = np.array([[[0.01, 0.02, 0.09]]])
    c = to_camera_frame(v)
    np.testing.assert_allclose(c, [[[0.01, -0.02, 0.72 - 0.09]]])

import pytest

from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.synth.visemes import VISEMES, TimedClass, coarticulate, enforce_closure, viseme_vector

JAW = ARKIT_52.index("jawOpen")
FUNNEL = ARKIT_52.index("mouthFunnel")
CLOSE = ARKIT_52.index("mouthClose")


def seq(*items: tuple[str, float]) -> list[TimedClass]:
    out, t = [], 0.0
    for cls, dur in items:
        out.append(TimedClass(cls, t, t + dur))
        t += dur
    return out


def test_every_viseme_has_a_valid_target():
    for cls in VISEMES:
        vec = viseme_vector(cls)
        assert vec.shape == (52,) and vec.min() >= 0 and vec.max() <= 1
    with pytest.raises(InputError, match="unknown phoneme class"):
        viseme_vector("click")


def test_open_vowel_opens_the_jaw_and_silence_rests():
    phon = seq(("silence", 0.3), ("vowel_open", 0.3), ("silence", 0.4))
    w, closure = coarticulate(phon, 30, 30.0)
    assert w[13, JAW] > 0.3  # centre of the vowel (0.45 s)
    assert w[0, JAW] < 0.05 and w[-1, JAW] < 0.05
    assert closure.max() == 0


def test_anticipatory_rounding():
    # rounding reaches further ahead of a rounded vowel than behind it
    phon = seq(
        ("silence", 0.3),
        ("alveolar", 0.1),
        ("vowel_round", 0.2),
        ("alveolar", 0.1),
        ("silence", 0.3),
    )
    w, _ = coarticulate(phon, 30, 30.0)
    centre = 0.5
    before = w[int((centre - 0.15) * 30), FUNNEL]
    after = w[int((centre + 0.15) * 30), FUNNEL]
    assert before > after


@pytest.mark.parametrize("dur", [0.02, 0.05, 0.12])
def test_bilabials_always_close(dur):
    phon = seq(("vowel_open", 0.2), ("bilabial", dur), ("vowel_open", 0.2))
    fps = 30.0
    w, closure = coarticulate(phon, 15, fps)
    w = enforce_closure(w, closure)
    centre = 0.2 + dur / 2
    frame = int(round(centre * fps))
    assert closure[frame] == 1.0
    assert w[frame, CLOSE] == pytest.approx(w[frame, JAW])
    assert w[frame, FUNNEL] == 0


def test_coarticulate_errors():
    with pytest.raises(InputError):
        coarticulate([], 0, 30.0)
    w, c = coarticulate([], 5, 30.0)
    assert w.shape == (5, 52) and not w.any() and not c.any()

import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.synth.voices import (
    VoiceSpec,
    espeak_voice_name,
    list_variants,
    list_voices,
    sample_voice,
)


def test_voices_are_read_from_the_data_folder():
    en = {v.name for v in list_voices("en")}
    assert {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp"} <= en
    assert "en-shaw" not in en  # a script-specific voice, not ordinary English text
    assert [v.name for v in list_voices("zh")] == ["cmn"]
    with pytest.raises(InputError, match="unsupported language 'de'"):
        list_voices("de")


def test_variants_and_their_filter():
    variants = {v.name: v for v in list_variants()}
    assert len(variants) > 50
    assert variants["m3"].gender == "male" and variants["f2"].gender == "female"
    assert variants["m3"].natural and variants["klatt"].natural
    for effect in ["whisper", "robosoft", "Demonic", "fast"]:
        assert not variants[effect].natural


def test_espeak_names():
    assert espeak_voice_name(VoiceSpec("en-gb", "m3")) == "en+m3"
    assert espeak_voice_name(VoiceSpec("EN-US")) == "en-US"
    assert espeak_voice_name(VoiceSpec("cmn", "f2")) == "cmn+f2"
    assert VoiceSpec("cmn").lang == "zh" and VoiceSpec("en-gb-scotland").lang == "en"


def test_sample_voice_is_reproducible_and_diverse():
    draw = lambda seed: sample_voice(np.random.default_rng(seed), "en")  # noqa: E731
    assert draw(3) == draw(3)
    rng = np.random.default_rng(0)
    voices = [sample_voice(rng, "en") for _ in range(200)]
    assert len({v.name for v in voices}) >= 6
    assert len({v.variant for v in voices}) >= 40
    assert len({v.pitch for v in voices}) >= 20 and len({v.rate for v in voices}) >= 30
    assert 60 <= sum(v.gender == "female" for v in voices) <= 140
    assert all(110 <= v.rate <= 175 and 20 <= v.pitch <= 80 for v in voices)
    natural = {v.name for v in list_variants() if v.natural}
    assert {v.variant for v in voices} <= natural


def test_sample_voice_gender_and_language():
    rng = np.random.default_rng(1)
    voices = [sample_voice(rng, "zh", "female") for _ in range(30)]
    assert all(v.gender == "female" and v.name == "cmn" and v.lang == "zh" for v in voices)
    with pytest.raises(InputError, match="gender 'other'"):
        sample_voice(rng, "en", "other")
    with pytest.raises(InputError, match="numpy.random.Generator"):
        sample_voice(42, "en")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unsupported language 'xx'"):
        sample_voice(rng, "xx")


def test_voice_spec_validation():
    with pytest.raises(InputError, match="pitch_range=100"):
        VoiceSpec("en-us", pitch_range=100)
    with pytest.raises(InputError, match="rate must be an integer"):
        VoiceSpec("en-us", rate=1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no supported language"):
        _ = VoiceSpec("de").lang

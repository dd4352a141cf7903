import multiprocessing
import threading

import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.synth import _espeak
from mmface4d.synth.speech import (
    EspeakEngine,
    Phoneme,
    VoiceSpec,
    _phonemes_from_events,
    _shift,
    _speech_bounds,
    _words,
    phoneme_class,
)

ENGINE = EspeakEngine()
EN_TEXT = "Bob bought a map."
ZH_TEXT = "我们明天去北京，好吗？"


@pytest.fixture(scope="module")
def en_utt():
    return ENGINE.synthesize(EN_TEXT, "en")


@pytest.fixture(scope="module")
def zh_utt():
    return ENGINE.synthesize(ZH_TEXT, "zh")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def check_tiling(utt):
    ph = utt.phonemes
    assert ph[0].start == 0.0
    assert ph[-1].end == pytest.approx(utt.duration, abs=1e-9)
    for a, b in zip(ph, ph[1:], strict=False):
        assert a.end == pytest.approx(b.start, abs=1e-9)
        assert a.end > a.start
    assert not any(a.is_silence and b.is_silence for a, b in zip(ph, ph[1:], strict=False))


@pytest.mark.parametrize("name", ["en_utt", "zh_utt"])
def test_speech_is_16k_non_silent_and_phonemes_tile_it(name, request):
    utt = request.getfixturevalue(name)
    assert utt.sample_rate == 16000
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert np.abs(utt.audio).max() <= 1.0
    assert rms(utt.audio) > 0.01
    assert 0.5 < utt.duration < 4.0
    check_tiling(utt)
    assert utt.voice == VoiceSpec("en-us" if name == "en_utt" else "cmn")
    # trimmed to speech: the first and last 20 ms hold sound (within the 20 ms margin + 20 ms)
    edge = int(0.04 * utt.sample_rate)
    assert np.abs(utt.audio[:edge]).max() > 0.01 and np.abs(utt.audio[-edge:]).max() > 0.001


def test_bilabials_of_bob_bought_a_map_are_timed(en_utt):
    bilabials = [p for p in en_utt.phonemes if phoneme_class(p.symbol) == "bilabial"]
    assert [p.symbol for p in bilabials] == ["b", "b", "b", "m", "p"]
    words = {w.text: w for w in en_utt.words}
    assert list(words) == ["Bob", "bought", "a", "map"]
    m, p = bilabials[3], bilabials[4]
    assert words["map"].start - 0.02 <= m.start < p.start < words["map"].end + 0.02
    # the p of "map" is a closure: quieter than the vowel before it
    vowel = next(x for x in en_utt.phonemes if x.end == pytest.approx(p.start))
    sr = en_utt.sample_rate
    seg = lambda x: en_utt.audio[int(x.start * sr) : int(x.end * sr)]  # noqa: E731
    assert phoneme_class(vowel.symbol) == "vowel_open"
    assert rms(seg(p)[: len(seg(p)) // 2]) < 0.3 * rms(seg(vowel))


def test_mandarin_gives_mandarin_phonemes(zh_utt):
    symbols = [p.symbol for p in zh_utt.phonemes]
    assert {"tɕ", "tɕʰ", "tʰ"} <= set(symbols)  # 京, 去, 天: pinyin j, q, t
    assert "p" in symbols and "χ" in symbols  # 北, 好
    assert not any("(" in s for s in symbols)
    assert [w.text for w in zh_utt.words] == list("我们明天去北京好吗")
    assert all(phoneme_class(s) != "unknown" for s in symbols)
    # the comma is a pause between 京 and 好
    words = {w.text: w for w in zh_utt.words}
    pauses = [p for p in zh_utt.phonemes if p.is_silence and p.duration > 0.08]
    assert any(words["京"].end <= p.start and p.end <= words["好"].start + 0.03 for p in pauses)


def test_retroflex_initials_are_ipa():
    utt = ENGINE.synthesize("吃饭是什么时候", "zh")
    symbols = {p.symbol.lstrip("ˈˌ") for p in utt.phonemes}
    assert {"tʂʰ", "ʂ", "f"} <= symbols
    assert not any("." in s for s in symbols)


def test_duration_scales_with_rate():
    slow = ENGINE.synthesize(EN_TEXT, "en", VoiceSpec("en-us", rate=110))
    fast = ENGINE.synthesize(EN_TEXT, "en", VoiceSpec("en-us", rate=300))
    assert slow.duration / fast.duration > 1.8
    check_tiling(slow)
    check_tiling(fast)


def test_voices_differ(en_utt):
    others = [
        ENGINE.synthesize(EN_TEXT, "en", VoiceSpec("en-gb-scotland", "f2")),
        ENGINE.synthesize(EN_TEXT, "en", VoiceSpec("en-us", pitch=80)),
    ]
    for other in others:
        n = min(len(other.audio), len(en_utt.audio))
        assert len(other.audio) != len(en_utt.audio) or not np.allclose(
            other.audio[:n], en_utt.audio[:n], atol=1e-3
        )


def test_same_voice_and_text_give_identical_speech(en_utt):
    ENGINE.synthesize("Something else in between, with another voice.", "en", VoiceSpec("en-gb"))
    again = ENGINE.synthesize(EN_TEXT, "en")
    assert np.array_equal(again.audio, en_utt.audio)
    assert again.phonemes == en_utt.phonemes and again.words == en_utt.words


def test_threads_get_the_same_speech_as_serial(en_utt, zh_utt):
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        text, lang = (EN_TEXT, "en") if i % 2 == 0 else (ZH_TEXT, "zh")
        results[i] = ENGINE.synthesize(text, lang).audio

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, audio in results.items():
        assert np.array_equal(audio, (en_utt if i % 2 == 0 else zh_utt).audio)
    assert len(results) == 4


def _worker_audio(text: str) -> np.ndarray:
    return EspeakEngine().synthesize(text, "en").audio


def test_worker_processes_get_the_same_speech(en_utt):
    with multiprocessing.get_context("fork").Pool(2) as pool:
        audios = pool.map(_worker_audio, [EN_TEXT, EN_TEXT])
    assert all(np.array_equal(a, en_utt.audio) for a in audios)


@pytest.mark.parametrize(
    ("text", "lang", "voice", "match"),
    [
        ("hello", "fr", None, "unsupported language 'fr'.*en, zh"),
        ("   ", "en", None, "text is empty"),
        ("🙂🙂", "en", None, "'🙂🙂' has no letters"),
        ("?!", "zh", None, "'\\?!' has no letters"),
        ("我们", "en", None, "Chinese characters"),
        ("hello", "en", VoiceSpec("cmn"), "speaks 'zh', not 'en'"),
        ("hello", "en", VoiceSpec("en-xx"), "unknown voice 'en-xx'"),
        ("hello", "en", VoiceSpec("en-us", "nobody"), "unknown voice variant 'nobody'"),
        ("hello", "en", "en-us", "voice must be a VoiceSpec"),
    ],
)
def test_bad_input_is_a_clear_error(text, lang, voice, match):
    with pytest.raises(InputError, match=match):
        ENGINE.synthesize(text, lang, voice)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"pitch": 150}, "pitch=150"), ({"rate": 50}, "rate=50"), ({"gender": "x"}, "gender")],
)
def test_bad_voice_spec(kwargs, match):
    with pytest.raises(InputError, match=match):
        VoiceSpec("en-us", **kwargs)


def test_text_without_speech_is_an_error(monkeypatch):
    silent = _espeak.RawSpeech(np.zeros(2205, np.int16), 22050, [])
    monkeypatch.setattr(_espeak, "synthesize_raw", lambda *args: silent)
    with pytest.raises(InputError, match="'ok' gives no speech"):
        ENGINE.synthesize("ok", "en")


def ev(symbol: str, ms: int) -> _espeak.RawEvent:
    return _espeak.RawEvent(_espeak.EVENT_PHONEME, ms / 1000, 1, 0, symbol)


def test_events_to_phonemes():
    marks = [("(en)", 0), ("f", 10), ("ˈɛ", 100), ("l", 400), ("", 400), ("", 450), ("ˈa", 520),
             ("", 600), ("p", 639), ("ˈo-", 700), ("", 800), ("", 800)]  # fmt: skip
    events = [ev(symbol, ms) for symbol, ms in marks]
    got = [
        (p.symbol, round(p.start, 3), round(p.end, 3)) for p in _phonemes_from_events(events, 0.9)
    ]
    assert got == [
        ("_", 0.0, 0.01),  # before the first phoneme (the language marker is dropped)
        ("f", 0.01, 0.1),
        ("ˈɛ", 0.1, 0.34),
        ("l", 0.34, 0.4),  # zero-length l borrows 60 ms from its vowel
        ("_", 0.4, 0.52),  # two pauses merged
        ("ˈa", 0.52, 0.6),
        ("p", 0.6, 0.7),  # a 39 ms pause before a stop is its closure
        ("ˈɤ", 0.7, 0.8),  # espeak's "o-" as IPA
        ("_", 0.8, 0.9),
    ]


def test_trim_bounds_and_shift():
    rate = 16000
    audio = np.zeros(rate, np.float32)
    audio[4000:8000] = 0.5 * np.sin(np.arange(4000) * 0.3)
    i0, i1 = _speech_bounds(audio, rate, 40.0, 0.02)
    assert 4000 - 320 - 80 <= i0 <= 4000 - 320  # 20 ms margin, 5 ms analysis windows
    assert 8000 + 320 <= i1 <= 8000 + 320 + 80
    phonemes = [Phoneme("_", 0.0, 0.25), Phoneme("a", 0.25, 0.5), Phoneme("_", 0.5, 1.0)]
    t0, total = i0 / rate, (i1 - i0) / rate
    shifted = _shift(phonemes, t0, total)
    assert [p.symbol for p in shifted] == ["_", "a", "_"]
    assert shifted[0].start == 0 and shifted[-1].end == total
    assert shifted[1].start == pytest.approx(0.25 - t0)


def test_another_espeak_user_in_the_process_does_not_interfere(en_utt):
    import ctypes

    import espeakng_loader

    other = ctypes.CDLL(espeakng_loader.get_library_path())
    other.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    assert other.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0) > 0
    assert other.espeak_SetVoiceByName(b"en-gb-scotland+f2") == 0
    assert np.array_equal(ENGINE.synthesize(EN_TEXT, "en").audio, en_utt.audio)
    assert other.espeak_SetVoiceByName(b"en-us") == 0  # still loaded and usable


def test_words_follow_the_text_whatever_espeak_positions_say():
    def word_event(position: int, length: int, ms: int) -> _espeak.RawEvent:
        return _espeak.RawEvent(_espeak.EVENT_WORD, ms / 1000, position, length, "")

    text = "I have 123 apples, in the U.S.A. 苹果"
    # espeak: three events inside "123", none for "the", "S", "A" and "果"
    marks = [(1, 1, 0), (3, 4, 100), (8, 3, 300), (9, 3, 600), (9, 3, 800), (12, 6, 1000),
             (20, 2, 1400), (27, 1, 1600), (34, 1, 2000)]  # fmt: skip
    events = [word_event(*mark) for mark in marks]
    phonemes = [
        Phoneme("a", 0.0, 1.0),
        Phoneme("z", 1.0, 1.3),
        Phoneme("_", 1.3, 1.4),
        Phoneme("a", 1.4, 2.5),
    ]
    words = _words(events, text, phonemes, 0.0, 2.5)
    assert [w.text for w in words] == ["I", "have", "123", "apples", "in the", "U.S.A", "苹果"]
    assert [w.start for w in words] == [0.0, 0.1, 0.3, 1.0, 1.4, 1.6, 2.0]
    assert words[3].end == pytest.approx(1.3)  # "apples" ends where the pause starts
    assert words[-1].end == 2.5


def test_words_next_to_quotes():
    utt = ENGINE.synthesize("I said “we go” now", "en")
    assert [w.text for w in utt.words] == ["I", "said", "we", "go", "now"]
    assert all(a.start < b.start for a, b in zip(utt.words, utt.words[1:], strict=False))
    assert all(w.start < w.end <= utt.duration for w in utt.words)

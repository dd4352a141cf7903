import collections

import pytest

from mmface4d.emotions import EMOTION_NAMES
from mmface4d.errors import InputError
from mmface4d.synth.languages import is_han
from mmface4d.synth.phonemes import PHONEME_CLASSES, phoneme_classes
from mmface4d.synth.sentences import (
    EMOTIONS,
    Sentence,
    load_sentence_file,
    resolve_emotion,
    sentences,
)
from mmface4d.synth.speech import EspeakEngine


def test_emotion_codes_are_mmface4d_prefixes():
    assert EMOTIONS == {"neutral": "00", "happy": "21", "angry": "22", "sad": "23",
                        "surprise": "24", "fear": "25", "disgust": "26"}  # fmt: skip
    assert all(EMOTIONS[name] == code for code, name in EMOTION_NAMES.items())
    assert resolve_emotion("Happy") == resolve_emotion("21") == ("happy", "21")
    with pytest.raises(InputError, match="unknown emotion 'joy'.*happy \\(21\\)"):
        resolve_emotion("joy")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_corpus_has_a_dozen_sentences_per_emotion(lang):
    everything = sentences(lang)
    assert len({s.id for s in everything}) == len(everything)
    assert len({s.text for s in everything}) == len(everything)
    for name, code in EMOTIONS.items():
        subset = sentences(lang, name)
        assert len(subset) >= 12
        assert subset == sentences(lang, code)
        assert all(s.emotion == name and s.emotion_code == code and s.lang == lang for s in subset)
        assert all(s.id.startswith(f"{lang}-{code}-") for s in subset)
    han = [any(is_han(c) for c in s.text) for s in everything]
    assert all(han) if lang == "zh" else not any(han)
    with pytest.raises(InputError, match="unsupported language"):
        sentences("de")
    with pytest.raises(InputError, match="unknown emotion"):
        sentences(lang, "bored")


@pytest.fixture(scope="module")
def spoken():
    """Every built-in sentence spoken once with the default voice (about 2 s for all)."""
    engine = EspeakEngine()
    return {s.id: (s, engine.synthesize(s.text, s.lang)) for s in sentences("en") + sentences("zh")}


def test_every_emitted_phoneme_has_a_known_class(spoken):
    unknown = {
        p.symbol
        for _, u in spoken.values()
        for p in u.phonemes
        if "unknown" in phoneme_classes(p.symbol)
    }
    assert not unknown


def test_sentences_are_short_and_cover_the_mouth_shapes(spoken):
    coverage: dict[tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    for sentence, utt in spoken.values():
        assert 1.5 < utt.duration < 5.0, sentence.text
        for p in utt.phonemes:
            coverage[sentence.lang, sentence.emotion].update(phoneme_classes(p.symbol))
    mouth = {
        "bilabial",
        "labiodental",
        "vowel_round",
        "vowel_open",
        "vowel_close",
        "approximant_round",
        "postalveolar",
        "velar",
    }
    for (lang, emotion), counts in coverage.items():
        assert mouth <= set(counts), (lang, emotion, mouth - set(counts))
    english = sum((c for (lang, _), c in coverage.items() if lang == "en"), collections.Counter())
    assert set(english) == set(PHONEME_CLASSES)  # English uses every class, dental included


def test_load_sentence_file(tmp_path):
    path = tmp_path / "my lines.txt"
    path.write_text(
        "# my sentences\nhappy\tWhat a lovely day!\n\nPlain words here.\n26\tThat smells bad.\n",
        encoding="utf-8",
    )
    got = load_sentence_file(path, "en")
    assert got == [
        Sentence("my_lines-0002", "What a lovely day!", "en", "happy", "21"),
        Sentence("my_lines-0004", "Plain words here.", "en", "neutral", "00"),
        Sentence("my_lines-0005", "That smells bad.", "en", "disgust", "26"),
    ]
    zh = tmp_path / "zh.txt"
    zh.write_text("fear\t我好害怕。\n", encoding="utf-8")
    assert load_sentence_file(zh, "zh")[0].emotion_code == "25"


@pytest.mark.parametrize(
    ("content", "lang", "match"),
    [
        (b"joy\thello\n", "en", ":1: unknown emotion 'joy'"),
        (b"hello\n21\t  \n", "en", ":2: text is empty"),
        (b"a\tb\tc\n", "en", ":1: expected 'text' or 'emotion<TAB>text'"),
        (b"\xff\xfehello\n", "en", "not UTF-8"),
        (b"# nothing\n\n", "en", "no sentences"),
        ("\u6211\u4eec\n".encode(), "en", ":1: .*Chinese characters"),
        (b"hello\n", "fr", "unsupported language"),
    ],
)
def test_bad_sentence_files(tmp_path, content, lang, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_sentence_file(path, lang)


def test_missing_sentence_file(tmp_path):
    with pytest.raises(InputError, match="sentence file not found"):
        load_sentence_file(tmp_path / "nope.txt", "en")

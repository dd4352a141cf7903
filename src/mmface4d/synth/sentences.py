"""Sentences to speak: the built-in corpus (seven emotions, English and Mandarin) and user files.

The built-in sentences were written for this project. Following the MMFace4D corpus design,
each emotion has its own emotionally fitting sentences, with lip-visible phonemes spread through
them. Emotion codes are MMFace4D's sentence prefixes (``docs/FORMATS.md``).

A user's sentence file is UTF-8 text, one sentence per line, optionally ``emotion<TAB>text``
where emotion is a name (``happy``) or a code (``21``); lines without one are neutral. Blank lines
and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mmface4d.emotions import EMOTIONS, resolve_emotion
from mmface4d.errors import InputError
from mmface4d.synth._sentence_corpus import CORPUS
from mmface4d.synth.languages import check_language, check_text


@dataclass(frozen=True)
class Sentence:
    """One sentence to speak.

    Attributes:
        id: unique and file-name safe, e.g. ``"en-21-03"`` (language, emotion code, number).
        text: what to say.
        lang: ``"en"`` or ``"zh"``.
        emotion: emotion name, e.g. ``"happy"``.
        emotion_code: MMFace4D code, e.g. ``"21"``.
    """

    id: str
    text: str
    lang: str
    emotion: str
    emotion_code: str


def sentences(lang: str, emotion: str | None = None) -> list[Sentence]:
    """The built-in sentences of a language, all emotions or one.

    Args:
        lang: ``"en"`` or ``"zh"``.
        emotion: an emotion name or code; None for all seven (in :data:`EMOTIONS` order).

    Returns:
        The sentences, in a fixed order (ids are stable across releases that only add).
    """
    check_language(lang)
    names = list(EMOTIONS) if emotion is None else [resolve_emotion(emotion)[0]]
    out = []
    for name in names:
        code = EMOTIONS[name]
        for i, text in enumerate(CORPUS[lang][name], start=1):
            out.append(Sentence(f"{lang}-{code}-{i:02d}", text, lang, name, code))
    return out


def load_sentence_file(path: str | os.PathLike[str], lang: str) -> list[Sentence]:
    """Read a user's sentences: one per line, optionally ``emotion<TAB>text``.

    Args:
        path: UTF-8 text file.
        lang: the language of all its sentences (``"en"`` or ``"zh"``).

    Returns:
        The sentences in file order; ids are ``<file stem>-<line number>``.

    Raises:
        InputError: a missing or unreadable file, an unknown emotion, empty or unspeakable text
            (the message names the file and line), or a file without sentences.
    """
    check_language(lang)
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: sentence file not found")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", file.stem) or "sentences"
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) > 2:
            raise InputError(f"{file}:{number}: expected 'text' or 'emotion<TAB>text'")
        try:
            name, code = resolve_emotion(parts[0]) if len(parts) == 2 else ("neutral", "00")
            text = check_text(parts[-1], lang)
        except InputError as exc:
            raise InputError(f"{file}:{number}: {exc}") from None
        out.append(Sentence(f"{stem}-{number:04d}", text, lang, name, code))
    if not out:
        raise InputError(f"{file}: no sentences (one per line, optionally emotion<TAB>text)")
    return out

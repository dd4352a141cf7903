import csv
import json
import os
import signal

import numpy as np
import pytest

from mmface4d import cli
from mmface4d.audio.io import load_audio
from mmface4d.data.nut import decode_nut
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth.corpus import MANIFEST_COLUMNS, corpus, say


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    corpus(out, subjects=2, sentences=2, lang="both", seed=3, workers=1, progress=False)
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows


@pytest.fixture(scope="module")
def synth():
    return load_face_model("synth")


def test_layout_and_manifest(small_corpus):
    out, rows = small_corpus
    assert len(rows) == 4 and list(rows[0]) == list(MANIFEST_COLUMNS)
    assert {r["language"] for r in rows} == {"en", "zh"}
    for r in rows:
        folder = out / r["subject"]
        assert r["recording"].startswith(r["subject"] + "/")
        name = r["recording"].split("/")[1]
        assert len(name) == 6 and name[:2] == r["emotion_code"]
        for suffix in (".wav", "_0.nut", "_1.nut", "_2.nut", "_gt.npz"):
            assert (folder / f"{name}{suffix}").is_file()
    subjects = json.loads((out / "subjects.json").read_text())
    assert [s["subject"] for s in subjects] == ["S001", "S002"]


def test_audio_and_mesh_in_sync(small_corpus, synth):
    out, rows = small_corpus
    for r in rows:
        prefix = out / r["recording"]
        audio = load_audio(prefix.with_suffix(".wav"), 16000)
        verts = decode_nut(prefix, num_vertices=synth.num_vertices)
        assert abs(len(audio) / 16000 - len(verts) / 30.0) <= 1 / 30.0
        assert int(r["num_frames"]) == len(verts)
        # metres, in front of the centre camera (OpenCV frame)
        assert 0.55 < verts[..., 2].mean() < 0.8


def test_bilabials_close_the_lips_in_the_written_meshes(small_corpus, synth):
    out, rows = small_corpus
    lm = synth.landmarks
    closures = 0
    for r in rows:
        prefix = out / r["recording"]
        verts = decode_nut(prefix, num_vertices=synth.num_vertices)
        gt = np.load(f"{prefix}_gt.npz")
        gap = np.linalg.norm(verts[:, lm[62]] - verts[:, lm[66]], axis=1)
        for cls, (start, end) in zip(gt["phoneme_classes"], gt["phoneme_times"], strict=True):
            if cls != "bilabial":
                continue
            frame = int(round((start + end) / 2 * 30))
            window = gap[max(frame - 1, 0) : frame + 2]
            assert window.min() < 1e-3, (r["recording"], start)  # quantisation ~0.01 mm
            closures += 1
        assert gap.max() > 0.004  # the mouth opens while speaking
    assert closures > 0


def test_templates_are_the_neutral_faces_in_the_corpus_frame(small_corpus, synth):
    out, rows = small_corpus
    with np.load(out / "templates.npz") as templates:
        assert sorted(templates.files) == sorted({r["subject"] for r in rows})
        neutral = templates[rows[0]["subject"]]
    lm = synth.landmarks
    assert np.linalg.norm(neutral[lm[62]] - neutral[lm[66]]) < 1e-3  # mouth shut at rest
    first = decode_nut(out / rows[0]["recording"], num_vertices=synth.num_vertices)[0]
    assert np.abs(first - neutral).max() < 0.02  # same frame and place, the face at rest


def test_ground_truth_reproduces_the_mesh(small_corpus, synth):
    from mmface4d.synth.performance import Performance, performance_vertices
    from mmface4d.synth.style import sample_subjects

    out, rows = small_corpus
    r = rows[0]
    prefix = out / r["recording"]
    gt = np.load(f"{prefix}_gt.npz")
    subject = sample_subjects(synth, 2, seed=3)[int(r["subject"][1:]) - 1]
    perf = Performance(
        30.0, gt["arkit_weights"], gt["head_rotation"], gt["head_translation"], gt["lip_closure"]
    )
    expected = performance_vertices(synth, subject, perf)
    np.testing.assert_allclose(decode_nut(prefix, synth.num_vertices), expected, atol=2e-5)
    assert to_camera_frame(np.zeros((1, 3)))[0, 2] > 0.5


def test_rerun_skips_and_reproduces(small_corpus, tmp_path):
    out, rows = small_corpus
    wav = out / f"{rows[0]['recording']}.wav"
    before = wav.stat().st_mtime_ns
    corpus(out, subjects=2, sentences=2, lang="both", seed=3, workers=1, progress=False)
    assert wav.stat().st_mtime_ns == before  # finished recordings are skipped
    # a fresh run with the same seed writes the same data
    other = tmp_path / "again"
    corpus(other, subjects=1, sentences=2, lang="both", seed=3, workers=1, progress=False)
    r = next(x for x in rows if x["subject"] == "S001")
    a = load_audio(out / f"{r['recording']}.wav", 16000)
    b = load_audio(other / f"{r['recording']}.wav", 16000)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="different corpus"):
        corpus(out, subjects=3, sentences=2, lang="both", seed=3, workers=1, progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="--lang"):
        corpus(tmp_path / "x", lang="fr")
    with pytest.raises(InputError, match="at least one"):
        corpus(tmp_path / "x", subjects=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        corpus(tmp_path / "busy", subjects=1, sentences=1)
    with pytest.raises(InputError, match="empty"):
        say("   ", tmp_path / "s")
    with pytest.raises(InputError, match="emotion"):
        say("hello", tmp_path / "s", emotion="bored")


def test_say_cli(tmp_path, capsys, synth):
    argv = ["synth", "say", "Maybe we meet at the beach.", "-o", str(tmp_path / "clip")]
    assert cli.main([*argv, "--emotion", "happy", "--subject", "2"]) == 0
    assert (tmp_path / "clip" / "say.wav").is_file()
    verts = decode_nut(tmp_path / "clip" / "say", synth.num_vertices)
    assert verts.shape[1:] == (synth.num_vertices, 3)
    with pytest.raises(SystemExit):  # argparse rejects the language choice itself
        cli.main(["synth", "say", "hello", "-o", str(tmp_path / "c2"), "--lang", "fr"])
    assert cli.main(["synth", "say", "hello", "-o", str(tmp_path / "c3"), "--emotion", "x"]) == 2


def test_own_sentence_file(tmp_path):
    text = tmp_path / "lines.txt"
    text.write_text("happy\tWe baked a warm apple pie.\nPlease move the blue box.\n")
    out = tmp_path / "mine"
    corpus(
        out, subjects=1, sentences=2, lang="en", seed=0, workers=1, progress=False, text_file=text
    )
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["sentence"] for r in rows} == {
        "We baked a warm apple pie.",
        "Please move the blue box.",
    }
    assert {r["emotion"] for r in rows} == {"happy", "neutral"}
    with pytest.raises(InputError, match="one language"):
        corpus(tmp_path / "x", lang="both", text_file=text)
    with pytest.raises(InputError, match="not found"):
        corpus(tmp_path / "y", lang="en", text_file=tmp_path / "missing.txt")
    assert not (tmp_path / "y").exists()


def test_pad_silence_and_still_head(tmp_path, synth):
    from mmface4d.animate.lipsync import mouth_opening

    manifest = corpus(
        tmp_path / "c",
        subjects=1,
        sentences=1,
        lang="en",
        workers=1,
        progress=False,
        head_motion=False,
        pad_silence=True,
    )
    row = next(csv.DictReader(open(manifest)))
    audio = load_audio(tmp_path / "c" / f"{row['recording']}.wav")
    assert np.abs(audio[:3200]).max() == 0 and np.abs(audio[-3200:]).max() == 0  # >= 0.2 s
    verts = decode_nut(tmp_path / "c" / row["recording"], synth.num_vertices)
    opening = mouth_opening(verts, synth.landmarks)
    assert opening[:3].max() < 0.25 * opening.max()  # at rest before the sentence
    gt = np.load(tmp_path / "c" / f"{row['recording']}_gt.npz")
    assert not gt["head_rotation"].any() and not gt["head_translation"].any()
    assert len(gt["phoneme_symbols"]) == len(gt["phoneme_times"])


# ---------------------------------------------------------------------- the batch (mmface4d.batch)
def _planned(subjects: int, sentences: int, seed: int) -> list[str]:
    from mmface4d.synth.corpus import CorpusConfig, plan_jobs

    config = CorpusConfig(subjects, sentences, "en", seed)
    return [f"S{job.subject_index + 1:03d}/{job.recording}" for job in plan_jobs(config)]


def _rows(out) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_failed_recording_fails_alone_is_listed_and_a_rerun_resumes(
    tmp_path, monkeypatch, capsys, synth
):
    import mmface4d.synth.corpus as corpus_mod

    first, bad = _planned(1, 2, seed=3)
    real = corpus_mod.render_recording
    rendered = []

    def fail_one(job, subject, config, folder, model):
        rendered.append(f"{subject.subject_id}/{job.recording}")
        if rendered[-1] == bad:
            raise InputError("espeak said nothing")
        return real(job, subject, config, folder, model)

    monkeypatch.setattr(corpus_mod, "render_recording", fail_one)
    out = tmp_path / "c"
    argv = [
        "synth",
        "corpus",
        "-o",
        str(out),
        "--subjects",
        "1",
        "--sentences",
        "2",
        "--lang",
        "en",
        "--seed",
        "3",
    ]
    capsys.readouterr()
    assert cli.main(argv) == 1  # the failure report, not a crash
    stdout = capsys.readouterr().out
    assert stdout.startswith("1 done, 0 skipped, 1 failed")
    assert f"{bad}: InputError: espeak said nothing" in stdout
    assert [r["recording"] for r in _rows(out)] == [first]  # the finished one is in the manifest
    batch = json.loads((out / "manifest.json").read_text())
    assert batch["jobs"][first]["status"] == "done" and batch["jobs"][bad]["status"] == "failed"
    wav = out / f"{first}.wav"
    before = wav.stat().st_mtime_ns
    monkeypatch.setattr(corpus_mod, "render_recording", real)
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "manifest.csv")
    assert wav.stat().st_mtime_ns == before  # resumed: only the failed recording was rendered
    fresh = corpus(
        tmp_path / "fresh", subjects=1, sentences=2, lang="en", seed=3, workers=1, progress=False
    )
    assert (out / "manifest.csv").read_text() == fresh.read_text()
    for key in (first, bad):
        v = synth.num_vertices
        np.testing.assert_array_equal(
            decode_nut(out / key, v), decode_nut(tmp_path / "fresh" / key, v)
        )


def test_a_killed_worker_fails_only_its_recording(tmp_path, monkeypatch):
    import mmface4d.synth.corpus as corpus_mod
    from mmface4d.batch import WORKER_DIED, BatchFailed

    keys = _planned(1, 3, seed=4)
    real = corpus_mod.render_recording

    def die_on_one(job, subject, config, folder, model):  # forked workers inherit the patch
        if f"{subject.subject_id}/{job.recording}" == keys[1]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job, subject, config, folder, model)

    monkeypatch.setattr(corpus_mod, "render_recording", die_on_one)
    with pytest.raises(BatchFailed, match=f"1 of 3 recordings failed.*{keys[1]}: {WORKER_DIED}"):
        corpus(
            tmp_path / "c", subjects=1, sentences=3, lang="en", seed=4, workers=2, progress=False
        )
    assert sorted(r["recording"] for r in _rows(tmp_path / "c")) == sorted([keys[0], keys[2]])
    jobs = json.loads((tmp_path / "c" / "manifest.json").read_text())["jobs"]
    assert jobs[keys[1]]["reason"].startswith(WORKER_DIED)


@pytest.mark.slow  # starting Ray takes ~14 s on a busy core
def test_ray_executor_writes_the_same_corpus(small_corpus, tmp_path, capsys, synth):
    pytest.importorskip("ray", exc_type=ImportError)
    out, rows = small_corpus
    ray_out = tmp_path / "ray"
    argv = [
        "synth",
        "corpus",
        "-o",
        str(ray_out),
        "--subjects",
        "1",
        "--sentences",
        "2",
        "--lang",
        "both",
        "--seed",
        "3",
        "--executor",
        "ray",
        "--workers",
        "2",
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    ray_rows = _rows(ray_out)
    assert ray_rows == [r for r in rows if r["subject"] == "S001"]
    for row in ray_rows:
        prefix = row["recording"]
        v = synth.num_vertices
        np.testing.assert_array_equal(decode_nut(ray_out / prefix, v), decode_nut(out / prefix, v))
        np.testing.assert_array_equal(
            load_audio(ray_out / f"{prefix}.wav"), load_audio(out / f"{prefix}.wav")
        )
    batch = json.loads((ray_out / "manifest.json").read_text())
    assert batch["desc"] == "synth corpus" and batch["totals"]["done"] == 2
